package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEditLockHeldTooLong: an edit that waits on the lock longer than editLockWait gives up,
// naming the lock file and what to look for.
func TestEditLockHeldTooLong(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockEdits(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	defer func(d time.Duration) { editLockWait = d }(editLockWait)
	editLockWait = 100 * time.Millisecond
	if err := Place(dir, "a", []byte("recipe: r\nversion: 1\n")); err == nil || !strings.Contains(err.Error(), editLockName) || !strings.Contains(err.Error(), "hung") {
		t.Fatalf("Place beside a held edit lock: %v, want an error naming %s", err, editLockName)
	}
	if fi, err := os.Stat(filepath.Join(dir, editLockName)); err != nil || fi.Mode().Perm()&0o044 == 0 {
		t.Errorf("lock file mode %v, %v: want it readable by others (0666 less the umask)", fi.Mode().Perm(), err)
	}
}

// TestEditLockFollowsNoSymlink: a symlink planted at the edit lock's path (a spec directory
// others can write, an edit run as root) makes no file elsewhere: the edit is refused.
func TestEditLockFollowsNoSymlink(t *testing.T) {
	dir, elsewhere := t.TempDir(), filepath.Join(t.TempDir(), "nologin")
	if err := os.Symlink(elsewhere, filepath.Join(dir, editLockName)); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockEdits(dir)
	if err == nil {
		unlock()
		t.Error("an edit lock through a symlink was taken")
	}
	if _, serr := os.Lstat(elsewhere); serr == nil {
		t.Errorf("the edit lock made %s through the symlink", elsewhere)
	}
}
