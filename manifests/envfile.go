package manifests

import (
	"errors"
	"fmt"
	"strings"
)

// envFile is a parsed dotenv file (.env.sample): values in file order semantics (a later
// assignment replaces an earlier one) plus the "# key=value" modifiers abra reads from the
// comment after a value (e.g. `SECRET_DB_PASSWORD_VERSION=v1 # length=64 charset=special`).
type envFile struct {
	vars map[string]string
	// mods are the modifiers of each variable's last active assignment.
	mods map[string]map[string]string
	// commentedMods are the modifiers of commented-out assignments (`#SECRET_X_VERSION=v1 # length=9`),
	// for a variable the spec enables that .env.sample leaves commented out.
	commentedMods map[string]map[string]string
}

// modifiers returns the modifiers of name: an active line's if any, else a commented-out line's.
func (f *envFile) modifiers(name string) map[string]string {
	if m, ok := f.mods[name]; ok {
		return m
	}
	return f.commentedMods[name]
}

// lookupFunc resolves a variable referenced as $NAME or ${NAME}.
type lookupFunc func(name string) (string, bool)

// parseEnvFile parses dotenv content the way abra's reader (a godotenv fork) does:
//   - blank lines and lines starting with # are skipped;
//   - an optional `export ` prefix;
//   - NAME=value, with spaces allowed around "=";
//   - single-quoted values are literal; double-quoted values know \n \t \r \" \\ \$ escapes and
//     may span lines; both expand nothing but what is said here;
//   - unquoted values end at a # preceded by white space (an inline comment), and are trimmed;
//   - $NAME, ${NAME}, ${NAME:-default} and ${NAME-default} are expanded in unquoted and
//     double-quoted values: pinned first (values that always win), then earlier lines of this
//     file, then base (an env read before this file); unknown names expand to "".
//
// Errors name the line, never a value.
func parseEnvFile(src string, pinned, base lookupFunc) (*envFile, error) {
	f := &envFile{
		vars:          map[string]string{},
		mods:          map[string]map[string]string{},
		commentedMods: map[string]map[string]string{},
	}
	lookup := func(name string) (string, bool) {
		if pinned != nil {
			if v, ok := pinned(name); ok {
				return v, true
			}
		}
		if v, ok := f.vars[name]; ok {
			return v, true
		}
		if base != nil {
			return base(name)
		}
		return "", false
	}
	p := &envParser{src: src, line: 1}
	total := 0
	for {
		p.skipBlank()
		if p.eof() {
			return f, nil
		}
		if p.peek() == '#' {
			p.commentedAssignment(f)
			continue
		}
		line := p.line
		a, err := p.assignment(lookup)
		if err != nil {
			return nil, err
		}
		if total += len(a.value); total > MaxEnvBytes {
			return nil, fmt.Errorf("line %d: %s: %w: the values expand to more than %d MiB", line, a.name, errEnvTooLarge, MaxEnvBytes>>20)
		}
		f.vars[a.name] = a.value
		if a.mods != nil {
			f.mods[a.name] = a.mods
		} else {
			delete(f.mods, a.name)
		}
	}
}

type assignment struct {
	name, value string
	mods        map[string]string
}

type envParser struct {
	src  string
	pos  int
	line int
}

func (p *envParser) eof() bool  { return p.pos >= len(p.src) }
func (p *envParser) peek() byte { return p.src[p.pos] }

func (p *envParser) next() byte {
	c := p.src[p.pos]
	p.pos++
	if c == '\n' {
		p.line++
	}
	return c
}

// skipBlank skips white space including newlines.
func (p *envParser) skipBlank() {
	for !p.eof() && isSpace(p.peek()) {
		p.next()
	}
}

// skipInline skips spaces and tabs, not newlines.
func (p *envParser) skipInline() {
	for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
		p.next()
	}
}

// restOfLine consumes and returns everything up to (not including) the newline.
func (p *envParser) restOfLine() string {
	start := p.pos
	for !p.eof() && p.peek() != '\n' {
		p.pos++
	}
	return p.src[start:p.pos]
}

// commentedAssignment consumes a comment line. If it is a commented-out SECRET_*_VERSION
// assignment, its modifiers are kept: the spec may enable that secret.
func (p *envParser) commentedAssignment(f *envFile) {
	line := strings.TrimLeft(p.restOfLine(), "# \t")
	name, _, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
	name = strings.TrimSpace(name)
	if !ok || !strings.HasPrefix(name, "SECRET_") || !strings.HasSuffix(name, "_VERSION") || !validEnvName(name) {
		return
	}
	sub := &envParser{src: line, line: p.line}
	a, err := sub.assignment(func(string) (string, bool) { return "", false })
	if err == nil && a.mods != nil {
		f.commentedMods[a.name] = a.mods
	}
}

