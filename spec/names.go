package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// MaxStackNameLen is the longest stack name swarm tooling copes with: abra refuses longer ones,
// because service names (<stack>_<service>) and the secrets named after them hit engine limits.
const MaxStackNameLen = 45

var appNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// specExts are the extensions a spec file may have; anything else in the directory is ignored
// so that READMEs, editor files and atomic writers' temporary files never become apps.
var specExts = []string{".yml", ".yaml", ".json"}

// AppName returns the app name for a spec file's base name, and false for files to ignore:
// names starting with ".", ending in ".tmp", "~", ".swp", or without a .yml/.yaml/.json extension.
// It does not validate the name (a file "Bad_Name.yml" returns "Bad_Name", true; validation
// then fails), so that a misnamed file is reported instead of silently ignored.
func AppName(filename string) (string, bool) {
	base := filepath.Base(filename)
	if strings.HasPrefix(base, ".") || strings.HasSuffix(base, ".tmp") ||
		strings.HasSuffix(base, "~") || strings.HasSuffix(base, ".swp") {
		return "", false
	}
	for _, ext := range specExts {
		if name, ok := strings.CutSuffix(base, ext); ok && name != "" {
			return name, true
		}
	}
	return "", false
}

// ValidateAppName checks ^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$, the shape that keeps an app
// name usable as a label value, a file name and the first label of a default domain.
func ValidateAppName(name string) error {
	if appNameRE.MatchString(name) {
		return nil
	}
	var why string
	switch {
	case name == "":
		why = "it is empty"
	case len(name) > 32:
		why = fmt.Sprintf("it is %d characters long, the limit is 32", len(name))
	case strings.ToLower(name) != name:
		why = "it has uppercase letters"
	case strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-"):
		why = `it starts or ends with "-"`
	default:
		why = `it has characters other than a-z, 0-9 and "-"`
	}
	return fmt.Errorf("app name %q is not valid (%s): rename the spec file to 1-32 characters of a-z, 0-9 and \"-\", not starting or ending with \"-\"", name, why)
}

// Generation is "sha256:" + hex of the file's bytes: CI computes the same value from the file it
// wrote and compares it with the status file's observedGeneration.
func Generation(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// GenerationWith is the generation of a spec file's bytes with the overlays read for it: what
// the status's observedGeneration says once the reconciler has read both.
func GenerationWith(data []byte, overlays []OverlayDoc) string {
	return overlayGeneration(Generation(data), overlays)
}

// StackName is the domain with dots replaced by underscores, as abra names stacks, so stacks
// deployed by the reconciler and by hand look the same. It is an error if over 45 characters.
func StackName(domain string) (string, error) {
	stack := strings.ReplaceAll(domain, ".", "_")
	if len(stack) > MaxStackNameLen {
		return "", fmt.Errorf("stack name %q (from domain %q) is %d characters long, the limit is %d: set a shorter domain", stack, domain, len(stack), MaxStackNameLen)
	}
	return stack, nil
}

// checkDomain returns why domain is not a DNS name a stack can be deployed under, or "".
func checkDomain(domain string) string {
	switch {
	case domain == "":
		return "it is empty"
	case len(domain) > 253:
		return fmt.Sprintf("it is %d characters long, the limit is 253", len(domain))
	case strings.ToLower(domain) != domain:
		return "it has uppercase letters: write it in lowercase"
	case strings.HasSuffix(domain, "."):
		return "it ends with \".\": write it without the trailing dot"
	}
	for label := range strings.SplitSeq(domain, ".") {
		switch {
		case label == "":
			return "it has an empty label (\"..\" or a leading \".\")"
		case len(label) > 63:
			return fmt.Sprintf("label %q is %d characters long, the limit is 63", label, len(label))
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Sprintf("label %q starts or ends with \"-\"", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Sprintf("label %q has %q; only a-z, 0-9 and \"-\" are allowed", label, r)
			}
		}
	}
	return ""
}

// secretWords are what the names of secret values hold, as people name them.
var secretWords = regexp.MustCompile(`(?i)pass|secret|token|key|credential|auth|private|salt|cert|dsn`)

// SecretName reports whether an env variable's name says its value is secret: the value is
// hidden from the web view's spec page and redacted from the task logs a status keeps. A
// SECRET_X_VERSION names a secret's version, not its value.
func SecretName(name string) bool {
	return secretWords.MatchString(name) && !strings.HasSuffix(strings.ToUpper(name), "_VERSION")
}
