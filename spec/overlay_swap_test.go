package spec

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestOverlaySymlinkSwapRace: readOverlayFile checks where the overlay's path resolves
// (EvalSymlinks), then opens the resolved path by name. A spec-directory writer that swaps a
// directory on that path for a symlink out of the spec directory between the two reads a file
// outside it, which the README promises never happens ("no symlink out of it").
func TestOverlaySymlinkSwapRace(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "ci.yml"), []byte("SECRET OUTSIDE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(dir, "overlays-real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "ci.yml"), []byte("services: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "overlays-out")
	if err := os.Symlink(outside, out); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "overlays")
	if err := os.Rename(real, link); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() { // the writer: overlays is a folder, then a symlink out, then a folder again
		defer close(done)
		for !stop.Load() {
			os.Rename(link, real)
			os.Rename(out, link)
			os.Rename(link, out)
			os.Rename(real, link)
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	var leaked bool
	for time.Now().Before(deadline) && !leaked {
		data, err := readOverlayFile(dir, "overlays/ci.yml")
		leaked = err == nil && string(data) == "SECRET OUTSIDE\n"
	}
	stop.Store(true)
	<-done
	if leaked {
		t.Fatal("readOverlayFile read a file outside the spec directory through a symlink swapped in after its check")
	}
}
