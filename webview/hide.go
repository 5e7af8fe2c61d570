package webview

import (
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// secretKey matches the env keys whose values a page never shows: recipes keep passwords in
// swarm secrets, but a spec's env is free text, and an operator may have put one there.
var secretKey = regexp.MustCompile(`(?i)pass|secret|token|key|credential|auth|private|salt|cert|dsn`)

// hidden replaces a hidden value.
const hidden = `"(hidden)"`

// hideSecrets is a spec file's text as written, with the value of every env key that looks
// secret replaced by "(hidden)". A file that does not parse is not shown at all: where its
// values are cannot be told.
func hideSecrets(data []byte) string {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "(the spec file does not parse, so it is not shown: `reconciler validate` says why)"
	}
	lines := strings.Split(string(data), "\n")
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return string(data)
	}
	top := doc.Content[0]
	drop := map[int]bool{} // lines (0-based) of values continued from a hidden line
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "env" || top.Content[i+1].Kind != yaml.MappingNode {
			continue
		}
		env := top.Content[i+1]
		flow := env.Style&yaml.FlowStyle != 0
		for j := 0; j+1 < len(env.Content); j += 2 {
			key, val := env.Content[j], env.Content[j+1]
			if !secretKey.MatchString(key.Value) || val.Line < 1 || val.Line > len(lines) {
				continue
			}
			ln := val.Line - 1
			line := lines[ln]
			start := byteOffset(line, val.Column)
			end, oneLine := tokenEnd(line, start, val.Style, flow)
			lines[ln] = line[:start] + hidden + line[end:]
			if oneLine {
				continue
			}
			// A block scalar or a value continued on the next lines: every following line
			// indented deeper than its key is part of it.
			for k := ln + 1; k < len(lines); k++ {
				if strings.TrimSpace(lines[k]) != "" && indent(lines[k]) <= key.Column-1 {
					break
				}
				drop[k] = true
			}
		}
	}
	out := make([]string, 0, len(lines))
	for i, l := range lines {
		if !drop[i] {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// tokenEnd is where the scalar starting at line[start] ends on its line, and whether it ends
// there at all.
func tokenEnd(line string, start int, style yaml.Style, flow bool) (int, bool) {
	switch {
	case style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return len(line), false
	case style&yaml.DoubleQuotedStyle != 0:
		for i := start + 1; i < len(line); i++ {
			switch line[i] {
			case '\\':
				i++
			case '"':
				return i + 1, true
			}
		}
		return len(line), false
	case style&yaml.SingleQuotedStyle != 0:
		for i := start + 1; i < len(line); i++ {
			if line[i] == '\'' {
				if i+1 < len(line) && line[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, true
			}
		}
		return len(line), false
	}
	end := len(line)
	if c := strings.Index(line[start:], " #"); c >= 0 {
		end = start + c
	}
	if flow {
		if c := strings.IndexAny(line[start:end], ",}]"); c >= 0 {
			end = start + c
		}
	}
	for end > start && (line[end-1] == ' ' || line[end-1] == '\t') {
		end--
	}
	// In a block, a plain scalar may go on on the next lines, more indented: those are dropped
	// too.
	return end, flow
}

// byteOffset is where the column col (yaml's, counted in characters from 1) starts in line.
func byteOffset(line string, col int) int {
	n := 1
	for i := range line {
		if n == col {
			return i
		}
		n++
	}
	return len(line)
}

// indent is the number of leading spaces of a line.
func indent(line string) int {
	return len(line) - len(strings.TrimLeft(line, " "))
}
