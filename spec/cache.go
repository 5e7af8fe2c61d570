package spec

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Why a cache: the controller calls Load on every reconcile and Scan + ListStatus on every
// resync, and Load reads every spec of the directory for the shared-stack check. Without a
// cache, reconciling N apps parses N² specs and a resync of 10,000 apps parses 20,000 files
// (issue 7). The cache keeps the parsed result of each file and re-parses only when the file
// changed, so a steady resync costs a directory listing and one stat per file.
//
// Validity. An entry is reused without reading the file when the file's fingerprint (device,
// inode, size, mtime and ctime in nanoseconds, see fingerprint) equals the one taken when the
// entry was read, and the entry is settled: its ctime was at least racyWindow older than the
// moment the read began. The second condition closes the gap that fingerprints alone leave
// open: a file rewritten in place, to the same size, within one tick of the filesystem's clock
// (a jiffy on Linux; seconds on coarse filesystems) keeps every field of its fingerprint. Any
// change made after a settled read gets a later ctime tick, so it shows. An unsettled entry is
// never trusted: its file is read again and hashed, and parsed only if the content hash
// differs (this is "racy git"'s answer to the same problem). So the worst case of a file that
// keeps changing is a read and a SHA-256 per call, never a parse of unchanged bytes, and a
// file touched or rewritten with identical content is not parsed again either.
//
// What it cannot see: a writer that restores mtime *and* whose change lands in the same ctime
// tick as a settled read, which needs a filesystem clock more than racyWindow behind this
// host's (a network filesystem whose server clock lags). ctime cannot be set by a user, so
// tools that reset mtime (tar, rsync, Chtimes) are caught.
//
// Bounds. Entries live per directory. Every listing (Scan, Load, ListStatus) drops the entries
// of files that are gone, ReadStatus drops the entry of a file it finds missing, and at most
// maxCachedDirs directories are kept per cache (least recently used first out), so the cache
// holds at most the files that exist in the directories last used.
//
// Sharing. Cached values are never modified after they are stored; the exported functions
// return deep copies (Spec.clone, Status.clone, cloneErr), so callers may change what they get.

// racyWindow is how much older than the read a file's ctime must be for the entry to be
// trusted on its fingerprint alone: above the timestamp granularity of common filesystems
// (ns-resolution ext4/xfs/btrfs/tmpfs tick every jiffy, FAT and some network filesystems every
// 1-2 s), with margin for the kernel's coarse clock lagging time.Now. A var only so that tests
// can show the fast path; nothing else changes it.
var racyWindow = 3 * time.Second

// maxCachedDirs bounds the directories a cache remembers. A reconciler uses one spec and one
// status directory; tests and one-off CLI calls use more, and must not pin them forever.
const maxCachedDirs = 8

// cacheReads and cacheParses count file reads and parses done through the caches, so tests can
// prove that unchanged files are neither parsed nor (when settled) read.
var cacheReads, cacheParses atomic.Int64

var (
	specCache   = newFileCache[specVal]()
	statusCache = newFileCache[*Status]()
)

// fileCache maps a directory and a file name in it to the value parsed from the file.
type fileCache[V any] struct {
	mu    sync.Mutex
	dirs  map[string]*dirCache[V] // by filepath.Clean of the directory as the caller named it
	clock uint64                  // bumped on every use of a directory, for LRU eviction
}

type dirCache[V any] struct {
	files map[string]*cached[V] // by base name
	used  uint64
}

// cached is immutable once stored: an update stores a new one, so a reader holding the old
// pointer outside the lock sees a consistent entry.
type cached[V any] struct {
	fp      fingerprint
	settled bool // fp can be trusted without reading, see the validity note above
	sum     [sha256.Size]byte
	val     V
}

func newFileCache[V any]() *fileCache[V] {
	return &fileCache[V]{dirs: map[string]*dirCache[V]{}}
}

// get returns the value of the file name in dir, reading and parsing it only when needed.
// listed is the caller's fingerprint of the file from a directory listing, or nil to stat here.
// fresh reports whether a cached value answers this call (the spec cache keys on Defaults too).
// parse turns the bytes into a value; an error from it is returned and nothing is cached.
// An error reading the file is returned as the os package gave it, and forgets the file.
func (c *fileCache[V]) get(dir, name string, listed *fingerprint, fresh func(V) bool, parse func([]byte) (V, error)) (V, error) {
	path := filepath.Join(dir, name)
	e := c.lookup(dir, name)
	if e != nil && e.settled && fresh(e.val) {
		fp, ok := listed, listed != nil
		if !ok {
			if fi, err := os.Stat(path); err == nil {
				f := fingerprintOf(fi)
				fp, ok = &f, true
			}
		}
		if ok && *fp == e.fp {
			return e.val, nil
		}
	}
	var zero V
	// The time is taken before the read: a change after it has a later ctime than the one
	// read, which is what makes an entry whose ctime is older than start-racyWindow settled.
	start := time.Now()
	data, fp, err := readFingerprinted(path)
	if err != nil {
		c.forget(dir, name)
		return zero, err
	}
	cacheReads.Add(1)
	sum := sha256.Sum256(data)
	next := &cached[V]{fp: fp, settled: fp.settledAt(start), sum: sum}
	if e != nil && e.sum == sum && fresh(e.val) {
		next.val = e.val // same bytes, new fingerprint (touched, or rewritten identically)
	} else {
		cacheParses.Add(1)
		v, err := parse(data)
		if err != nil {
			c.forget(dir, name)
			return zero, err
		}
		next.val = v
	}
	c.store(dir, name, next)
	return next.val, nil
}

