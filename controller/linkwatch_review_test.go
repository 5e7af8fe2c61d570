package controller

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// TestSpecDirLinkTargetRemadeIsWatchedAgain: the spec directory is a symbolic link that does
// not move; the directory it points at is removed and made again (rm -rf + mkdir, as
// TestSpecDirReplacedIsWatchedAgain does without a link). With the folder holding the link
// watched, fsnotify drops the target's IN_DELETE_SELF (its parent path is watched), so the
// loop never learns the watch is gone and never watches the directory again.
func TestSpecDirLinkTargetRemadeIsWatchedAgain(t *testing.T) {
	root := t.TempDir()
	r1 := filepath.Join(root, "data", "specs")
	if err := os.MkdirAll(r1, 0o755); err != nil {
		t.Fatal(err)
	}
	specs := filepath.Join(root, "specs")
	if err := os.Symlink(r1, specs); err != nil {
		t.Fatal(err)
	}
	reconciled, _ := watchedSpecs(t, root, specs)
	if !reconciled(specs, "a") {
		t.Fatal("a spec written through the link was not reconciled")
	}
	if err := os.RemoveAll(r1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the removal seen
	if err := os.Mkdir(r1, 0o755); err != nil {
		t.Fatal(err)
	}
	if !reconciled(specs, "b") {
		t.Fatal("the directory the link points at was removed and made again: a spec written there was not reconciled (no longer watched)")
	}
}

// TestSpecDirLinkSwappedOverlayFolderFollows: an overlay folder inside the spec directory is
// watched by its path through the link; once the link points elsewhere, that watch still
// holds the old target's folder, and watchOverlays keeps it (the path is in the watch list).
// An overlay file edited in the new target makes no resync.
func TestSpecDirLinkSwappedOverlayFolderFollows(t *testing.T) {
	root := t.TempDir()
	r1, r2 := filepath.Join(root, "releases", "r1"), filepath.Join(root, "releases", "r2")
	for _, d := range []string{r1, r2} {
		if err := os.MkdirAll(filepath.Join(d, "overlays"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	specs := filepath.Join(root, "specs")
	if err := os.Symlink(r1, specs); err != nil {
		t.Fatal(err)
	}
	c, _, _ := newTestLoop(t, nil)
	c.R.SpecsDir = specs
	c.Debounce = 10 * time.Millisecond
	var resyncs atomic.Int32
	c.pendingFunc = func(context.Context) ([]string, error) { resyncs.Add(1); return nil, nil }
	overlays := filepath.Join(specs, "overlays")
	c.R.overlayDirs = []string{overlays}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(specs); err != nil {
		t.Fatal(err)
	}
	c.watcher = w
	c.watchOverlays()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.watchSpecs(ctx, w) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond)

	if err := os.Symlink(r2, specs+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(specs+".new", specs); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the swap's resync done
	before := resyncs.Load()
	deadline := time.Now().Add(2 * time.Second)
	for resyncs.Load() == before && time.Now().Before(deadline) {
		_ = os.WriteFile(filepath.Join(r2, "overlays", "ci.yml"), []byte("services: {}\n"), 0o644)
		time.Sleep(25 * time.Millisecond)
	}
	if resyncs.Load() == before {
		t.Error("after the link moved, an overlay file written in the directory it points at made no resync (the overlay folder's watch is still the old target's)")
	}
}
