package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// jsonNode reads a JSON document into the yaml.Node tree that the YAML path produces, with line
// numbers, so both formats share one strict decoder. yaml.v3 alone is not enough for JSON: it
// rejects valid escapes such as "\/" and surrogate pairs.
func jsonNode(data []byte) (*yaml.Node, error) {
	lines := lineStarts(data)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	c := &jsonConv{dec: dec, data: data, lines: lines}
	n, err := c.value()
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &jsonError{line: c.lineAt(dec.InputOffset()), msg: "unexpected data after the top-level value"}
	}
	return n, nil
}

type jsonError struct {
	line int
	msg  string
}

func (e *jsonError) Error() string { return e.msg }

type jsonConv struct {
	dec   *json.Decoder
	data  []byte
	lines []int
}

// lineStarts returns the offset at which each line begins.
func lineStarts(data []byte) []int {
	starts := []int{0}
	for i, b := range data {
		if b == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

func (c *jsonConv) lineAt(off int64) int {
	return sort.Search(len(c.lines), func(i int) bool { return int64(c.lines[i]) > off })
}

// tokenLine is the line of the next token: the decoder's offset is just past the previous one,
// before any separator or whitespace.
func (c *jsonConv) tokenLine() int {
	off := c.dec.InputOffset()
	for off < int64(len(c.data)) && strings.IndexByte(" \t\r\n,:", c.data[off]) >= 0 {
		off++
	}
	return c.lineAt(off)
}

func (c *jsonConv) token() (json.Token, int, error) {
	line := c.tokenLine()
	t, err := c.dec.Token()
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, 0, &jsonError{line: c.lineAt(se.Offset), msg: se.Error()}
		}
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, 0, &jsonError{line: len(c.lines), msg: "unexpected end of JSON input"}
		}
		return nil, 0, &jsonError{line: line, msg: err.Error()}
	}
	return t, line, nil
}

func (c *jsonConv) value() (*yaml.Node, error) {
	t, line, err := c.token()
	if err != nil {
		return nil, err
	}
	return c.fromToken(t, line)
}

func (c *jsonConv) fromToken(t json.Token, line int) (*yaml.Node, error) {
	scalar := func(tag, v string) *yaml.Node {
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v, Line: line}
		if tag == "!!str" {
			n.Style = yaml.DoubleQuotedStyle
		}
		return n
	}
	switch v := t.(type) {
	case nil:
		return scalar("!!null", "null"), nil
	case bool:
		return scalar("!!bool", fmt.Sprint(v)), nil
	case string:
		return scalar("!!str", v), nil
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			return scalar("!!float", string(v)), nil
		}
		return scalar("!!int", string(v)), nil
	case json.Delim:
		switch v {
		case '{':
			n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: line, Style: yaml.FlowStyle}
			for c.dec.More() {
				kt, kline, err := c.token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, &jsonError{line: kline, msg: "object key is not a string"}
				}
				val, err := c.value()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, scalar("!!str", key), val)
				n.Content[len(n.Content)-2].Line = kline
			}
			if _, _, err := c.token(); err != nil { // '}'
				return nil, err
			}
			return n, nil
		case '[':
			n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: line, Style: yaml.FlowStyle}
			for c.dec.More() {
				val, err := c.value()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, val)
			}
			if _, _, err := c.token(); err != nil { // ']'
				return nil, err
			}
			return n, nil
		}
	}
	return nil, &jsonError{line: line, msg: fmt.Sprintf("unexpected JSON token %v", t)}
}
