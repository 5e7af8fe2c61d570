package webview

import (
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/swarm-reconciler/reconciler/spec"
)

// hidden replaces a hidden value.
const hidden = `"(hidden)"`

// edit replaces line[start:end] with repl; a value going on past its line (continued) also
// takes every following line indented deeper than keyIndent.
type edit struct {
	line, start, end int
	repl             string
	continued        bool
	keyIndent        int
}

// hideSecrets is a spec file's text as written, with what it may hold of secrets hidden: the
// value of every env key whose name looks secret (spec.SecretName), in the spec's env and
// anywhere in its inline overlays (a service's environment, an anchor it shares), and the user
// info of its source and health URLs. A file that does not parse is not shown at all: where its values are cannot be
// told.
func hideSecrets(data []byte) string {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "(the spec file does not parse, so it is not shown: `reconciler validate` says why)"
	}
	lines := strings.Split(string(data), "\n")
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return string(data)
	}
	var edits []edit
	top := doc.Content[0]
	for key, val := range pairs(top) {
		switch key.Value {
		case "env":
			edits = append(edits, envEdits(lines, val, 0, 0)...)
		case "source":
			edits = append(edits, urlEdit(lines, val, top.Style&yaml.FlowStyle != 0)...)
		case "health", "overlays":
			if val.Kind != yaml.SequenceNode {
				continue
			}
			for _, item := range val.Content {
				for k, v := range pairs(item) {
					switch {
					case key.Value == "health" && k.Value == "http":
						edits = append(edits, urlEdit(lines, v, item.Style&yaml.FlowStyle != 0)...)
					case key.Value == "overlays" && k.Value == "inline":
						edits = append(edits, overlayEdits(lines, k, v)...)
					}
				}
			}
		}
	}
	return apply(lines, edits)
}

// pairs are the keys and values of a mapping node; none for another node.
func pairs(n *yaml.Node) func(yield func(k, v *yaml.Node) bool) {
	return func(yield func(k, v *yaml.Node) bool) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !yield(n.Content[i], n.Content[i+1]) {
				return
			}
		}
	}
}

// envEdits hide the secret-named values of env, a mapping of env variables or (in a compose
// file) a list of NAME=value, on lines that start lineBase lines and colBase bytes into the
// file's. A value that is an alias is hidden where its anchor gives it.
func envEdits(lines []string, env *yaml.Node, lineBase, colBase int) []edit {
	flow := env.Style&yaml.FlowStyle != 0
	var out []edit
	switch env.Kind {
	case yaml.MappingNode:
		for k, v := range pairs(env) {
			switch {
			case !spec.SecretName(k.Value):
			case v.Kind == yaml.ScalarNode:
				out = append(out, valueEdit(lines, k, v, flow, lineBase, colBase, hidden)...)
			case v.Kind == yaml.AliasNode && v.Alias != nil && v.Alias.Kind == yaml.ScalarNode:
				out = append(out, valueEdit(lines, v.Alias, v.Alias, false, lineBase, colBase, hidden)...)
			}
		}
	case yaml.SequenceNode:
		for _, v := range env.Content {
			if name, _, ok := strings.Cut(v.Value, "="); ok && v.Kind == yaml.ScalarNode && spec.SecretName(name) {
				e := valueEdit(lines, v, v, flow, lineBase, colBase, `"`+strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name)+`=(hidden)"`)
				if len(e) == 1 && !flow {
					// An item goes on on the lines indented deeper than its dash.
					if dash := strings.LastIndexByte(lines[e[0].line][:e[0].start], '-'); dash >= 0 {
						e[0].keyIndent = dash
					}
				}
				out = append(out, e...)
			}
		}
	}
	return out
}

// valueEdit replaces the scalar val of key with repl; an anchor before it stays.
func valueEdit(lines []string, key, val *yaml.Node, flow bool, lineBase, colBase int, repl string) []edit {
	ln := lineBase + val.Line - 1
	if val.Line < 1 || ln >= len(lines) || colBase > len(lines[ln]) {
		return nil
	}
	line := lines[ln][colBase:]
	start := byteOffset(line, val.Column)
	if a := "&" + val.Anchor; val.Anchor != "" && strings.HasPrefix(line[start:], a) {
		start += len(a)
		for start < len(line) && (line[start] == ' ' || line[start] == '\t') {
			start++
		}
	}
	end, oneLine := tokenEnd(line, start, val.Style, flow)
	return []edit{{line: ln, start: colBase + start, end: colBase + end, repl: repl, continued: !oneLine, keyIndent: colBase + key.Column - 1}}
}

