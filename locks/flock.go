package locks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// openLockfile opens (creating) the lockfile, close-on-exec so that a child process (a git
// helper, a test subprocess) cannot keep the lock alive after we release it, and without
// following a symlink planted at the path. Lockfiles are 0600: only their owner (and root)
// may lock them; one we cannot write is still lockable read-only when we can read it.
func openLockfile(path string) (*os.File, error) {
	flags := os.O_RDWR | os.O_CREATE | unix.O_CLOEXEC | unix.O_NOFOLLOW
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, os.ErrPermission) {
		f, err = os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open lockfile: %w", err)
	}
	return f, nil
}

// flockNB tries an exclusive flock once; false means someone else holds it.
func flockNB(f *os.File) (bool, error) {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return false, nil
		}
		return false, fmt.Errorf("flock %s: %w", f.Name(), err)
	}
}

// isLive reports whether f is still the file at path. A flock on a file that was unlinked or
// replaced meanwhile protects nothing: the next process opens the new file and locks that.
func isLive(f *os.File, path string) (bool, error) {
	var held, now unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &held); err != nil {
		return false, fmt.Errorf("fstat lockfile %s: %w", path, err)
	}
	if err := unix.Lstat(path, &now); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("stat lockfile %s: %w", path, err)
	}
	return held.Dev == now.Dev && held.Ino == now.Ino, nil
}

// lockIfLive takes the flock on f and checks f is still the file at path. acquired is false
// when someone holds it; stale is true when f is no longer at path (reopen and retry).
func lockIfLive(f *os.File, path string) (acquired, stale bool, err error) {
	ok, err := flockNB(f)
	if err != nil || !ok {
		return false, false, err
	}
	live, err := isLive(f, path)
	if err != nil {
		return false, false, err
	}
	if !live {
		return false, true, nil
	}
	touch(f, path)
	return true, false, nil
}

// tryLock acquires path without blocking, or returns ErrHeld.
func tryLock(path string) (*Lock, error) {
	for range maxStaleRetries {
		f, err := openLockfile(path)
		if err != nil {
			return nil, err
		}
		acquired, stale, err := lockIfLive(f, path)
		if acquired {
			return &Lock{path: path, f: f}, nil
		}
		f.Close()
		if err != nil {
			return nil, err
		}
		if !stale {
			return nil, fmt.Errorf("%s: %w", path, ErrHeld)
		}
	}
	return nil, fmt.Errorf("lockfile %s keeps being replaced", path)
}

// waitLock acquires path, polling until ctx ends. The open file is kept between polls, but
// is reopened whenever it is no longer the file at path, so a waiter follows an unlinked or
// replaced lockfile to the live one instead of waiting on a dead inode.
func waitLock(ctx context.Context, path string) (*Lock, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("wait for %s: %w", path, err)
	}
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		if f == nil {
			var err error
			if f, err = openLockfile(path); err != nil {
				return nil, err
			}
		}
		acquired, stale, err := lockIfLive(f, path)
		switch {
		case err != nil:
			return nil, err
		case acquired:
			l := &Lock{path: path, f: f}
			f = nil
			return l, nil
		case stale:
			f.Close() // we held a dead inode's lock: drop it and take the live file at once
			f = nil
			continue
		}
		if live, err := isLive(f, path); err != nil {
			return nil, err
		} else if !live {
			f.Close()
			f = nil
			continue
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for %s: %w", path, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// checkDirControl refuses a lock directory that another user controls: its owner (or anyone,
// if it is world-writable) could unlink a held lockfile, after which a second process takes a
// fresh file at the path (two holders), or hold specs-<id>.lock so no reconciler starts. The
// default lies under /run/lock, world-writable on Debian, where any user may create it (or a
// symlink at its name) before the reconciler does. So: never a world-writable directory, and
// where the parent lets others create entries, only a directory (and symlink) that is ours or
// root's. Under a parent only its owner may write (an NFS export with root_squash, say) the
// directory's owner is whoever the administrator made it.
func checkDirControl(path string) error {
	euid := uint32(os.Geteuid())
	ours := func(uid uint32) bool { return uid == euid || uid == 0 }
	var parent, link, dir unix.Stat_t
	if err := unix.Stat(filepath.Dir(path), &parent); err != nil {
		return fmt.Errorf("lock directory %s: %w", path, err)
	}
	if err := unix.Lstat(path, &link); err != nil {
		return fmt.Errorf("lock directory %s: %w", path, err)
	}
	if err := unix.Stat(path, &dir); err != nil {
		return fmt.Errorf("lock directory %s: %w", path, err)
	}
	open := parent.Mode&0o022 != 0 // others may create the name
	switch {
	case dir.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("lock directory %s is not a directory", path)
	case dir.Mode&0o002 != 0:
		return fmt.Errorf("lock directory %s is writable by every user (mode %o): anyone could remove held lockfiles; chmod o-w it", path, dir.Mode&0o7777)
	case open && link.Mode&unix.S_IFMT == unix.S_IFLNK && !ours(link.Uid):
		return fmt.Errorf("lock directory %s is a symbolic link owned by uid %d in a directory others can write: another user could move every lock; remove it", path, link.Uid)
	case open && !ours(dir.Uid):
		return fmt.Errorf("lock directory %s is owned by uid %d, in a directory others can write: that user could remove held lockfiles; remove it and start again", path, dir.Uid)
	}
	return nil
}
