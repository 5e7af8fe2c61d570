package manifests

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	composetypes "github.com/docker/cli/cli/compose/types"
)

// maxObjectName is swarm's limit on secret and config names (and abra's MaxSecretLength).
const maxObjectName = 64

// maxSecretLength bounds the length modifier: swarm refuses secrets over 500 KiB anyway.
const maxSecretLength = 500 * 1024

// abraSecretName matches the raw (uninterpolated) name of a secret that abra manages:
// ${STACK_NAME}_<name>_${SECRET_<NAME>_VERSION}, the version possibly with a default
// (${SECRET_X_VERSION:-v1}). The <name> part need not spell the variable: bonfire names
// orchid_client_secret with SECRET_ORCID_CLIENT_SECRET_VERSION, and abra accepts that.
var abraSecretName = regexp.MustCompile(
	`^\$\{STACK_NAME\}_.+_(?:\$\{(SECRET_[A-Za-z0-9_]+_VERSION)(?::?-[^}]*)?\}|\$(SECRET_[A-Za-z0-9_]+_VERSION))$`)

// generatedSecrets finds the external secrets abra would generate: declared `external: true`,
// used by a service of the selected compose files, and named after the abra convention.
// Others (external secrets under any other name) must exist already and are not reported.
// labels makes the labels of each secret (a fresh map each call).
func generatedSecrets(cfg *composetypes.Config, raws []map[string]any, sample *envFile, labels func() map[string]string) ([]GeneratedSecret, error) {
	used := map[string][]string{}
	for _, svc := range cfg.Services {
		for _, s := range svc.Secrets {
			used[s.Source] = append(used[s.Source], svc.Name)
		}
	}
	var out []GeneratedSecret
	for id, sc := range cfg.Secrets {
		if !sc.External.External || len(used[id]) == 0 {
			continue
		}
		m := abraSecretName.FindStringSubmatch(rawSecretName(raws, id))
		if m == nil {
			continue
		}
		versionVar := m[1] + m[2]
		if strings.HasSuffix(sc.Name, "_") {
			return nil, fmt.Errorf("%w: secret %s (used by %s) has no version: set %s (e.g. v1) in the spec env",
				ErrInput, id, strings.Join(used[id], ", "), versionVar)
		}
		if err := checkObjectNames("secret", []string{sc.Name}); err != nil {
			return nil, err
		}
		g := GeneratedSecret{
			Name:       sc.Name,
			ID:         id,
			VersionVar: versionVar,
			Labels:     labels(),
			Generate:   true,
		}
		mods := sample.modifiers(versionVar)
		if v, ok := mods["length"]; ok {
			n, err := strconv.Atoi(v)
			// swarmkit takes a secret of less than 500 KiB ("less than 500KB"), not 500 KiB.
			if err != nil || n < 0 || n >= maxSecretLength {
				return nil, fmt.Errorf("%w: .env.sample: %s: length=%s is not a number from 0 to %d",
					ErrInput, versionVar, v, maxSecretLength-1)
			}
			g.Length = n
		}
		g.Charset = mods["charset"]
		if _, err := g.Alphabet(); err != nil {
			return nil, fmt.Errorf("%w: .env.sample: %s: %v", ErrInput, versionVar, err)
		}
		switch mods["generate"] {
		case "", "true":
		case "false":
			g.Generate = false
		default:
			return nil, fmt.Errorf("%w: .env.sample: %s: generate=%s must be true or false",
				ErrInput, versionVar, mods["generate"])
		}
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Character sets of abra's charset modifier, by name.
const (
	alphabetDefault = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	// alphabetSpecial avoids quotes, backslash, $, & and white space, which break the shell
	// scripts and env files secrets often end up in.
	alphabetSpecial = "!#%+,-.:=@^_~"
)

// Alphabet returns the characters to generate the secret from. Charset uses abra's names:
// "" or "default" (letters and digits), "special" (punctuation), or a comma-separated union
// such as "default,special". A value that names no set is taken as the literal alphabet.
func (g GeneratedSecret) Alphabet() (string, error) {
	if g.Charset == "" {
		return alphabetDefault, nil
	}
	var b strings.Builder
	for name := range strings.SplitSeq(g.Charset, ",") {
		switch name {
		case "default":
			b.WriteString(alphabetDefault)
		case "special":
			b.WriteString(alphabetSpecial)
		default:
			if strings.Contains(g.Charset, ",") {
				return "", fmt.Errorf("charset=%s: unknown character set %q (known: default, special)", g.Charset, name)
			}
			b.WriteString(g.Charset) // a literal alphabet
		}
	}
	if len(b.String()) < 2 {
		return "", fmt.Errorf("charset=%s: an alphabet needs at least two characters", g.Charset)
	}
	return b.String(), nil
}

// rawSecretName is the `name:` of secret id as written in the compose files; the last file that
// sets it wins, as in the merge.
func rawSecretName(raws []map[string]any, id string) string {
	name := ""
	for _, raw := range raws {
		secrets, _ := raw["secrets"].(map[string]any)
		s, _ := secrets[id].(map[string]any)
		if n, ok := s["name"].(string); ok {
			name = n
		}
	}
	return name
}

// validObjectName is swarm's rule for secret and config names (swarmkit controlapi).
var validObjectName = regexp.MustCompile(`^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$`)

// checkObjectNames fails early, before anything is created, on names swarm would refuse.
// The usual cause is an unset version variable (a name ending in "_") or a long stack name.
func checkObjectNames(kind string, names []string) error {
	for _, n := range names {
		if len(n) > maxObjectName {
			return fmt.Errorf("%w: %s name %s is %d characters, over swarm's limit of %d: use a shorter domain (stack name)",
				ErrInput, kind, n, len(n), maxObjectName)
		}
		if !validObjectName.MatchString(n) {
			return fmt.Errorf("%w: %s name %q is not valid in swarm (only [a-zA-Z0-9-_.], starting and ending with a letter or digit): is a version variable in its name unset?",
				ErrInput, kind, n)
		}
	}
	return nil
}
