package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// DefaultTimeout is the converge deadline when neither the spec nor the run sets one.
const DefaultTimeout = 10 * time.Minute

// DefaultMinReady is the stability window of a service whose recipe sets no
// update_config.monitor: swarm's own default monitor, which `docker stack deploy
// --detach=false` also waits.
const DefaultMinReady = 5 * time.Second

// Defaults are the run-wide values a spec falls back to, so that CI can write minimal specs.
type Defaults struct {
	// DomainSuffix makes the default domain <app>.<DomainSuffix>; empty makes it just <app>.
	DomainSuffix string
	// Timeout is the converge deadline of specs that set none; zero means DefaultTimeout.
	Timeout time.Duration
}

// FieldError locates one problem in a spec file, so that the status message and
// `reconciler validate` point a person at the line to fix.
type FieldError struct {
	File  string
	Line  int    // 0 when the problem has no place in the file (a missing field, a default)
	Field string // dotted path such as "env.FOO" or "health[1].http"; "" for the whole file
	Msg   string // what is wrong and what to do, naming the field
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

var (
	recipeRE  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]*$`)
	envKeyRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	yamlErrRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

var (
	specFields    = []string{"recipe", "version", "source", "ref", "tier", "upgradeFrom", "domain", "env", "timeout", "ttl", "minReady", "suspend", "health", "backup", "overlays"}
	probeFields   = []string{"http", "tcp", "ok", "stable"}
	backupFields  = []string{"schedule", "keep", "checks", "requestedAt", "restore"}
	checksFields  = []string{"beforeBackup", "beforeRestore", "afterRestore"}
	checkFields   = []string{"service", "run"}
	overlayFields = []string{"file", "inline"}
	restoreFields = []string{"requestedAt", "id"}
)

// MaxSpecBytes bounds a spec file: a spec names a recipe, a version and a few values; a larger
// file is refused before it is read, whatever it holds.
const MaxSpecBytes = 1 << 20

// tooLarge is the error of a spec file over MaxSpecBytes.
func tooLarge(filename string, size int64) error {
	return fmt.Errorf("%s: %d bytes: a spec file may have at most %d (1 MiB); it is not read", filename, size, MaxSpecBytes)
}

// CheckSpecSize refuses a spec file over MaxSpecBytes before it is read.
func CheckSpecSize(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() > MaxSpecBytes {
		return tooLarge(path, fi.Size())
	}
	return nil
}

// Parse strictly parses (unknown fields are errors) and validates one spec file's bytes, YAML
// or JSON, and applies defaults. app is the file's app name; filename is used in error messages.
// Every problem found is reported, each a *FieldError naming the file, the line and the field
// (several are joined with errors.Join), so one edit can fix them all.
func Parse(filename, app string, data []byte, d Defaults) (*Spec, error) {
	if len(data) > MaxSpecBytes {
		return nil, tooLarge(filename, int64(len(data)))
	}
	p := &parser{file: filename, lines: map[string]int{}, bad: map[string]bool{}}
	root, err := p.document(data)
	if err != nil {
		return nil, err
	}
	s := p.spec(root)
	p.defaults(s, app, d)
	p.validate(s, app)
	if len(p.errs) == 1 {
		return nil, p.errs[0]
	}
	if len(p.errs) > 1 {
		return nil, errors.Join(p.errs...)
	}
	return s, nil
}

type parser struct {
	file  string
	errs  []error
	lines map[string]int  // field path -> line of its key, for errors found after decoding
	bad   map[string]bool // fields whose value could not be decoded: not validated again
}

func (p *parser) fail(line int, field, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
	if field != "" {
		p.bad[field] = true
	}
}

func (p *parser) fileError(line int, format string, args ...any) error {
	return &FieldError{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// document returns the root mapping of the file, or the reason there is none.
func (p *parser) document(data []byte) (root *yaml.Node, err error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, p.fileError(0, "the file is empty: a spec needs at least recipe and version")
	}
	if filepath.Ext(p.file) == ".json" || json.Valid(data) {
		root, err = jsonNode(data)
		if err != nil {
			var je *jsonError
			if errors.As(err, &je) {
				return nil, p.fileError(je.line, "not valid JSON: %s", je.msg)
			}
			return nil, p.fileError(0, "not valid JSON: %v", err)
		}
	} else {
		root, err = p.yamlRoot(data)
		if err != nil {
			return nil, err
		}
	}
	root = deref(root)
	switch {
	case root == nil || root.Kind == yaml.ScalarNode && root.Tag == "!!null":
		return nil, p.fileError(0, "the file has no content: a spec needs at least recipe and version")
	case root.Kind == yaml.SequenceNode:
		return nil, p.fileError(root.Line, "the spec is a list; it must be a mapping of fields such as \"recipe: custom-html\" and \"version: 1.0.0\"")
	case root.Kind != yaml.MappingNode:
		return nil, p.fileError(root.Line, "the spec is a single value; it must be a mapping of fields such as \"recipe: custom-html\" and \"version: 1.0.0\"")
	}
	return root, nil
}

func (p *parser) yamlRoot(data []byte) (root *yaml.Node, err error) {
	defer func() {
		// yaml.v3 has panicked on hostile input before; a bad file must never take the loop down.
		if r := recover(); r != nil {
			root, err = nil, p.fileError(0, "not valid YAML: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, p.fileError(0, "the file has only comments: a spec needs at least recipe and version")
		}
		return nil, p.yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		if err != nil {
			return nil, p.yamlError(err)
		}
		return nil, p.fileError(extra.Line, "the file holds more than one YAML document (\"---\"): write one spec per file")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

func (p *parser) yamlError(err error) error {
	msg := err.Error()
	if m := yamlErrRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return p.fileError(line, "not valid YAML: %s", m[2])
	}
	return p.fileError(0, "not valid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// deref follows aliases (*name) to the node they stand for.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a single value"
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// suggest names the known field a person probably meant, or "".
func suggest(name string, known []string) string {
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s)) }
	for _, k := range known {
		if norm(k) == norm(name) {
			return k
		}
	}
	return ""
}

// fields walks a mapping's keys, reporting non-string, merge, duplicate and unknown keys, and
// calls visit with each known field's value.
func (p *parser) fields(m *yaml.Node, prefix string, known []string, what string, visit func(name string, key, val *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := deref(m.Content[i]), deref(m.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.fail(k.Line, "", "a field name must be a word, not %s", kindName(k))
			continue
		}
		if k.Tag == "!!merge" {
			p.fail(k.Line, "", "merge keys (<<) are not supported in spec files: write the fields out")
			continue
		}
		name := k.Value
		if first, dup := seen[name]; dup {
			p.fail(k.Line, prefix+name, "field %q is set twice (first on line %d): keep one", name, first)
			continue
		}
		seen[name] = k.Line
		if !slices.Contains(known, name) {
			if s := suggest(name, known); s != "" {
				p.fail(k.Line, prefix+name, "field %q is not %s field: did you mean %q?", name, what, s)
			} else {
				p.fail(k.Line, prefix+name, "field %q is not %s field (known: %s)", name, what, strings.Join(known, ", "))
			}
			continue
		}
		p.lines[prefix+name] = k.Line
		visit(name, k, v)
	}
}

func (p *parser) spec(root *yaml.Node) *Spec {
	s := &Spec{}
	p.fields(root, "", specFields, "a spec", func(name string, k, v *yaml.Node) {
		if isNull(v) {
			delete(p.lines, name) // "ttl:" with no value means unset, as in Kubernetes
			return
		}
		switch name {
		case "recipe":
			s.Recipe = p.str(v, name)
		case "version":
			s.Version = p.str(v, name)
		case "source":
			s.Source = p.str(v, name)
		case "ref":
			s.Ref = p.str(v, name)
		case "tier":
			s.Tier = Tier(p.str(v, name))
		case "upgradeFrom":
			s.UpgradeFrom = p.str(v, name)
		case "domain":
			s.Domain = p.str(v, name)
		case "env":
			s.Env = p.env(v)
		case "timeout":
			s.Timeout = p.duration(v, name)
		case "ttl":
			s.TTL = p.duration(v, name)
		case "minReady":
			d := p.duration(v, name)
			s.MinReady = &d
		case "suspend":
			s.Suspend = p.bool(v, name)
		case "health":
			s.Health = p.health(v)
		case "backup":
			s.Backup = p.backup(v)
		case "overlays":
			s.Overlays = p.overlays(v)
		}
	})
	return s
}

// overlays reads the list of compose overlays: each item exactly one of file (a path
// relative to the spec directory, inside it) or inline (a compose document).
func (p *parser) overlays(v *yaml.Node) []Overlay {
	if v.Kind != yaml.SequenceNode {
		p.fail(v.Line, "overlays", "field \"overlays\" must be a list of overlays (- file: overlays/x.yml, or - inline: |), not %s", kindName(v))
		return nil
	}
	if len(v.Content) > MaxOverlays {
		p.fail(v.Line, "overlays", "%d overlays: at most %d", len(v.Content), MaxOverlays)
		return nil
	}
	var out []Overlay
	for i, item := range v.Content {
		item = deref(item)
		prefix := fmt.Sprintf("overlays[%d]", i)
		if item.Kind != yaml.MappingNode {
			p.fail(item.Line, prefix, "%s must be a mapping with file or inline, not %s", prefix, kindName(item))
			continue
		}
		o := Overlay{Line: item.Line}
		p.fields(item, prefix+".", overlayFields, "an overlay", func(name string, k, v *yaml.Node) {
			switch name {
			case "file":
				o.File = p.str(v, prefix+"."+name)
			case "inline":
				o.Inline = p.str(v, prefix+"."+name)
				o.InlineLine = v.Line
			}
		})
		switch {
		case (o.File == "") == (o.Inline == ""):
			p.fail(item.Line, prefix, "%s needs exactly one of file (a compose file under the spec directory) and inline (a compose document)", prefix)
		case o.File != "":
			if msg := checkOverlayPath(o.File); msg != "" {
				p.fail(item.Line, prefix+".file", "%s.file %q: %s", prefix, o.File, msg)
			}
		}
		out = append(out, o)
	}
	return out
}

func (p *parser) backup(v *yaml.Node) *Backup {
	if v.Kind != yaml.MappingNode {
		p.fail(v.Line, "backup", "field \"backup\" must be a mapping (schedule, keep, checks), not %s", kindName(v))
		return nil
	}
	b := &Backup{}
	p.fields(v, "backup.", backupFields, "a backup", func(name string, k, v *yaml.Node) {
		field := "backup." + name
		if isNull(v) {
			return
		}
		switch name {
		case "schedule":
			b.Schedule = p.str(v, field)
		case "keep":
			b.Keep = p.int(v, field)
		case "requestedAt":
			b.RequestedAt = p.str(v, field)
		case "restore":
			if v.Kind != yaml.MappingNode {
				p.fail(v.Line, field, "field %q must be a mapping (requestedAt, id), not %s", field, kindName(v))
				return
			}
			r := &RestoreRequest{}
			p.fields(v, field+".", restoreFields, "a restore request", func(name string, k, v *yaml.Node) {
				switch name {
				case "requestedAt":
					r.RequestedAt = p.str(v, field+"."+name)
				case "id":
					r.ID = p.str(v, field+"."+name)
				}
			})
			b.Restore = r
		case "checks":
			if v.Kind != yaml.MappingNode {
				p.fail(v.Line, field, "field %q must be a mapping (beforeBackup, beforeRestore, afterRestore), not %s", field, kindName(v))
				return
			}
			p.fields(v, field+".", checksFields, "a checks", func(name string, k, v *yaml.Node) {
				list := p.checks(v, field+"."+name)
				switch name {
				case "beforeBackup":
					b.Checks.BeforeBackup = list
				case "beforeRestore":
					b.Checks.BeforeRestore = list
				case "afterRestore":
					b.Checks.AfterRestore = list
				}
			})
		}
	})
	return b
}

func (p *parser) checks(v *yaml.Node, field string) []Check {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.fail(v.Line, field, "field %q must be a list of checks (- service: app, run: \"...\"), not %s", field, kindName(v))
		return nil
	}
	var out []Check
	for i, item := range v.Content {
		item = deref(item)
		prefix := fmt.Sprintf("%s[%d]", field, i)
		if item.Kind != yaml.MappingNode {
			p.fail(item.Line, prefix, "%s must be a mapping with service and run, not %s", prefix, kindName(item))
			continue
		}
		var c Check
		p.fields(item, prefix+".", checkFields, "a check", func(name string, k, v *yaml.Node) {
			switch name {
			case "service":
				c.Service = p.str(v, prefix+"."+name)
			case "run":
				c.Run = p.str(v, prefix+"."+name)
			}
		})
		if c.Service == "" || c.Run == "" {
			p.fail(item.Line, prefix, "%s needs both service (the recipe's service name, e.g. app) and run (a shell command)", prefix)
		}
		out = append(out, c)
	}
	return out
}

// str reads a scalar as written, so "version: 1.10" stays "1.10"; null reads as "".
func (p *parser) str(v *yaml.Node, field string) string {
	if v.Kind != yaml.ScalarNode {
		p.fail(v.Line, field, "field %q must be a string, not %s", field, kindName(v))
		return ""
	}
	if isNull(v) {
		return ""
	}
	return v.Value
}

func (p *parser) bool(v *yaml.Node, field string) bool {
	var b bool
	if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" || v.Decode(&b) != nil {
		if isNull(v) {
			return false
		}
		p.fail(v.Line, field, "field %q must be true or false (unquoted)", field)
	}
	return b
}

func (p *parser) int(v *yaml.Node, field string) int {
	var i int
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&i) != nil {
		p.fail(v.Line, field, "field %q must be a whole number", field)
	}
	return i
}

func (p *parser) duration(v *yaml.Node, field string) Duration {
	if v.Kind != yaml.ScalarNode {
		p.fail(v.Line, field, "field %q must be a duration such as 15m, not %s", field, kindName(v))
		return Duration{}
	}
	if isNull(v) {
		return Duration{}
	}
	d, err := parseDuration(v.Value)
	if err != nil {
		p.fail(v.Line, field, "field %q: %v", field, err)
	}
	return Duration{d}
}

// env reads the env mapping. Numbers and booleans are taken as written, as compose does, so
// "PORT: 8080" works; an empty value (KEY:) is the empty string.
func (p *parser) env(v *yaml.Node) map[string]string {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		p.fail(v.Line, "env", "field \"env\" must be a mapping of NAME: value, not %s", kindName(v))
		return nil
	}
	env := map[string]string{}
	seen := map[string]int{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := deref(v.Content[i]), deref(v.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			p.fail(k.Line, "env", "env names must be plain variable names such as LETS_ENCRYPT_ENV")
			continue
		}
		name := k.Value
		field := "env." + name
		if first, dup := seen[name]; dup {
			p.fail(k.Line, field, "env %q is set twice (first on line %d): keep one", name, first)
			continue
		}
		seen[name] = k.Line
		if !envKeyRE.MatchString(name) {
			p.fail(k.Line, field, "env name %q is not a variable name: use letters, digits and \"_\", not starting with a digit", name)
			continue
		}
		if val.Kind != yaml.ScalarNode {
			p.fail(val.Line, field, "env %q must be a string, not %s", name, kindName(val))
			continue
		}
		if isNull(val) {
			env[name] = ""
		} else {
			env[name] = val.Value
		}
	}
	if len(env) == 0 {
		return nil
	}
	return env
}

func (p *parser) health(v *yaml.Node) []Probe {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.fail(v.Line, "health", "field \"health\" must be a list of probes (- http: ... or - tcp: ...), not %s", kindName(v))
		return nil
	}
	var probes []Probe
	for i, item := range v.Content {
		item = deref(item)
		prefix := fmt.Sprintf("health[%d]", i)
		p.lines[prefix] = item.Line
		if item.Kind != yaml.MappingNode {
			p.fail(item.Line, prefix, "%s must be a mapping with http or tcp, not %s", prefix, kindName(item))
			probes = append(probes, Probe{})
			continue
		}
		var pr Probe
		p.fields(item, prefix+".", probeFields, "a probe", func(name string, k, v *yaml.Node) {
			field := prefix + "." + name
			switch name {
			case "http":
				pr.HTTP = p.str(v, field)
			case "tcp":
				pr.TCP = p.str(v, field)
			case "ok":
				pr.OK = p.codes(v, field)
			case "stable":
				if !isNull(v) {
					pr.Stable = p.int(v, field)
				}
			}
		})
		probes = append(probes, pr)
	}
	return probes
}

func (p *parser) codes(v *yaml.Node, field string) []int {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.fail(v.Line, field, "field %q must be a list of HTTP status codes such as [200, 301]", field)
		return nil
	}
	var codes []int
	for _, c := range v.Content {
		c = deref(c)
		var code int
		if c.Kind != yaml.ScalarNode || c.Tag != "!!int" || c.Decode(&code) != nil || code < 100 || code > 599 {
			p.fail(c.Line, field, "field %q: %q is not an HTTP status code (100-599)", field, c.Value)
			continue
		}
		codes = append(codes, code)
	}
	return codes
}

func (p *parser) defaults(s *Spec, app string, d Defaults) {
	if s.Tier == "" {
		s.Tier = TierInstall
	}
	if s.Domain == "" && !p.bad["domain"] {
		s.Domain = app
		if suffix := strings.Trim(d.DomainSuffix, "."); suffix != "" {
			s.Domain = app + "." + suffix
		}
	}
	if _, set := p.lines["timeout"]; !set {
		s.Timeout.Duration = d.Timeout
		if s.Timeout.Duration <= 0 {
			s.Timeout.Duration = DefaultTimeout
		}
	}
}

func hasSpace(s string) bool { return strings.IndexFunc(s, unicode.IsSpace) >= 0 }

// validate checks the decoded, defaulted spec; fields that failed to decode are not checked again.
func (p *parser) validate(s *Spec, app string) {
	check := func(field string, bad bool, format string, args ...any) {
		if bad && !p.bad[field] {
			p.fail(p.lines[field], field, format, args...)
		}
	}
	appErr := ValidateAppName(app)
	if appErr != nil {
		p.fail(0, "", "%v", appErr)
	}

	check("recipe", s.Recipe == "", "field \"recipe\" is required: name the recipe's folder under --recipes, e.g. recipe: custom-html")
	check("recipe", s.Recipe != "" && (!recipeRE.MatchString(s.Recipe) || strings.Contains(s.Recipe, "..")),
		"recipe %q is not a plain folder name: name a folder directly under --recipes (letters, digits, \".\", \"_\" and \"-\"; no \"/\" or \"..\"; not starting with \".\")", s.Recipe)
	check("version", s.Version == "" && s.Ref == "", "field \"version\" is required: a release tag of the recipe (e.g. 1.7.1+1.27.2) or a commit (or source and ref)")
	check("version", s.Version != "" && s.Ref != "", "version and ref both name what to deploy: keep one (ref deploys the commit it points at when the spec is first reconciled)")
	check("ref", s.Ref != "" && s.Source == "", "ref needs source: the git URL to fetch it from, e.g. source: https://git.coopcloud.tech/me/custom-html.git")
	check("ref", s.Ref != "" && (hasSpace(s.Ref) || strings.Contains(s.Ref, "..") || strings.HasPrefix(s.Ref, "-")),
		"ref %q is not a git ref: name a branch (main) or a ref such as refs/pull/123/head", s.Ref)
	if s.Source != "" {
		if why := checkSource(s.Source); why != "" {
			check("source", true, "source %q %s", shownURL(s.Source), why)
		}
	}
	check("version", hasSpace(s.Version), "version %q contains whitespace: write the tag or commit alone", s.Version)
	check("tier", s.Tier != TierInstall && s.Tier != TierUpgrade && s.Tier != TierBackup, "tier %q is not a tier: use install (the default), upgrade or backup", s.Tier)
	check("upgradeFrom", s.UpgradeFrom != "" && s.Tier != TierUpgrade && !p.bad["tier"],
		"upgradeFrom is only used with tier: upgrade: set tier: upgrade or remove upgradeFrom")
	check("upgradeFrom", hasSpace(s.UpgradeFrom), "upgradeFrom %q contains whitespace: write the tag or commit alone", s.UpgradeFrom)

	if _, set := p.lines["domain"]; set || appErr == nil {
		what := fmt.Sprintf("domain %q", s.Domain)
		if !set {
			what = fmt.Sprintf("the default domain %q (<app>.<domain suffix>)", s.Domain)
		}
		if why := checkDomain(s.Domain); why != "" {
			check("domain", true, "%s is not a DNS name: %s", what, why)
		} else if stack := strings.ReplaceAll(s.Domain, ".", "_"); len(stack) > MaxStackNameLen {
			check("domain", true, "%s gives the stack name %q, %d characters long; the limit is %d: use a shorter domain", what, stack, len(stack), MaxStackNameLen)
		}
	}

	if _, set := p.lines["timeout"]; set {
		check("timeout", s.Timeout.Duration <= 0, "timeout must be greater than zero, e.g. 10m (leave it out for the default)")
	}
	check("ttl", s.TTL.Duration < 0, "ttl must not be negative: leave it out for no deadline")
	check("minReady", s.MinReady != nil && s.MinReady.Duration < 0,
		"minReady must not be negative: 0s turns the stability window off, leave it out for the default (the service's update_config.monitor, else 5s)")
	if s.MinReady != nil {
		check("minReady", s.Timeout.Duration > 0 && s.MinReady.Duration >= s.Timeout.Duration,
			"minReady %s is not shorter than timeout %s: the app could never be Ready in time; shorten minReady or lengthen timeout", s.MinReady.Duration, s.Timeout.Duration)
	}

	if b := s.Backup; b != nil {
		if b.Schedule != "" {
			if _, err := ParseSchedule(b.Schedule); err != nil {
				check("backup.schedule", true, "backup.schedule %q: %v", b.Schedule, err)
			}
		}
		check("backup.keep", b.Keep < 0, "backup.keep must not be negative: it is how many complete backups to keep (leave it out to keep all)")
		if b.Restore != nil {
			check("backup.restore", b.Restore.RequestedAt == "", "backup.restore needs requestedAt: `reconciler restore APP [ID]` writes it")
			check("backup.restore.id", b.Restore.ID != "" && !ValidBackupID(b.Restore.ID),
				"backup.restore.id %q is not a backup ID: `reconciler backups APP` lists them", b.Restore.ID)
		}
	}

	for i, pr := range s.Health {
		prefix := fmt.Sprintf("health[%d]", i)
		if p.bad[prefix] {
			continue
		}
		switch {
		case pr.HTTP == "" && pr.TCP == "" && !p.bad[prefix+".http"] && !p.bad[prefix+".tcp"]:
			check(prefix, true, "%s sets neither http nor tcp: set exactly one", prefix)
		case pr.HTTP != "" && pr.TCP != "":
			check(prefix, true, "%s sets both http and tcp: set exactly one per probe (use two probes)", prefix)
		case pr.HTTP != "":
			if why := checkHTTPProbe(pr.HTTP); why != "" {
				check(prefix+".http", true, "%s.http %q %s", prefix, shownURL(pr.HTTP), why)
			}
		case pr.TCP != "":
			if why := checkTCPProbe(pr.TCP); why != "" {
				check(prefix+".tcp", true, "%s.tcp %q %s", prefix, pr.TCP, why)
			}
			check(prefix+".ok", len(pr.OK) > 0, "%s.ok only applies to http probes: remove it", prefix)
		}
		check(prefix+".stable", pr.Stable < 0, "%s.stable must not be negative: it counts consecutive successes", prefix)
	}
}

// checkSource says what is wrong with a recipe's git URL, or "".
func checkSource(s string) string {
	if hasSpace(s) {
		return "contains whitespace"
	}
	if strings.HasPrefix(s, "git@") && strings.Contains(s, ":") {
		return "" // scp-like SSH
	}
	u, err := url.Parse(s)
	if err != nil {
		return notURL(s, err)
	}
	switch u.Scheme {
	case "https", "http", "ssh", "git", "file":
	default:
		return "is not a git URL: use https://, ssh://, git@host:path or file://"
	}
	if u.Scheme != "file" && u.Host == "" {
		return "has no host"
	}
	return ""
}

// WithoutUserInfo is the URL u without its user info (a token, a password), for errors,
// statuses, logs and pages to show. A URL that parses loses what comes before the last "@"
// of its authority (a password may hold an "@"); an "@" in a path alone is no user info. ok
// is false for a URL with an "@" that does not parse (a password with an unescaped "/"):
// where its user info ends cannot be told, and shown is then u cut at its last "@", more than
// the user info rather than a part of it. A {domain} placeholder is taken for a host.
func WithoutUserInfo(u string) (shown string, ok bool) {
	scheme, rest, found := strings.Cut(u, "://")
	if !found || !strings.Contains(rest, "@") {
		return u, true
	}
	end := len(rest)
	p, err := url.Parse(strings.ReplaceAll(u, "{domain}", probeDomain))
	if err == nil {
		if p.User == nil {
			return u, true // an "@" in the path
		}
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			end = i
		}
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return u, err == nil
	}
	return scheme + "://" + rest[at+1:], err == nil
}

// shownURL is the URL u as an error quotes it: without its user info, as WithoutUserInfo
// shows it.
func shownURL(u string) string {
	shown, _ := WithoutUserInfo(u)
	return shown
}

// notURL says why s does not parse as a URL. url.Parse's error quotes s, and may quote a part
// of a password (an invalid port, an escape), so it is left out when s has an "@".
func notURL(s string, err error) string {
	if strings.Contains(s, "@") {
		return `is not a URL (its user info is not shown: write "/", "@" and "%" in a password as %2F, %40 and %25)`
	}
	return "is not a URL: " + err.Error()
}

// probeDomain stands in for {domain} when checking a probe's shape.
const probeDomain = "example.org"

func checkHTTPProbe(s string) string {
	if hasSpace(s) {
		return "contains whitespace"
	}
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return "must start with http:// or https://"
	}
	r := strings.ReplaceAll(s, "{domain}", probeDomain)
	if strings.ContainsAny(r, "{}") {
		return "has a placeholder other than {domain}, the only one substituted"
	}
	u, err := url.Parse(r)
	if err != nil {
		return notURL(r, err)
	}
	if u.Host == "" || u.Hostname() == "" {
		return "has no host: write e.g. https://{domain}/"
	}
	return ""
}

func checkTCPProbe(s string) string {
	if hasSpace(s) {
		return "contains whitespace"
	}
	r := strings.ReplaceAll(s, "{domain}", probeDomain)
	if strings.ContainsAny(r, "{}") {
		return "has a placeholder other than {domain}, the only one substituted"
	}
	host, port, err := net.SplitHostPort(r)
	if err != nil || host == "" {
		return "must be host:port, e.g. 127.0.0.1:64738"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "has no valid port (1-65535)"
	}
	return ""
}
