//go:build unix && !linux

package locks

import (
	"os"
	"time"
)

// touch sets the lockfile's mtime to now, so that its age tells how long the lock has been
// held. Best effort: the mtime is informational.
func touch(_ *os.File, path string) {
	now := time.Now()
	_ = os.Chtimes(path, now, now)
}
