package manifests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Every process exports its trees into one directory of its own in the temporary directory, its
// export root, and holds an flock on that directory for as long as it lives. Cleanup
// removes a root, but a process that is killed (SIGKILL, OOM, a host's reboot of a CI runner)
// never runs it, and a reconciler that crashes in a loop would leave a root each time. The
// kernel releases an flock when its holder exits, however it exits, so a root whose lock can be
// taken is no live process's: the first export of every process removes those (sweepRoots). A
// process id could not say as much: ids are reused. The lock is on the directory, not on a file
// in it: a temporary-directory cleaner ages out files nobody reads (systemd-tmpfiles leaves a
// directory that holds an flock), and a sweep killed half-way leaves a root that is still one.
const (
	// rootPrefix names the export roots; a root is renamed to it only once its lock is held.
	rootPrefix = "swarm-reconciler-trees-"
	// stagingPrefix names a root being made, before its lock is held: the sweep cannot tell it
	// from a dead one but by age.
	stagingPrefix = ".swarm-reconciler-trees-"
	// treePrefix named the trees of versions that exported them into the temporary directory
	// itself; such a tree is used for at most treeMaxAge, so one older than twice that is left.
	treePrefix = "swarm-reconciler-tree-"
	// stagingMaxAge is how long a root may stay unnamed: making it takes a few system calls.
	stagingMaxAge = time.Minute
)

// SweepExports removes from the temporary directory what processes that ended without Cleanup
// left of their exports. A long-running process calls it as it starts, so that a reconciler
// killed before its first render (or crashing in a loop) leaves nothing behind either; the first
// export of every process sweeps too.
func SweepExports() {
	sweepRoots(os.TempDir(), "", time.Now()) // a live root's lock, this process's too, is held
}

// exportRoot is this process's root: made on the first export, removed by Cleanup.
type exportRoot struct {
	mu   sync.Mutex
	dir  string
	lock *os.File
}

var root = &exportRoot{}

// get returns the root, making it (and sweeping the roots of ended processes) if there is none
// or if it was removed from under the process (a temporary-directory cleaner).
func (r *exportRoot) get() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.getLocked()
}

// mkdirTemp makes a new directory in the root with the root's mutex held throughout: a Cleanup
// between get and the MkdirTemp would remove the root under it.
func (r *exportRoot) mkdirTemp(pattern string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	dir, err := r.getLocked()
	if err != nil {
		return "", err
	}
	return os.MkdirTemp(dir, pattern)
}

func (r *exportRoot) getLocked() (string, error) {
	if r.dir != "" {
		if _, err := os.Lstat(r.dir); err == nil {
			return r.dir, nil
		}
		r.closeLocked()
	}
	tmp := os.TempDir()
	staging, err := os.MkdirTemp(tmp, stagingPrefix)
	if err != nil {
		return "", fmt.Errorf("create export directory: %w", err)
	}
	lock, err := lockDir(staging)
	if err != nil {
		_ = os.RemoveAll(staging)
		return "", fmt.Errorf("lock export directory: %w", err)
	}
	dir := filepath.Join(tmp, rootPrefix+strings.TrimPrefix(filepath.Base(staging), stagingPrefix))
	if err := os.Rename(staging, dir); err != nil {
		lock.Close()
		_ = os.RemoveAll(staging)
		return "", fmt.Errorf("create export directory: %w", err)
	}
	r.dir, r.lock = dir, lock
	sweepRoots(tmp, dir, time.Now())
	return dir, nil
}

// lockDir takes an exclusive flock on the directory dir without waiting, held until the file
// returned is closed (at the process's exit at the latest). A rename keeps it: it is the inode's.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// removeIfEmpty removes the root once no tree is left in it (trees still in use by a render are
// removed when it ends; their root then stays until the process exits, and the next process's
// sweep removes it).
func (r *exportRoot) removeIfEmpty() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dir == "" {
		return
	}
	if os.Remove(r.dir) != nil {
		return // not empty, or gone
	}
	r.closeLocked()
}

func (r *exportRoot) closeLocked() {
	if r.lock != nil {
		r.lock.Close()
	}
	r.dir, r.lock = "", nil
}

// sweepRoots removes from tmp the export roots of processes that have ended (their lock can be
// taken), roots left unnamed for longer than stagingMaxAge, and trees of older versions not used
// for twice treeMaxAge. own is the caller's root. Nothing that fails to go is an error: the
// next process tries again.
func sweepRoots(tmp, own string, now time.Time) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		dir := filepath.Join(tmp, name)
		if !e.IsDir() || dir == own || !ownedByUs(e) {
			continue // another user's: not ours to remove, nor to chmod through (a symlink swapped in)
		}
		switch {
		case strings.HasPrefix(name, rootPrefix):
			removeIfUnlocked(dir)
		case strings.HasPrefix(name, stagingPrefix):
			removeIfOlder(e, dir, now, stagingMaxAge)
		case strings.HasPrefix(name, treePrefix):
			removeIfOlder(e, dir, now, 2*treeMaxAge)
		}
	}
}

// removeIfUnlocked removes the root dir if its lock can be taken, holding the lock meanwhile so
// that two sweeps do not race.
func removeIfUnlocked(dir string) {
	f, err := lockDir(dir)
	if err != nil {
		return // held: its process is alive (or a sweep of another process is at it)
	}
	defer f.Close()
	removeTree(dir)
}

// ownedByUs says the entry belongs to this process's user.
func ownedByUs(e os.DirEntry) bool {
	info, err := e.Info()
	if err != nil {
		return false
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

func removeIfOlder(e os.DirEntry, dir string, now time.Time, age time.Duration) {
	info, err := e.Info()
	if err != nil || now.Sub(info.ModTime()) <= age {
		return
	}
	removeTree(dir)
}
