package controller

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// TestSpecDirReplacedIsWatchedAgain: the spec directory removed and made again (rm -rf specs;
// mkdir specs), or moved away with another put in its place (mv specs specs.old; mv specs.new
// specs), is watched again: a spec written there afterwards is reconciled within the debounce,
// as before, not at the next periodic resync (never, with --resync 0). The kernel drops the
// watch of a removed or moved directory, and nothing watched the new one.
func TestSpecDirReplacedIsWatchedAgain(t *testing.T) {
	root := t.TempDir()
	specs := filepath.Join(root, "specs")
	reconciled, _ := watchedSpecs(t, root, specs)
	if !reconciled(specs, "a") {
		t.Fatal("a spec written in the spec directory was not reconciled")
	}

	if err := os.RemoveAll(specs); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the removal seen
	if err := os.Mkdir(specs, 0o755); err != nil {
		t.Fatal(err)
	}
	if !reconciled(specs, "b") {
		t.Fatal("spec directory removed and made again: a spec written there was not reconciled (the directory is no longer watched)")
	}

	if err := os.Rename(specs, specs+".old"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the move seen
	if err := os.Mkdir(specs, 0o755); err != nil {
		t.Fatal(err)
	}
	if !reconciled(specs, "c") {
		t.Fatal("spec directory moved away and another made in its place: a spec written there was not reconciled")
	}
}

// TestSpecDirSymlinkSwappedIsWatchedThere: the spec directory is a symbolic link that a tool
// points at a new directory (git-sync's --link, or `ln -sfn releases/r2 specs`: a new link
// renamed over the old). Specs written through it afterwards are reconciled within the
// debounce, as before; the directory it pointed at before is no longer watched, so files
// written there (the old release, still on disk) queue nothing.
func TestSpecDirSymlinkSwappedIsWatchedThere(t *testing.T) {
	root := t.TempDir()
	r1, r2 := filepath.Join(root, "releases", "r1"), filepath.Join(root, "releases", "r2")
	for _, d := range []string{r1, r2} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	specs := filepath.Join(root, "specs")
	if err := os.Symlink(r1, specs); err != nil {
		t.Fatal(err)
	}
	reconciled, passed := watchedSpecs(t, root, specs)
	if !reconciled(specs, "a") {
		t.Fatal("a spec written through the link was not reconciled")
	}
	if err := os.Symlink(r2, specs+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(specs+".new", specs); err != nil {
		t.Fatal(err)
	}
	if !reconciled(specs, "b") {
		t.Fatal("the link pointed at a new directory: a spec written through it was not reconciled (the old directory is still the one watched)")
	}
	for range 4 {
		_ = os.WriteFile(filepath.Join(r1, "z.yml"), []byte("recipe: x\n"), 0o644)
		time.Sleep(25 * time.Millisecond)
	}
	if passed("z") {
		t.Error("a file written in the directory the link no longer points at queued its app")
	}
	// Not atomically: the link removed, then made again (older `ln -sfn`).
	r3 := filepath.Join(root, "releases", "r3")
	if err := os.MkdirAll(r3, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(specs); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the removal seen
	if err := os.Symlink(r3, specs); err != nil {
		t.Fatal(err)
	}
	if !reconciled(specs, "c") {
		t.Fatal("the link removed and made again to another directory: a spec written through it was not reconciled")
	}
}

// watchedSpecs runs a controller on the spec directory specs (status under root) whose passes
// only record the app, and whose resyncs find nothing: only the spec directory's watch
// reconciles an app. reconciled writes app's spec into dir until a pass of app came (3 s at
// most; each write is an event once the directory is watched); passed says whether one did.
func watchedSpecs(t *testing.T, root, specs string) (reconciled func(dir, app string) bool, passed func(app string) bool) {
	var (
		mu     sync.Mutex
		passes []string
	)
	c := &Controller{
		R:        &Reconciler{Engine: newFakeEngine(), SpecsDir: specs, StatusDir: filepath.Join(root, "status"), Log: logr.Discard()},
		Workers:  1,
		Debounce: 10 * time.Millisecond,
		Log:      logr.Discard(),
		reconcileFunc: func(_ context.Context, app string) (Result, error) {
			mu.Lock()
			defer mu.Unlock()
			passes = append(passes, app)
			return Result{}, nil
		},
		pendingFunc: func(context.Context) ([]string, error) { return nil, nil },
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	passed = func(app string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(passes, app)
	}
	reconciled = func(dir, app string) bool {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			_ = os.WriteFile(filepath.Join(dir, app+".yml"), []byte("recipe: x\nversion: 1.0.0\n"), 0o644)
			time.Sleep(25 * time.Millisecond)
			if passed(app) {
				return true
			}
		}
		return false
	}
	return reconciled, passed
}