// urlEdit takes the user info out of the URL val, where it has one (spec.WithoutUserInfo). A
// URL whose user info cannot be told apart (one with an "@" that does not parse, a password
// with an unescaped "/"), whose text is not its value (an "@" written as an escape), or that
// goes over several lines, is hidden whole.
func urlEdit(lines []string, val *yaml.Node, flow bool) []edit {
	if val.Kind != yaml.ScalarNode {
		return nil
	}
	shown, ok := spec.WithoutUserInfo(val.Value)
	if ok && shown == val.Value { // no user info
		return nil
	}
	e := valueEdit(lines, val, val, flow, 0, 0, "")
	if len(e) == 0 {
		return nil
	}
	raw, quote := lines[e[0].line][e[0].start:e[0].end], ""
	if len(raw) >= 2 && (raw[0] == '"' || raw[0] == '\'') && raw[len(raw)-1] == raw[0] {
		raw, quote = raw[1:len(raw)-1], raw[:1]
	}
	if !ok || raw != val.Value {
		e[0].repl = hidden
		return e
	}
	e[0].continued = false
	e[0].repl = quote + shown + quote // the text was the value: shown, a part of it, needs no escape either
	return e
}

// overlayEdits hide the secret-named environment values of the services of an inline
// overlay: a compose document held in a block scalar, whose lines are the file's lines after
// the key's, indented. An overlay written another way is hidden whole.
func overlayEdits(lines []string, key, val *yaml.Node) []edit {
	if val.Kind != yaml.ScalarNode {
		return nil
	}
	whole := valueEdit(lines, key, val, false, 0, 0, hidden)
	var doc yaml.Node
	if val.Style&yaml.LiteralStyle == 0 || yaml.Unmarshal([]byte(val.Value), &doc) != nil || len(doc.Content) == 0 {
		return whole
	}
	// The block's first line is the one after its indicator, and its indentation is the
	// first non-blank line's.
	first, indentation := val.Line, -1
	for k := first; k < len(lines); k++ {
		if strings.TrimSpace(lines[k]) != "" {
			indentation = indent(lines[k])
			break
		}
	}
	if indentation < 0 {
		return nil
	}
	var out []edit
	for _, services := range mappings(pairValue(doc.Content[0], "services")) {
		for _, svc := range pairs(services) {
			for _, m := range mappings(svc) {
				for _, env := range mappings(pairValue(m, "environment")) {
					out = append(out, envEdits(lines, env, first, indentation)...)
				}
				if l := deref(pairValue(m, "environment")); l != nil && l.Kind == yaml.SequenceNode {
					out = append(out, envEdits(lines, l, first, indentation)...)
				}
			}
		}
	}
	return out
}

// pairValue is the value of key in mapping n, or nil.
func pairValue(n *yaml.Node, key string) *yaml.Node {
	if n = deref(n); n == nil {
		return nil
	}
	for k, v := range pairs(n) {
		if k.Value == key {
			return v
		}
	}
	return nil
}

// deref is what the alias n points to; n itself when it is none.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// mappings are the mapping n (through an alias) and the mappings it merges (<<: *a, or a list
// of them).
func mappings(n *yaml.Node) []*yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	out := []*yaml.Node{n}
	if m := deref(pairValue(n, "<<")); m != nil {
		merged := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			merged = m.Content
		}
		for _, x := range merged {
			out = append(out, mappings(x)...)
		}
	}
	return out
}

// apply makes the edits, those of one line from its end backwards so that each one's place is
// still where it was found, and drops the lines of values continued from an edited line.
func apply(lines []string, edits []edit) string {
	slices.SortFunc(edits, func(a, b edit) int {
		if a.line != b.line {
			return a.line - b.line
		}
		return b.start - a.start
	})
	drop := map[int]bool{} // lines (0-based) of values continued from an edited line
	for i, e := range edits {
		if drop[e.line] || e.start > e.end || e.end > len(lines[e.line]) ||
			i > 0 && edits[i-1].line == e.line && edits[i-1].start == e.start { // one value reached twice (an anchor)
			continue
		}
		lines[e.line] = lines[e.line][:e.start] + e.repl + lines[e.line][e.end:]
		if !e.continued {
			continue
		}
		// A block scalar or a value continued on the next lines: every following line
		// indented deeper than its key is part of it.
		for k := e.line + 1; k < len(lines); k++ {
			if strings.TrimSpace(lines[k]) != "" && indent(lines[k]) <= e.keyIndent {
				break
			}
			drop[k] = true
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
