package manifests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/cli/cli/compose/loader"
	"github.com/go-git/go-git/v5"
)

func TestMain(m *testing.M) {
	if os.Getenv(holdRootEnv) != "" {
		holdRoot() // a child of TestExportRootOfAKilledProcessIsSwept
	}
	code := m.Run()
	Cleanup() // the exports kept by the renders of the tests
	os.Exit(code)
}

// privateTmp points TMPDIR at a fresh folder for the test, so its exports can be counted, and
// removes them (Cleanup) before the folder itself is removed.
func privateTmp(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	Cleanup() // an export root of an earlier test is in its TMPDIR
	t.Setenv("TMPDIR", tmp)
	t.Cleanup(Cleanup) // runs before TempDir's removal: cleanups run last registered first
	return tmp
}

// exports lists the trees exported into the export roots in tmp.
func exports(t *testing.T, tmp string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(tmp, rootPrefix+"*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRenderReusesTheExport(t *testing.T) {
	f := newFixture(t)
	tmp := privateTmp(t)
	for i := range 3 {
		r, err := Render(context.Background(), f.recipesDir, Request{App: fmt.Sprint("a", i), Recipe: "demo",
			Version: f.tagOld, Domain: fmt.Sprintf("a%d.example.org", i), Stack: fmt.Sprintf("a%d_example_org", i)})
		if err != nil {
			t.Fatal(err)
		}
		if r.Env["DOMAIN"] != fmt.Sprintf("a%d.example.org", i) || string(r.Configs[0].Data) != "conf one" {
			t.Errorf("render %d: DOMAIN %q, config %q", i, r.Env["DOMAIN"], r.Configs[0].Data)
		}
	}
	// The lightweight tag names the same commit as tagNew: one export for both.
	for _, v := range []string{f.tagNew, f.lightweight, f.c2.String()} {
		if _, err := f.render(t, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := exports(t, tmp)
	if len(got) != 2 {
		t.Fatalf("exports %v, want one per commit (2)", got)
	}

	// Read-only, and private at the top.
	for _, dir := range got {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm() != 0o500 {
			t.Errorf("export %s mode %v (%v), want 0500", dir, fi.Mode(), err)
		}
		fi, err = os.Stat(filepath.Join(dir, "compose.yml"))
		if err != nil || fi.Mode().Perm() != 0o444 {
			t.Errorf("exported compose.yml mode %v (%v), want 0444", fi.Mode(), err)
		}
	}
}

func TestRenderNoticesMovedTag(t *testing.T) {
	f := newFixture(t)
	r, err := f.render(t, f.tagOld, nil)
	if err != nil || r.Commit != f.c1.String() {
		t.Fatalf("before the move: %v, commit %s", err, r.Commit)
	}
	if err := f.repo.repo.DeleteTag(f.tagOld); err != nil {
		t.Fatal(err)
	}
	f.repo.tag(f.tagOld, f.c3, true)
	r, err = f.render(t, f.tagOld, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Commit != f.c3.String() || string(r.Configs[0].Data) != "conf three" || r.Images[len(r.Images)-1] != "nginx:2.0" {
		t.Errorf("after moving the tag: commit %s, config %q, images %v; want %s's", r.Commit, r.Configs[0].Data, r.Images, f.c3)
	}
}

// A kept repository indexes its pack files once; a fetch or gc writes new packs and removes old
// ones. Renders must see the new objects and survive the removed packs.
func TestRenderAfterRepack(t *testing.T) {
	f := newFixture(t)
	repack := func() {
		t.Helper()
		for _, args := range [][]string{{"repack", "-a", "-d", "-q"}, {"prune-packed"}} {
			cmd := exec.Command("git", args...)
			cmd.Dir = f.repo.dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
		// The test's own handle has the very problem under test.
		repo, err := git.PlainOpen(f.repo.dir)
		if err != nil {
			t.Fatal(err)
		}
		f.repo.repo = repo
	}
	repack()
	if _, err := f.render(t, f.tagOld, nil); err != nil { // loads the index of the first pack
		t.Fatal(err)
	}
	c4 := f.repo.commit(map[string]string{"conf.txt": "conf four"})
	if err := f.repo.repo.DeleteTag(f.tagOld); err != nil {
		t.Fatal(err)
	}
	f.repo.tag(f.tagOld, c4, true)
	repack() // one new pack with everything; the first one is gone

	r, err := f.render(t, f.tagOld, nil)
	if err != nil {
		t.Fatalf("tag moved to a commit in a new pack: %v", err)
	}
	if r.Commit != c4.String() || string(r.Configs[0].Data) != "conf four" {
		t.Errorf("commit %s, config %q; want %s, conf four", r.Commit, r.Configs[0].Data, c4)
	}
	r, err = f.render(t, f.c1.String(), nil)
	if err != nil || string(r.Configs[0].Data) != "conf one" {
		t.Fatalf("commit whose pack was replaced: %v", err)
	}
}

func TestTreeCacheIsBounded(t *testing.T) {
	tmp := privateTmp(t)
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "many")
	var versions []string
	for i := range maxTrees + 3 {
		h := repo.commit(map[string]string{"compose.yml": composeV1, "abra.sh": "export CONF_VERSION=v1\n",
			"conf.txt": fmt.Sprint("conf ", i)})
		versions = append(versions, h.String())
	}
	for i, v := range versions {
		r, err := Render(context.Background(), recipesDir, Request{App: "a", Recipe: "many", Version: v, Domain: "d", Stack: "s"})
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Configs[0].Data) != fmt.Sprint("conf ", i) {
			t.Errorf("version %d rendered config %q", i, r.Configs[0].Data)
		}
	}
	if got := exports(t, tmp); len(got) != maxTrees {
		t.Errorf("%d exports kept, want %d", len(got), maxTrees)
	}
	// The oldest was evicted; rendering it again exports it again.
	r, err := Render(context.Background(), recipesDir, Request{App: "a", Recipe: "many", Version: versions[0], Domain: "d", Stack: "s"})
	if err != nil || string(r.Configs[0].Data) != "conf 0" {
		t.Fatalf("evicted version again: %v", err)
	}
	Cleanup()
	if got := exports(t, tmp); len(got) != 0 {
		t.Errorf("after Cleanup: %v", got)
	}
}

func TestRenderReexportsRemovedTree(t *testing.T) {
	f := newFixture(t)
	tmp := privateTmp(t)
	if _, err := f.render(t, f.tagOld, nil); err != nil {
		t.Fatal(err)
	}
	for _, dir := range exports(t, tmp) {
		removeTree(dir) // as a tmp cleaner would
	}
	r, err := f.render(t, f.tagOld, nil)
	if err != nil || string(r.Configs[0].Data) != "conf one" {
		t.Fatalf("render after the export was removed: %v", err)
	}
	if got := exports(t, tmp); len(got) != 1 {
		t.Errorf("exports %v, want a new one", got)
	}
}

// testTreeCache is a cache of its own, with exports that make empty directories.
func testTreeCache(t *testing.T) (*treeCache, func() (string, error)) {
	c := &treeCache{m: map[treeKey]*tree{}}
	tmp := t.TempDir()
	t.Cleanup(c.clear)
	return c, func() (string, error) { return os.MkdirTemp(tmp, "tree-") }
}

func TestTreeInUseOutlivesEvictionAndCleanup(t *testing.T) {
	c, export := testTreeCache(t)
	ctx := context.Background()
	held, err := c.acquire(ctx, treeKey{repo: "r", commit: [20]byte{1}}, export)
	if err != nil {
		t.Fatal(err)
	}
	// Fill the cache past its bound: the held tree is the least recently used.
	for i := range maxTrees + 1 {
		tr, err := c.acquire(ctx, treeKey{repo: "r", commit: [20]byte{2, byte(i)}}, export)
		if err != nil {
			t.Fatal(err)
		}
		c.release(tr)
	}
	if _, err := os.Stat(held.dir); err != nil {
		t.Fatalf("an evicted tree in use was removed: %v", err)
	}
	c.clear()
	if _, err := os.Stat(held.dir); err != nil {
		t.Fatalf("a tree in use was removed by Cleanup: %v", err)
	}
	c.release(held)
	if _, err := os.Stat(held.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an evicted tree outlived its last use: %v", err)
	}
	if len(c.m) != 0 || c.lru.Len() != 0 {
		t.Errorf("cache holds %d/%d entries after clear", len(c.m), c.lru.Len())
	}
}

// One export per key however many renders ask at once; a render whose export was cancelled
// does not fail the others waiting for it.
func TestTreeExportOnceAndCancellation(t *testing.T) {
	c, export := testTreeCache(t)
	key := treeKey{repo: "r", commit: [20]byte{3}}
	release := make(chan struct{})
	var exportsRun sync.Mutex
	n := 0
	cancelled := func() (string, error) {
		exportsRun.Lock()
		n++
		exportsRun.Unlock()
		<-release
		return "", fmt.Errorf("export: %w", context.Canceled)
	}
	counted := func() (string, error) {
		exportsRun.Lock()
		n++
		exportsRun.Unlock()
		return export()
	}

	first := make(chan error, 1)
	go func() {
		_, err := c.acquire(context.Background(), key, cancelled)
		first <- err
	}()
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.m[key] != nil })

	var wg sync.WaitGroup
	trees := make([]*tree, 5)
	errs := make([]error, 5)
	for i := range trees {
		wg.Go(func() { trees[i], errs[i] = c.acquire(context.Background(), key, counted) })
	}
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.m[key].refs == 6 })
	close(release)
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("the cancelled export's render: %v", err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("waiter %d: %v", i, err)
		}
		if trees[i] != trees[0] {
			t.Errorf("waiter %d got another tree", i)
		}
		c.release(trees[i])
	}
	if n != 2 {
		t.Errorf("%d exports ran, want 2 (the cancelled one, then one for all waiters)", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCopyYAML(t *testing.T) {
	raw, err := loader.ParseYAML([]byte(`services:
  app:
    image: x
    environment: [A=1]
`))
	if err != nil {
		t.Fatal(err)
	}
	c := copyYAML(raw).(map[string]any)
	c["services"].(map[string]any)["app"].(map[string]any)["environment"].([]any)[0] = "B=2"
	c["services"].(map[string]any)["app"].(map[string]any)["image"] = "y"
	if s := fmt.Sprint(raw); !strings.Contains(s, "A=1") || !strings.Contains(s, "image:x") {
		t.Errorf("copy shares state with the original: %v", s)
	}
}
