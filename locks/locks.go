// Package locks holds the kernel flocks that keep two processes from operating on one app or
// one spec directory. A held flock means a live owner, because the kernel drops it when its
// process dies, however it dies: nobody inspects PIDs and nobody steals a held lock.
// The package knows nothing about Docker or specs; callers name locks by domain and path.
package locks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultPath is on a tmpfs, so a reboot frees every lock and leaves no stale lockfiles.
const DefaultPath = "/run/lock/swarm-reconciler"

// pollInterval is how often a blocked App retries. flock cannot be interrupted by a context,
// so waiting is a poll with LOCK_NB.
const pollInterval = 50 * time.Millisecond

// maxStaleRetries bounds the reopen loop when the lockfile keeps being replaced under us.
const maxStaleRetries = 1000

// ErrHeld is returned (wrapped) by non-blocking acquires of a lock held elsewhere, so callers
// can tell "someone owns it" from an I/O failure.
var ErrHeld = errors.New("lock is held by another process")

// heldError carries a message a person can act on while still matching ErrHeld.
type heldError struct{ msg string }

func (e *heldError) Error() string { return e.msg }
func (e *heldError) Unwrap() error { return ErrHeld }

// Dir is a lock directory shared by every process that operates on the same swarm.
type Dir struct{ Path string }

// Open creates the lock directory (0755) if needed; an empty path means DefaultPath.
func Open(path string) (*Dir, error) {
	if path == "" {
		path = DefaultPath
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("create lock directory: %w", err)
	}
	if err := checkDirControl(path); err != nil {
		return nil, err
	}
	return &Dir{Path: path}, nil
}

// Lock is a held flock. Keep it reachable for as long as the lock is meant to last: the lock
// lives in its open file, which the garbage collector closes once the Lock is unreachable.
type Lock struct {
	path string
	mu   sync.Mutex
	f    *os.File
	// link is the lock of a spec directory's link, held and released with it (SpecDir).
	link *Lock
}

// Path is the lockfile, for messages and for tests.
func (l *Lock) Path() string { return l.path }

// Release closes the file, which drops the flock. It is idempotent, so it can be deferred and
// also called early.
func (l *Lock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.releaseLocked()
}

func (l *Lock) releaseLocked() error {
	var linkErr error
	if l.link != nil {
		linkErr = l.link.Release() // and this one all the same
	}
	if l.f == nil {
		return linkErr
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return errors.Join(linkErr, fmt.Errorf("release lock %s: %w", l.path, err))
	}
	return linkErr
}

// Unlink removes the lockfile while still holding it, then releases: the way to retire a lock
// (an app reaped, an orphan lockfile swept) without a window in which another process could
// take the file we are about to remove. A waiter on the old file notices the inode change and
// moves to a new file.
func (l *Lock) Unlink() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("unlink lock %s: already released", l.path)
	}
	var errs []error
	live, err := isLive(l.f, l.path)
	if err != nil {
		errs = append(errs, err)
	} else if live {
		// Only remove the file we hold; a different file at the path belongs to someone else.
		if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unlink lock %s: %w", l.path, err))
		}
	}
	if err := l.releaseLocked(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// SpecDir takes specs-<first 16 hex chars of sha256 of the spec dir>.lock without blocking, so
// that a second reconciler on the same directory exits at once. The path is made absolute and
// cleaned, and symlinks are resolved when the directory exists, so two spellings of one
// directory share one lock.
func (d *Dir) SpecDir(specDir string) (*Lock, error) {
	abs, err := canonical(specDir)
	if err != nil {
		return nil, fmt.Errorf("spec directory lock: %w", err)
	}
	path := filepath.Join(d.Path, "specs-"+SpecDirID(abs)+".lock")
	l, err := tryLock(path)
	if errors.Is(err, ErrHeld) {
		return nil, &heldError{fmt.Sprintf("another reconciler is running on spec directory %s (lock %s); stop it or use another --specs", abs, path)}
	}
	if err != nil {
		return nil, fmt.Errorf("spec directory lock for %s: %w", abs, err)
	}
	// For a person looking at the lock directory; nobody parses it.
	if err := l.f.Truncate(0); err == nil {
		_, _ = l.f.WriteAt([]byte(abs+"\n"), 0)
	}
	// A spec directory that is a link a tool points elsewhere (ln -sfn, git-sync) resolves to
	// another directory once it moved, and so to another lock: the link's own path is locked
	// too, so a second reconciler given the same link is refused whatever it points at.
	if link, ok := linkPath(specDir); ok && link != abs {
		lpath := filepath.Join(d.Path, "specs-"+pathID(link)+".link.lock") // the link's path, not where it points
		ll, err := tryLock(lpath)
		if err != nil {
			_ = l.Release()
			if errors.Is(err, ErrHeld) {
				return nil, &heldError{fmt.Sprintf("another reconciler is running on spec directory %s, through the link %s (lock %s); stop it or use another --specs", abs, link, lpath)}
			}
			return nil, fmt.Errorf("spec directory lock for the link %s: %w", link, err)
		}
		l.link = ll
	}
	return l, nil
}

// linkPath is the absolute path of specDir, its folder's links resolved but not its own,
// when specDir itself is a symbolic link.
func linkPath(specDir string) (string, bool) {
	abs, err := filepath.Abs(specDir)
	if err != nil {
		return "", false
	}
	if fi, err := os.Lstat(abs); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return "", false
	}
	parent, err := canonical(filepath.Dir(abs))
	if err != nil {
		return "", false
	}
	return filepath.Join(parent, filepath.Base(abs)), true
}

