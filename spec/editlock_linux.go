package spec

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

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
