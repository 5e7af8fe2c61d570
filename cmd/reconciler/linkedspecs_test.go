package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLinkedSpecsWarning: a spec directory that is a symbolic link, with no --owner, is
// warned about (its owner would change with the link's target); a plain directory, or one
// with --owner, is not.
func TestLinkedSpecsWarning(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "r1")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "specs")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if w := linkedSpecsWarning(link, ""); !strings.Contains(w, "set --owner") {
		t.Errorf("a linked spec directory without --owner: %q, want a warning saying to set --owner", w)
	}
	if w := linkedSpecsWarning(link+"/", ""); w == "" {
		t.Error("a linked spec directory given with a trailing slash: no warning")
	}
	for _, tc := range []struct{ specs, owner string }{{link, "ci"}, {dir, ""}, {filepath.Join(root, "none"), ""}} {
		if w := linkedSpecsWarning(tc.specs, tc.owner); w != "" {
			t.Errorf("specs %s, owner %q: %q, want no warning", tc.specs, tc.owner, w)
		}
	}
}
