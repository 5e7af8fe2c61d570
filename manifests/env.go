package manifests

import (
	"errors"
	"fmt"
	"maps"
	"strings"
)

// appEnv is the env of one app, built like `abra app deploy` builds it.
type appEnv struct {
	vars map[string]string
	// sample is the parsed .env.sample, for the secret modifiers.
	sample *envFile
}

// buildEnv layers, lowest first: .env.sample, the `export NAME=value` lines of abra.sh, the
// spec's env, then DOMAIN and STACK_NAME. A layer replaces the values below it.
//
// References ($NAME) inside .env.sample and abra.sh see the spec's env and DOMAIN/STACK_NAME
// first: with abra the operator edits those values into the app's .env file (abra app new
// writes DOMAIN there), so every later line of that file refers to the operator's value, not to
// the sample's. The spec's values are taken literally (no expansion): they may hold passwords.
func buildEnv(sample, abraSh string, specEnv map[string]string, domain, stack string) (*appEnv, error) {
	pinned := make(map[string]string, len(specEnv)+2)
	maps.Copy(pinned, specEnv)
	pinned["DOMAIN"] = domain
	pinned["STACK_NAME"] = stack
	pin := func(name string) (string, bool) { v, ok := pinned[name]; return v, ok }

	s, err := parseEnvFile(sample, pin, nil)
	if err != nil {
		return nil, fmt.Errorf(".env.sample: %w", err)
	}
	vars := maps.Clone(s.vars)
	exports, err := parseAbraShBounded(abraSh, pin, func(name string) (string, bool) { v, ok := vars[name]; return v, ok })
	if err != nil {
		return nil, fmt.Errorf("abra.sh: %w", err)
	}
	maps.Copy(vars, exports)
	maps.Copy(vars, pinned)
	return &appEnv{vars: vars, sample: s}, nil
}

// parseAbraSh takes only the `export NAME=value` lines of abra.sh that start at the line's
// start, the way abra reads the config versions a recipe vendors there; the rest of the file
// is shell that abra does not run at deploy time either. An indented export is inside a
// block: a function's body (an `abra app cmd` command, whose exports happen when it runs, in
// the container), an if's, a loop's. A line that does not parse as an assignment (a quote left
// open for the next line) is shell we do not understand and is skipped, as abra does.
func parseAbraSh(src string, pinned, base lookupFunc) map[string]string {
	vars, _ := parseAbraShBounded(src, pinned, base)
	return vars
}

// parseAbraShBounded is parseAbraSh, failing once the exports' values add up to more than
// MaxEnvBytes, or once one line expands to more than MaxEnvValueBytes.
func parseAbraShBounded(src string, pinned, base lookupFunc) (map[string]string, error) {
	vars := map[string]string{}
	total := 0
	lookup := func(name string) (string, bool) {
		if v, ok := vars[name]; ok {
			return v, true
		}
		return base(name)
	}
	for raw := range strings.Lines(src) {
		if !strings.HasPrefix(raw, "export") {
			continue
		}
		line := strings.TrimSpace(raw)
		rest, ok := strings.CutPrefix(line, "export")
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t') || !strings.Contains(rest, "=") {
			continue
		}
		f, err := parseEnvFile(line, pinned, lookup)
		if errors.Is(err, errEnvTooLarge) {
			return vars, err
		}
		if err != nil {
			continue
		}
		for k, v := range f.vars {
			if total += len(v); total > MaxEnvBytes {
				return vars, fmt.Errorf("export %s: the values expand to more than %d MiB", k, MaxEnvBytes>>20)
			}
			vars[k] = v
		}
	}
	return vars, nil
}
