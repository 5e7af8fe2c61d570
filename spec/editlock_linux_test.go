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