// assignment parses one `[export ]NAME=value [# comment]`.
func (p *envParser) assignment(lookup lookupFunc) (assignment, error) {
	line := p.line
	if strings.HasPrefix(p.src[p.pos:], "export") {
		rest := p.src[p.pos+len("export"):]
		if rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			p.pos += len("export")
			p.skipInline()
		}
	}
	start := p.pos
	for !p.eof() && p.peek() != '=' && !isSpace(p.peek()) && p.peek() != '#' {
		p.pos++
	}
	name := p.src[start:p.pos]
	p.skipInline()
	if p.eof() || p.peek() != '=' {
		p.restOfLine()
		return assignment{}, fmt.Errorf("line %d: expected NAME=value", line)
	}
	if !validEnvName(name) {
		p.restOfLine()
		return assignment{}, fmt.Errorf("line %d: %q is not a variable name (letters, digits, _ and ., not starting with a digit)", line, name)
	}
	p.next() // '='
	spaced := !p.eof() && (p.peek() == ' ' || p.peek() == '\t')
	p.skipInline()
	a := assignment{name: name}
	var comment string
	switch {
	case p.eof() || p.peek() == '\n':
	case p.peek() == '\'' || p.peek() == '"':
		v, err := p.quoted(lookup)
		if err != nil {
			return assignment{}, fmt.Errorf("line %d: %s: %w", line, name, err)
		}
		a.value = v
		// After the closing quote only a comment counts; other text is ignored like godotenv.
		rest := p.restOfLine()
		if i := strings.IndexByte(rest, '#'); i >= 0 {
			comment = rest[i+1:]
		}
	case p.peek() == '#' && spaced:
		comment = p.restOfLine()[1:] // `NAME= # comment`: empty value
	default:
		raw := p.restOfLine()
		if i := inlineComment(raw); i >= 0 {
			comment = raw[i+1:]
			raw = raw[:i]
		}
		v, err := expand(strings.TrimSpace(raw), lookup, false)
		if err != nil {
			return assignment{}, fmt.Errorf("line %d: %s: %w", line, name, err)
		}
		a.value = v
	}
	a.mods = parseModifiers(comment)
	return a, nil
}

// quoted reads a quoted value starting at the opening quote.
func (p *envParser) quoted(lookup lookupFunc) (string, error) {
	q := p.next()
	start := p.pos
	for !p.eof() {
		c := p.next()
		if c == '\\' && q == '"' && !p.eof() {
			p.next()
			continue
		}
		if c == q {
			body := p.src[start : p.pos-1]
			if q == '\'' {
				return body, nil
			}
			return expand(body, lookup, true)
		}
	}
	return "", fmt.Errorf("unterminated %c quote", q)
}

// inlineComment returns the index of a # that starts a comment in an unquoted value.
func inlineComment(s string) int {
	for i := 1; i < len(s); i++ {
		if s[i] == '#' && (s[i-1] == ' ' || s[i-1] == '\t') {
			return i
		}
	}
	return -1
}

// parseModifiers reads "length=64 charset=special" from a comment; nil when there are none.
func parseModifiers(comment string) map[string]string {
	var mods map[string]string
	for _, field := range strings.Fields(comment) {
		k, v, ok := strings.Cut(field, "=")
		if !ok || k == "" {
			continue
		}
		if mods == nil {
			mods = map[string]string{}
		}
		mods[k] = v
	}
	return mods
}

// Bounds of what an app's env files expand to: one value, and all of a file's values together.
// References are expanded as they are read, so without them a line that doubles the value of
// the line before would grow its value exponentially with the lines.
const (
	MaxEnvValueBytes = 1 << 20
	MaxEnvBytes      = 4 << 20
)

// errEnvTooLarge marks an expansion past those bounds.
var errEnvTooLarge = errors.New("too large")

// expand replaces variable references; with escapes it also decodes double-quote escapes.
// Unquoted values only know `\$` (a literal dollar sign). A result over MaxEnvValueBytes is
// an error.
func expand(s string, lookup lookupFunc, escapes bool) (string, error) {
	if !strings.ContainsAny(s, `$\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if b.Len() > MaxEnvValueBytes {
			return "", fmt.Errorf("%w: the value expands to more than %d MiB", errEnvTooLarge, MaxEnvValueBytes>>20)
		}
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			n := s[i+1]
			switch {
			case n == '$':
				b.WriteByte('$')
				i++
				continue
			case escapes:
				switch n {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				case '"', '\\':
					b.WriteByte(n)
				default:
					b.WriteByte('\\')
					b.WriteByte(n)
				}
				i++
				continue
			}
		}
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if s[i+1] == '{' {
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				b.WriteByte(c)
				continue
			}
			inner := s[i+2 : i+2+end]
			if v, ok := expandBraced(inner, lookup); ok {
				b.WriteString(v)
				i += 2 + end
				continue
			}
			b.WriteByte(c)
			continue
		}
		j := i + 1
		for j < len(s) && isNameByte(s[j], j == i+1) {
			j++
		}
		if j == i+1 {
			b.WriteByte(c)
			continue
		}
		v, _ := lookup(s[i+1 : j])
		b.WriteString(v)
		i = j - 1
	}
	if b.Len() > MaxEnvValueBytes {
		return "", fmt.Errorf("%w: the value expands to more than %d MiB", errEnvTooLarge, MaxEnvValueBytes>>20)
	}
	return b.String(), nil
}

// expandBraced expands the inside of ${...}: NAME, NAME:-default (default when unset or
// empty) or NAME-default (default when unset). ok is false for anything else, which then stays
// literal.
func expandBraced(inner string, lookup lookupFunc) (string, bool) {
	n := 0
	for n < len(inner) && isNameByte(inner[n], n == 0) {
		n++
	}
	if n == 0 {
		return "", false
	}
	name, rest := inner[:n], inner[n:]
	v, set := lookup(name)
	switch {
	case rest == "":
		return v, true
	case strings.HasPrefix(rest, ":-"):
		if v == "" {
			return rest[2:], true
		}
		return v, true
	case strings.HasPrefix(rest, "-"):
		if !set {
			return rest[1:], true
		}
		return v, true
	}
	return "", false
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i], i == 0) && !(i > 0 && s[i] == '.') {
			return false
		}
	}
	return true
}

func isNameByte(c byte, first bool) bool {
	switch {
	case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return true
	case c >= '0' && c <= '9':
		return !first
	}
	return false
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
