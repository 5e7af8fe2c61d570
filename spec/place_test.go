package spec

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
	entries = slices.DeleteFunc(entries, func(e os.DirEntry) bool { return e.Name() == editLockName }) // kept, as lockfiles are
	if len(entries) != 1 || entries[0].Name() != "a.yml" {
		t.Errorf("directory after Place: %v, want only a.yml", entries)
	}
	d, err := LoadApp(dir, "a", Defaults{})
	if err != nil || d == nil || d.Err != nil || d.Spec.Version != "v2" {
		t.Errorf("after Place: %+v, %v; want the new spec, valid", d, err)
	}
}

// TestPlaceMode: a placed spec is readable by others (its temporary file was 0600), and an
// edit keeps the mode a person gave the file.
func TestPlaceMode(t *testing.T) {
	dir := t.TempDir()
	mode := func() fs.FileMode {
		t.Helper()
		fi, err := os.Stat(filepath.Join(dir, "a.yml"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	if err := Place(dir, "a", []byte("recipe: r\nversion: v1\n")); err != nil {
		t.Fatal(err)
	}
	if m := mode(); m != 0o644 {
		t.Fatalf("a new spec placed with mode %v, want -rw-r--r--", m)
	}
	if err := os.Chmod(filepath.Join(dir, "a.yml"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := Place(dir, "a", []byte("recipe: r\nversion: v2\n")); err != nil {
		t.Fatal(err)
	}
	if m := mode(); m != 0o640 {
		t.Fatalf("an edit placed with mode %v, want the file's -rw-r-----", m)
	}
}
