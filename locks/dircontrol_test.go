package locks

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenRefusesADirAnotherUserControls: the default lock directory is under /run/lock,
// which Debian mounts world-writable (1777). A local user who creates
// /run/lock/swarm-reconciler first (or plants a symlink at that name) owns the directory: they
// can hold specs-<id>.lock so no reconciler starts, and unlink an app lockfile a CI harness
// holds, after which the reconciler's sweep takes a fresh file at the path and reaps the
// harness's app: two holders of one lock. Open must refuse a lock directory it does not control.
func TestOpenRefusesADirAnotherUserControls(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs the unit tests as root: this test gives a directory to another user")
		}
		t.Skip("needs root to give the directory to another user")
	}
	const nobody = 65534
	runLock := t.TempDir() // as /run/lock: drwxrwxrwt
	if err := os.Chmod(runLock, 0o1777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(runLock, "swarm-reconciler")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, nobody, nobody); err != nil { // created by that user first
		t.Fatal(err)
	}
	if d, err := Open(path); err == nil {
		// What the directory's owner can do: take a held lock's file away from its holder.
		held, err := d.TryApp("ci.example.org")
		if err != nil {
			t.Fatal(err)
		}
		defer held.Release()
		os.Remove(filepath.Join(path, "app-ci.example.org.lock")) // as uid 65534, the directory's owner, may
		second, err := d.TryApp("ci.example.org")
		if second != nil {
			defer second.Release()
		}
		if !errors.Is(err, ErrHeld) {
			t.Errorf("Open accepted a lock directory another user (uid %d) created under a world-writable parent: its owner removed a held lockfile and a second TryApp of the same domain succeeded (two holders)", nobody)
		}
	}

	// A symlink planted at the name by another user is the same attack.
	link := filepath.Join(runLock, "via-link")
	own := filepath.Join(t.TempDir(), "locks")
	if err := os.Mkdir(own, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(own, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(link); err == nil {
		t.Error("Open accepted a lock directory reached through a symlink another user planted in a world-writable parent")
	}

	// A world-writable lock directory: anyone may unlink (or squat) lockfiles.
	ww := filepath.Join(t.TempDir(), "ww")
	if err := os.Mkdir(ww, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ww, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ww); err == nil {
		t.Error("Open accepted a world-writable lock directory")
	}

	// Still fine: our own directory there, a symlink we own to ours, and a directory of another
	// owner under a parent only its owner may write (an NFS export with root_squash).
	if _, err := Open(filepath.Join(runLock, "ours")); err != nil {
		t.Errorf("Open of a directory it creates: %v", err)
	}
	ownLink := filepath.Join(runLock, "own-link")
	if err := os.Symlink(own, ownLink); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ownLink); err != nil {
		t.Errorf("Open through our own symlink: %v", err)
	}
	squashed := filepath.Join(t.TempDir(), "squashed")
	if err := os.Mkdir(squashed, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(squashed, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(squashed); err != nil {
		t.Errorf("Open of a directory an administrator gave another owner, under a closed parent: %v", err)
	}
}
