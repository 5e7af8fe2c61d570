package manifests

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/docker/cli/cli/compose/loader"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
)

// A controller renders every app of a recipe once per spec generation, and most apps share a
// few (recipe, commit) pairs. Opening the repository and exporting the commit's files into a
// directory dominated each render, so both are kept for the life of the process:
//
//   - repos keeps one opened Repository per recipe directory (at most maxRepos). go-git's
//     Repository is not safe for concurrent use (go-git issues #48, #773: its pack index and
//     object caches are plain maps), so every use holds that repository's mutex.
//   - trees keeps the exported files of a commit (at most maxTrees) in a private read-only
//     directory. A tree is keyed by the commit, never by the version: a tag is resolved again on
//     every render (one small file read), so a tag moved to another commit is noticed at once,
//     while the files of a commit cannot change.
//
// Cleanup removes what is kept. Nothing else removes the trees: a long-running process must call
// it on shutdown, and a one-shot one (the render command) before it exits.
const (
	// maxTrees bounds the exported trees kept: a few dozen versions of small recipes.
	maxTrees = 32
	// maxRepos bounds the opened repositories kept (they hold only small caches: repoObjectCache).
	maxRepos = 32
	// repoObjectCache is the object cache of a kept repository: enough for the tag and commit
	// objects read on each render; an export's blobs need not stay.
	repoObjectCache = 4 * cache.MiByte
	// treeMaxAge is how long an exported tree is used before it is exported again. Temporary
	// directories are aged out by systemd-tmpfiles and the like (10 days by default), file by
	// file: a tree thinned that way could render differently without failing (a missing
	// .env.sample reads as empty), so no tree lives anywhere near that long.
	treeMaxAge = time.Hour
)

var (
	repos = &repoCache{m: map[string]*keptRepo{}}
	trees = &treeCache{m: map[treeKey]*tree{}}
)

// Cleanup removes every exported tree that Render keeps, and the process's export root, and
// forgets the opened repositories. Trees in use by renders still running are removed as soon as
// those finish. It is safe to call at any time and more than once; later renders simply start
// over.
//
// The controller calls it on shutdown, after its workers have stopped; any other process that
// renders (the render command, tests) calls it before exiting. What a process that never ran
// it left (its export root, swarm-reconciler-trees-* in the temporary directory) is removed by
// the next process's first export (exportroot.go).
func Cleanup() {
	repos.clear()
	trees.clear()
	root.removeIfEmpty()
}

// repoCache keeps opened recipe repositories by absolute directory, least recently used first
// out.
type repoCache struct {
	mu  sync.Mutex
	m   map[string]*keptRepo
	lru list.List // of *keptRepo, most recently used at the front
}

type keptRepo struct {
	dir  string
	elem *list.Element // in repoCache.lru; guarded by repoCache.mu

	mu   sync.Mutex      // held for every use of repo: go-git is not safe for concurrent use
	repo *git.Repository // nil until opened, and after a use failed
}

