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
		// No periodic resync, and resyncs find nothing: only the spec directory's watch
		// reconciles an app here.
		pendingFunc: func(context.Context) ([]string, error) { return nil, nil },
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	reconciled := func(app string) bool {
		t.Helper()
		p := filepath.Join(specs, app+".yml")
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			// Written again and again: each write is an event, once the directory is watched.
			_ = os.WriteFile(p, []byte("recipe: x\nversion: 1.0.0\n"), 0o644)
			time.Sleep(25 * time.Millisecond)
			mu.Lock()
			ok := slices.Contains(passes, app)
			mu.Unlock()
			if ok {
				return true
			}
		}
		return false
	}
	if !reconciled("a") {
		t.Fatal("a spec written in the spec directory was not reconciled")
	}

	if err := os.RemoveAll(specs); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the removal seen
	if err := os.Mkdir(specs, 0o755); err != nil {
		t.Fatal(err)
	}
	if !reconciled("b") {
		t.Fatal("spec directory removed and made again: a spec written there was not reconciled (the directory is no longer watched)")
	}

	if err := os.Rename(specs, specs+".old"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the move seen
	if err := os.Mkdir(specs, 0o755); err != nil {
		t.Fatal(err)
	}
	if !reconciled("c") {
		t.Fatal("spec directory moved away and another made in its place: a spec written there was not reconciled")
	}
}