// SpecDirID names a spec directory: the first 16 hex characters of the SHA-256 of its
// absolute, cleaned, symlink-resolved path. Its lockfile and its owner label use it.
func SpecDirID(specDir string) string {
	abs, err := canonical(specDir)
	if err != nil {
		abs = filepath.Clean(specDir)
	}
	return pathID(abs)
}

// pathID is the first 16 hex characters of the SHA-256 of path, as it is.
func pathID(path string) string {
	sum := sha256.Sum256([]byte(path))
	return hex.EncodeToString(sum[:])[:16]
}

func canonical(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return abs, nil
}

func (d *Dir) appPath(domain string) (string, error) {
	switch {
	case domain == "":
		return "", errors.New("app lock: empty domain")
	case strings.HasPrefix(domain, "."), strings.ContainsAny(domain, "/\x00"):
		return "", fmt.Errorf("app lock: domain %q cannot be part of a file name (no \"/\", not starting with \".\")", domain)
	case len(domain) > 240:
		return "", fmt.Errorf("app lock: domain %q is too long for a file name", domain)
	}
	return filepath.Join(d.Path, "app-"+domain+".lock"), nil
}

// App blocks until it holds app-<domain>.lock, or ctx ends (the error then wraps ctx.Err()).
func (d *Dir) App(ctx context.Context, domain string) (*Lock, error) {
	path, err := d.appPath(domain)
	if err != nil {
		return nil, err
	}
	l, err := waitLock(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("app lock for %s: %w", domain, err)
	}
	return l, nil
}

// TryApp probes without blocking: (lock, nil) when acquired; (nil, ErrHeld-wrapped) when held
// by someone else. The sweep uses it: held means a live owner, acquired means an orphan.
func (d *Dir) TryApp(domain string) (*Lock, error) {
	path, err := d.appPath(domain)
	if err != nil {
		return nil, err
	}
	l, err := tryLock(path)
	if errors.Is(err, ErrHeld) {
		return nil, &heldError{fmt.Sprintf("app lock %s for %s is held by another process", path, domain)}
	}
	if err != nil {
		return nil, fmt.Errorf("app lock for %s: %w", domain, err)
	}
	return l, nil
}

// AppLockfiles lists the domains that have an app lockfile in the directory, with each file's
// mtime: the time of its last acquisition, so a caller can warn about a lock held too long.
func (d *Dir) AppLockfiles() (map[string]time.Time, error) {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		return nil, fmt.Errorf("list lock directory: %w", err)
	}
	out := map[string]time.Time{}
	for _, e := range entries {
		domain, ok := strings.CutPrefix(e.Name(), "app-")
		if !ok {
			continue
		}
		if domain, ok = strings.CutSuffix(domain, ".lock"); !ok || domain == "" {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // unlinked since ReadDir
			}
			return nil, fmt.Errorf("list lock directory: %w", err)
		}
		if fi.Mode().IsRegular() {
			out[domain] = fi.ModTime()
		}
	}
	return out, nil
}

// SweepStale unlinks every app lockfile that is not held and whose domain keep() rejects, and
// returns the domains removed. Each lock is acquired (without blocking) before its file is
// unlinked, so a held lock is never touched. Errors for single files do not stop the sweep.
func (d *Dir) SweepStale(keep func(domain string) bool) ([]string, error) {
	files, err := d.AppLockfiles()
	if err != nil {
		return nil, err
	}
	domains := make([]string, 0, len(files))
	for domain := range files {
		domains = append(domains, domain)
	}
	sort.Strings(domains)
	var (
		removed []string
		errs    []error
	)
	for _, domain := range domains {
		if keep(domain) {
			continue
		}
		l, err := d.TryApp(domain)
		if errors.Is(err, ErrHeld) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := l.Unlink(); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, domain)
	}
	return removed, errors.Join(errs...)
}