// ReadSpecFile reads a spec file to show (the web view) as the reconciler reads it: a file over
// MaxSpecBytes is not read (the reconciler refuses it unread, and a stray file of a
// gigabyte must not take a gigabyte per page load), nor a FIFO put in its place since it was
// listed (opening one would wait for a writer).
func ReadSpecFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	data, err := readRegular(f, MaxSpecBytes)
	switch {
	case errors.Is(err, errNotRegular):
		return nil, fmt.Errorf("%s is not a regular file, so it is not shown", path)
	case errors.Is(err, errTooLarge):
		return nil, fmt.Errorf("%s is over %d bytes (1 MiB), the most a spec file may have: the reconciler does not read it, and it is not shown", path, MaxSpecBytes)
	}
	return data, err
}

// readFingerprinted reads the file and fingerprints it from the same open file, so the
// fingerprint describes the file the bytes came from even if the path is replaced meanwhile.
// It fails as os.ReadFile does, with the same errors.
func readFingerprinted(path string) ([]byte, fingerprint, error) {
	// O_NONBLOCK and the check below: a FIFO renamed over the file since the caller's listing
	// stat'ed it must not make the open wait for a writer (and the loop with it).
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fingerprint{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fingerprint{}, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fingerprint{}, &fs.PathError{Op: "read", Path: path, Err: errors.New("not a regular file")}
	}
	// One byte more than the size, so that EOF is seen without growing the buffer.
	data := make([]byte, 0, max(fi.Size(), 0)+1)
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			return data, fingerprintOf(fi), nil
		}
		if err != nil {
			return nil, fingerprint{}, err
		}
		if len(data) == cap(data) { // grew since the stat
			data = append(data, 0)[:len(data)]
		}
	}
}

func (c *fileCache[V]) lookup(dir, name string) *cached[V] {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.dirs[filepath.Clean(dir)]; d != nil {
		c.clock++
		d.used = c.clock
		return d.files[name]
	}
	return nil
}

func (c *fileCache[V]) store(dir, name string, e *cached[V]) {
	key := filepath.Clean(dir)
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.dirs[key]
	if d == nil {
		if len(c.dirs) >= maxCachedDirs {
			c.evictOldestLocked()
		}
		d = &dirCache[V]{files: map[string]*cached[V]{}}
		c.dirs[key] = d
	}
	c.clock++
	d.used = c.clock
	d.files[name] = e
}

func (c *fileCache[V]) evictOldestLocked() {
	var oldest string
	var used uint64
	for k, d := range c.dirs {
		if oldest == "" || d.used < used {
			oldest, used = k, d.used
		}
	}
	delete(c.dirs, oldest)
}

// forget drops the entry of one file: it is gone, unreadable, or being rewritten by us.
func (c *fileCache[V]) forget(dir, name string) {
	key := filepath.Clean(dir)
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.dirs[key]; d != nil {
		delete(d.files, name)
		if len(d.files) == 0 {
			delete(c.dirs, key)
		}
	}
}

// retain drops the entries of dir whose names a fresh listing did not return, so the cache
// never outgrows the files that exist. names is usually sorted already (os.ReadDir sorts).
func (c *fileCache[V]) retain(dir string, names []string) {
	if !slices.IsSorted(names) {
		names = slices.Sorted(slices.Values(names))
	}
	key := filepath.Clean(dir)
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.dirs[key]
	if d == nil {
		return
	}
	for name := range d.files {
		if _, found := slices.BinarySearch(names, name); !found {
			delete(d.files, name)
		}
	}
	if len(d.files) == 0 {
		delete(c.dirs, key)
	}
}

// forgetDir drops a whole directory, for one that could not be listed.
func (c *fileCache[V]) forgetDir(dir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.dirs, filepath.Clean(dir))
}

// size is the number of files cached, for tests of the bounds.
func (c *fileCache[V]) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, d := range c.dirs {
		n += len(d.files)
	}
	return n
}

func (c *fileCache[V]) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirs = map[string]*dirCache[V]{}
}
