package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/swarm-reconciler/reconciler/locks"
)

// TestLinkedSpecsWarningLinkAbove: git-sync's usual layout has the spec directory inside the
// synced tree (--specs /git/current/specs, current being the link git-sync moves). The owner
// label (locks.SpecDirID) follows every link of the path, so it changes when current moves:
// the warning must be given there too.
func TestLinkedSpecsWarningLinkAbove(t *testing.T) {
	root := t.TempDir()
	for _, r := range []string{"r1", "r2"} {
		if err := os.MkdirAll(filepath.Join(root, r, "specs"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	current := filepath.Join(root, "current")
	if err := os.Symlink(filepath.Join(root, "r1"), current); err != nil {
		t.Fatal(err)
	}
	specs := filepath.Join(current, "specs")
	before := locks.SpecDirID(specs)
	if err := os.Remove(current); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "r2"), current); err != nil {
		t.Fatal(err)
	}
	if locks.SpecDirID(specs) == before {
		// Not a skip: a test that passes without looking cannot fail.
		t.Fatal("the spec directory's ID no longer follows a link above it: if that is meant, the warning has nothing to warn about; drop it with this test")
	}
	if w := linkedSpecsWarning(specs, ""); w == "" {
		t.Error("--specs under a symbolic link that a tool moves: the owner changes with it, and no warning")
	}
}
