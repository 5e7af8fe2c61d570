package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// editLockWait bounds the wait for another edit: edits take milliseconds, so a longer one is
// a command hung while it holds the lock, and a person should look.
var editLockWait = 30 * time.Second

// lockEdits takes dir's edit lock (editLockName), waiting for another edit to end. The file is
// made 0666 less the umask, so a spec directory shared by several users stays usable by each;
// one that may not write it locks it read-only (a flock needs no write access).
func lockEdits(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, editLockName)
	const shared = "whoever edits specs must be able to write the directory and " + editLockName + " (for several users: a group-writable directory, setgid, and umask 002)"
	// O_NOFOLLOW: a symlink planted at the path must not make an edit (often run as root)
	// create or open a file elsewhere, as the locks package refuses for its lockfiles.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o666)
	if errors.Is(err, fs.ErrPermission) {
		if ro, rerr := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0); rerr == nil {
			f, err = ro, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("lock the spec directory %s for an edit: %w: %s", dir, err, shared)
	}
	deadline := time.Now().Add(editLockWait)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("lock the spec directory %s for an edit: another edit has held %s for %s; is a reconciler command (apply, delete, backup, restore) hung? `fuser %s` names its process", dir, editLockName, editLockWait, path)
			}
			// EBADF: an NFS mount takes an exclusive flock only on a file open for writing.
			return nil, fmt.Errorf("lock the spec directory %s for an edit: %w: %s", dir, err, shared)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
