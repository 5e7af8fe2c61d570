package locks

import (
	"context"
	"errors"
	"fmt"
	"os"
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
