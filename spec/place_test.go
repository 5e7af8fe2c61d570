package spec

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPlaceNeverLeavesTheAppWithoutASpec: replacing an app's .yaml and .json by a .yml, the new
// file is in place before any other is removed, and the app has a spec file before and after
// each removal: a reconcile at any of these moments finds one (or two, an Invalid that touches
// nothing), never none, which would tear the app down.
func TestPlaceNeverLeavesTheAppWithoutASpec(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"a.yaml": "recipe: r\nversion: v1\ndomain: a.example.org\n",
		"a.json": `{"recipe": "r", "version": "v1", "domain": "a.example.org"}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data := []byte("recipe: r\nversion: v2\ndomain: a.example.org\n")

	hasSpec := func(when string) {
		t.Helper()
		if d, err := LoadApp(dir, "a", Defaults{}); err != nil || d == nil {
			t.Errorf("%s: the app has no spec file (%v): a reconcile now would tear it down", when, err)
		}
	}
	var removed []string
	removeOther = func(path string) error {
		name := filepath.Base(path)
		if got, err := os.ReadFile(filepath.Join(dir, "a.yml")); string(got) != string(data) {
			t.Errorf("before removing %s: a.yml is %q (%v), want the new spec in place", name, got, err)
		}
		hasSpec("before removing " + name)
		err := os.Remove(path)
		if err == nil {
			removed = append(removed, name)
		}
		hasSpec("after removing " + name)
		return err
	}
	t.Cleanup(func() { removeOther = os.Remove })

	if err := Place(dir, "a", data); err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Errorf("removed %v, want a.yaml and a.json", removed)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "a.yml" {
		t.Errorf("directory after Place: %v, want only a.yml", entries)
	}
	d, err := LoadApp(dir, "a", Defaults{})
	if err != nil || d == nil || d.Err != nil || d.Spec.Version != "v2" {
		t.Errorf("after Place: %+v, %v; want the new spec, valid", d, err)
	}
}
