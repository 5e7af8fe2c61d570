package spec

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// editLockName is the file in a spec directory whose flock the commands that edit specs (apply,
// delete, backup and restore requests) hold while they edit: a request reads the spec, adds to
// it and writes it back, and an apply or delete landing in between would be undone. Its name
// is a dotfile, which the reconciler ignores.
const editLockName = ".edits.lock"

// lockEdits takes dir's edit lock, waiting for another edit to end; the edits are short.
func lockEdits(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, editLockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock the spec directory %s for an edit: %w", dir, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock the spec directory %s for an edit: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