// with runs fn with the repository of recipesDir/recipe, and its absolute directory, while
// holding its lock. fn must not keep anything read from the repository (objects, iterators)
// after it returns.
//
// go-git lists and indexes a repository's pack files once, when first needed, so a kept
// repository does not see packs written since (a fetch that moved a tag, a re-clone) and may fail
// on packs removed since (git gc). Refs are read from disk on every lookup. An error from a kept
// repository is therefore retried once on a freshly opened one, which replaces it: only a fresh
// repository's errors are reported.
func (c *repoCache) with(ctx context.Context, recipesDir, recipe string, fn func(repo *git.Repository, dir string) error) error {
	dir, err := recipeDir(recipesDir, recipe)
	if err != nil {
		return err
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	k := c.get(dir)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.repo != nil {
		err := fn(k.repo, dir)
		if err == nil || ctx.Err() != nil {
			return err
		}
		k.repo = nil
	}
	repo, err := openRecipe(recipesDir, recipe, dir)
	if err != nil {
		return err
	}
	k.repo = repo
	return fn(repo, dir)
}

func (c *repoCache) get(dir string) *keptRepo {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.m[dir]; k != nil {
		c.lru.MoveToFront(k.elem)
		return k
	}
	k := &keptRepo{dir: dir}
	k.elem = c.lru.PushFront(k)
	c.m[dir] = k
	for c.lru.Len() > maxRepos {
		// A caller holding an evicted entry finishes with it; the next one opens a new entry.
		old := c.lru.Remove(c.lru.Back()).(*keptRepo)
		delete(c.m, old.dir)
	}
	return k
}

func (c *repoCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	c.lru.Init()
}

// treeKey names an exported tree: the files of commit in the repository at repo (absolute).
// The repository is part of the key so that one recipe's repository can never supply files
// for another's.
type treeKey struct {
	repo   string
	commit plumbing.Hash
}

// treeCache keeps exported trees, least recently used first out. A tree in use by a render is
// never removed under it: it is reference counted, and an evicted tree's directory is removed
// when its last user releases it.
type treeCache struct {
	mu  sync.Mutex
	m   map[treeKey]*tree
	lru list.List // of *tree, most recently used at the front
}

// tree is one exported commit. dir, err and exported are written once by the render that
// exports it, before ready is closed; everyone else reads them only after ready is closed.
type tree struct {
	key      treeKey
	ready    chan struct{}
	dir      string // read-only once ready; "" when the export failed
	err      error
	exported time.Time

	// guarded by treeCache.mu
	refs int           // renders using dir, the exporting one included
	gone bool          // no longer in the cache: dir is removed when refs drops to 0
	elem *list.Element // in treeCache.lru, nil once gone

	parseMu sync.Mutex
	parsed  map[string]parsedYAML // by path of a compose file in dir
}

// parsedYAML is a compose file of a tree as loader.ParseYAML returned it. The files of a tree
// never change, so neither does the parse; dict is shared and must never be modified.
type parsedYAML struct {
	dict map[string]any
	err  error
}

// acquire returns the tree of key, exporting it with export (which makes and returns a new
// directory, or removes what it made and fails) if it is not kept yet. Concurrent renders of
// the same key wait for one export. The caller must release the tree when done with dir.
func (c *treeCache) acquire(ctx context.Context, key treeKey, export func() (string, error)) (*tree, error) {
	for {
		c.mu.Lock()
		t := c.m[key]
		if t == nil {
			t = &tree{key: key, ready: make(chan struct{}), refs: 1}
			t.elem = c.lru.PushFront(t)
			c.m[key] = t
			victims := c.evictLocked()
			c.mu.Unlock()
			removeTrees(victims)

			t.dir, t.err = export()
			t.exported = time.Now()
			close(t.ready)
			if t.err != nil {
				// Failures are not kept: an I/O error may pass, and a bad recipe fails fast anyway.
				c.mu.Lock()
				c.dropLocked(t)
				c.mu.Unlock()
				c.release(t)
				return nil, t.err
			}
			return t, nil
		}
		t.refs++
		if t.elem != nil {
			c.lru.MoveToFront(t.elem)
		}
		c.mu.Unlock()

		select {
		case <-t.ready:
		case <-ctx.Done():
			c.release(t)
			return nil, ctx.Err()
		}
		if t.err == nil {
			if !t.stale() {
				return t, nil
			}
			c.mu.Lock()
			if c.m[key] == t {
				c.dropLocked(t)
			}
			c.mu.Unlock()
			c.release(t)
			continue
		}
		c.release(t)
		// The exporting render may have been cancelled: that is no reason for this one to fail.
		if (errors.Is(t.err, context.Canceled) || errors.Is(t.err, context.DeadlineExceeded)) && ctx.Err() == nil {
			continue
		}
		return nil, t.err
	}
}

// stale reports whether a ready tree is too old to use, or was removed by someone else.
func (t *tree) stale() bool {
	if time.Since(t.exported) > treeMaxAge {
		return true
	}
	_, err := os.Lstat(t.dir)
	return err != nil
}

// release ends one use of t; an evicted tree is removed with its last use.
func (c *treeCache) release(t *tree) {
	c.mu.Lock()
	t.refs--
	remove := t.refs == 0 && t.gone && t.dir != ""
	c.mu.Unlock()
	if remove {
		removeTree(t.dir)
	}
}

// evictLocked drops the least recently used trees over maxTrees and returns the directories
// now free to remove.
func (c *treeCache) evictLocked() []string {
	var victims []string
	for c.lru.Len() > maxTrees {
		t := c.lru.Back().Value.(*tree)
		c.dropLocked(t)
		if t.refs == 0 && t.dir != "" {
			victims = append(victims, t.dir)
		}
	}
	return victims
}

func (c *treeCache) dropLocked(t *tree) {
	if c.m[t.key] == t {
		delete(c.m, t.key)
	}
	if t.elem != nil {
		c.lru.Remove(t.elem)
		t.elem = nil
	}
	t.gone = true
}

func (c *treeCache) clear() {
	c.mu.Lock()
	var victims []string
	for _, t := range c.m {
		c.dropLocked(t)
		if t.refs == 0 && t.dir != "" {
			victims = append(victims, t.dir)
		}
	}
	c.mu.Unlock()
	removeTrees(victims)
}

// parse returns the compose file at path (inside t.dir) as loader.ParseYAML parses it, reading
// and parsing it only the first time; parseErr is the parse's error, err a failure to read.
// The map is shared: copy before modifying.
func (t *tree) parse(path string) (raw map[string]any, parseErr, err error) {
	t.parseMu.Lock()
	p, ok := t.parsed[path]
	t.parseMu.Unlock()
	if ok {
		return p.dict, p.err, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err // not kept: an I/O error may pass
	}
	// Two renders may parse the same file at once; both results are equal, either is kept.
	p.dict, p.err = loader.ParseYAML(b)
	t.parseMu.Lock()
	if t.parsed == nil {
		t.parsed = map[string]parsedYAML{}
	}
	t.parsed[path] = p
	t.parseMu.Unlock()
	return p.dict, p.err, nil
}

// exportCommit exports the files of commit into a new directory in the process's export root
// and makes it read-only: renders sharing it only read it. On error nothing is left behind.
func exportCommit(ctx context.Context, repo *git.Repository, commit plumbing.Hash) (string, error) {
	c, err := repo.CommitObject(commit)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", commit, err)
	}
	dir, err := root.mkdirTemp(shortHash(commit.String()) + "-")
	if err != nil {
		return "", fmt.Errorf("create export directory: %w", err)
	}
	if err := exportTree(ctx, c, dir); err != nil {
		removeTree(dir)
		return "", err
	}
	// Read-only below, and private at the top as MkdirTemp made it: a recipe may ship files
	// that are nobody else's business.
	err = setDirModes(dir, 0o555)
	if err == nil {
		err = os.Chmod(dir, 0o500)
	}
	if err != nil {
		removeTree(dir)
		return "", fmt.Errorf("make export read-only: %w", err)
	}
	return dir, nil
}

// setDirModes sets the mode of dir and every directory below it (symlinks are not followed).
func setDirModes(dir string, mode fs.FileMode) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, mode)
		}
		return nil
	})
}

// removeTree removes an exported tree; its directories are read-only, and without write
// permission on a directory its entries cannot be removed.
func removeTree(dir string) {
	_ = setDirModes(dir, 0o700)
	_ = os.RemoveAll(dir)
}

func removeTrees(dirs []string) {
	for _, d := range dirs {
		removeTree(d)
	}
}
