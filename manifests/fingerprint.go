package manifests

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// LabelFingerprint is on every secret whose value the reconciler made or was given (generated,
// or `reconciler secret insert`): a salted SHA-256 of the value and its length, so that the
// value can be recognised, and redacted, in a task's log lines without being kept anywhere.
// Swarm never hands a secret's value back, and a random value of 32 characters cannot be
// recovered from its hash; anyone who can read the label can read the secret through a
// service anyway.
const LabelFingerprint = "swarm-reconciler.fingerprint"

// Fingerprint is a secret value's LabelFingerprint: "sha256:<length>:<salt>:<hash>".
type Fingerprint struct {
	Length int
	salt   []byte
	sum    []byte
}

// NewFingerprint fingerprints value with a fresh random salt.
func NewFingerprint(value []byte) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("fingerprint salt: %w", err)
	}
	h := sha256.New() // no buffer holds a copy of the value
	h.Write(salt)
	h.Write(value)
	return fmt.Sprintf("sha256:%d:%s:%s", len(value), hex.EncodeToString(salt), hex.EncodeToString(h.Sum(nil))), nil
}

// ParseFingerprint reads a LabelFingerprint value.
func ParseFingerprint(label string) (Fingerprint, error) {
	parts := strings.Split(label, ":")
	if len(parts) != 4 || parts[0] != "sha256" {
		return Fingerprint{}, fmt.Errorf("fingerprint %q is not sha256:<length>:<salt>:<hash>", label)
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil || n <= 0 {
		return Fingerprint{}, fmt.Errorf("fingerprint %q: bad length", label)
	}
	salt, err := hex.DecodeString(parts[2])
	if err != nil {
		return Fingerprint{}, fmt.Errorf("fingerprint %q: bad salt", label)
	}
	sum, err := hex.DecodeString(parts[3])
	if err != nil || len(sum) != sha256.Size {
		return Fingerprint{}, fmt.Errorf("fingerprint %q: bad hash", label)
	}
	return Fingerprint{Length: n, salt: salt, sum: sum}, nil
}

// Matches reports whether b is the fingerprinted value.
func (f Fingerprint) Matches(b []byte) bool {
	if len(b) != f.Length {
		return false
	}
	h := sha256.New()
	h.Write(f.salt)
	h.Write(b)
	return subtle.ConstantTimeCompare(h.Sum(nil), f.sum) == 1
}

// LabelLineFingerprints is on a secret whose value has several lines (a PEM key, a
// certificate) beside LabelFingerprint: the fingerprints of each of its lines that could not
// be any line (8 bytes or more, the spaces around it not counted), space-separated. Logs are
// read a line at a time, and a task that prints such a value prints it a line at a time.
const LabelLineFingerprints = "swarm-reconciler.fingerprint.lines"

// maxLineFingerprints bounds how many lines of a value are fingerprinted: a certificate chain
// of a few certificates; a log line is matched against each.
const maxLineFingerprints = 128

// LineFingerprints is the LabelLineFingerprints of value: "" for a value of one line.
func LineFingerprints(value []byte) (string, error) {
	lines := bytes.Split(value, []byte("\n"))
	if len(lines) < 2 {
		return "", nil
	}
	var prints []string
	for _, l := range lines {
		if l = bytes.TrimSpace(l); len(l) < 8 || len(prints) == maxLineFingerprints {
			continue
		}
		fp, err := NewFingerprint(l)
		if err != nil {
			return "", err
		}
		prints = append(prints, fp)
	}
	return strings.Join(prints, " "), nil
}

// ParseLineFingerprints reads a LabelLineFingerprints value; what does not parse is left out.
func ParseLineFingerprints(label string) []Fingerprint {
	var out []Fingerprint
	for _, s := range strings.Fields(label) {
		if f, err := ParseFingerprint(s); err == nil {
			out = append(out, f)
		}
	}
	return out
}
