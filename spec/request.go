package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// Request records a request for a backup (backup.requestedAt) or a restore
// (backup.restore: requestedAt and id, empty for the newest backup) in app's spec file, with
// value as the request's token, and returns the new generation. The rest of the file is kept,
// comments included; it is written back as YAML through Place (a JSON spec becomes
// <app>.yml). The request is carried out once, when the reconciler sees the new value.
// deployed is LoadDeployed's: which app holds a stack two specs map to.
func Request(dir, app string, restore bool, id, value string, d Defaults, deployed func(app, stack string) bool) (string, error) {
	unlock, err := lockEdits(dir)
	if err != nil {
		return "", err
	}
	defer unlock()
	des, err := LoadDeployed(dir, app, d, deployed)
	switch {
	case err != nil:
		return "", err
	case des == nil:
		return "", fmt.Errorf("no spec of %s in %s: apply one first (pass --specs DIR as given to reconciler run)", app, dir)
	case des.Err != nil:
		return "", fmt.Errorf("the spec of %s is not valid; fix it first: %w", app, des.Err)
	case des.Spec.Suspend:
		// The reconciler only observes a suspended app: the request would wait for the
		// suspension's end, and a --wait for it to the timeout.
		return "", fmt.Errorf("%s is suspended (suspend: true in %s): the reconciler carries out no backup or restore of it; remove suspend first", app, des.Path)
	}
	data, err := os.ReadFile(des.Path)
	if err != nil {
		return "", fmt.Errorf("read spec of %s: %w", app, err)
	}
	var doc yaml.Node
	// JSON as Parse reads it: yaml.v3 refuses valid JSON escapes ("\/", surrogate pairs).
	if body := bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")); filepath.Ext(des.Path) == ".json" || json.Valid(body) {
		root, jerr := jsonNode(body)
		err = jerr
		if root != nil {
			doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}
		}
	} else {
		err = yaml.Unmarshal(data, &doc)
	}
	if err != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return "", fmt.Errorf("spec of %s: cannot edit %s (%v): add the request by hand", app, des.Path, err)
	}
	backup := child(doc.Content[0], "backup", yaml.MappingNode)
	if restore {
		r := child(backup, "restore", yaml.MappingNode)
		setScalar(r, "requestedAt", value)
		if id != "" {
			setScalar(r, "id", id)
		} else {
			remove(r, "id")
		}
	} else {
		setScalar(backup, "requestedAt", value)
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return "", fmt.Errorf("spec of %s: %w", app, err)
	}
	if _, err := Parse(app+".yml", app, out.Bytes(), d); err != nil {
		return "", fmt.Errorf("spec of %s with the request does not validate: %w", app, err)
	}
	beforeRequestPlace()
	if err := place(dir, app, out.Bytes()); err != nil {
		return "", err
	}
	return GenerationWith(out.Bytes(), des.Overlays), nil
}

// beforeRequestPlace runs between a request's read of the spec and its write: a variable so
// that a test can edit the spec at that moment.
var beforeRequestPlace = func() {}

// child is the value of key in mapping m, made a kind node (replacing a null) when absent.
func child(m *yaml.Node, key string, kind yaml.Kind) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			if v := m.Content[i+1]; v.Kind == kind {
				return v
			}
			m.Content[i+1] = &yaml.Node{Kind: kind, Tag: "!!map"}
			return m.Content[i+1]
		}
	}
	v := &yaml.Node{Kind: kind, Tag: "!!map"}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
	return v
}

func setScalar(m *yaml.Node, key, value string) {
	v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value, Style: yaml.DoubleQuotedStyle}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

func remove(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// AttemptKey identifies what a desired state asks to be deployed: the spec less its backup
// and restore requests, with its overlays' contents. A request changes the generation (the
// file's bytes) but not the key, so it does not start a new attempt: a Degraded app stays
// Degraded, a Ready one Ready. An overlay file edited changes both, as an edit of the spec
// does. A spec without overlays keeps the key of its spec alone.
func (d *Desired) AttemptKey() string {
	return overlayGeneration(d.Spec.attemptKey(), d.Overlays)
}

// SameAttempt says d only adds a backup or restore request to the attempt prev records (its
// AttemptKey): it continues that attempt.
func (d *Desired) SameAttempt(prev *Status) bool {
	return d.Spec != nil && prev.AttemptKey != "" && prev.Phase != PhaseInvalid &&
		prev.AttemptKey == d.AttemptKey()
}

// DeployedCommit is the commit d's ref was resolved to when the attempt prev records began,
// while d is still that attempt (the generation prev observed, or one that only adds a
// request): what the reconciler renders for d. It is "" when d follows no ref, or when the
// ref is to be resolved again (a new attempt, or none yet).
func (d *Desired) DeployedCommit(prev *Status) string {
	if d.Spec == nil || d.Spec.Ref == "" || prev == nil || prev.SourceCommit == "" ||
		prev.Phase == PhaseDeleted || prev.Phase == PhaseDeleting || prev.Phase == PhaseExpired {
		return "" // none, or an earlier life's: the app is deployed again, afresh
	}
	if prev.ObservedGeneration == d.Generation || d.SameAttempt(prev) {
		return prev.SourceCommit
	}
	return ""
}

func (s *Spec) attemptKey() string {
	c := s.clone()
	if c.Backup != nil {
		c.Backup.RequestedAt, c.Backup.Restore = "", nil
		if c.Backup.Schedule == "" && c.Backup.Keep == 0 && c.Backup.Checks.BeforeBackup == nil &&
			c.Backup.Checks.BeforeRestore == nil && c.Backup.Checks.AfterRestore == nil {
			c.Backup = nil
		}
	}
	data, _ := json.Marshal(c)
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}
