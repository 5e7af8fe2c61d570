package spec

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestSpecSwappedForFIFODoesNotHang: the listing stats a spec file (regular) and then
// opens it by name; a FIFO renamed over it in between makes the open wait for a writer, and the
// reconcile (or the scan) with it, for good.
func TestSpecSwappedForFIFODoesNotHang(t *testing.T) {
	dir := t.TempDir()
	spec, reg, fifo := filepath.Join(dir, "a.yml"), filepath.Join(dir, ".reg"), filepath.Join(dir, ".fifo")
	if err := os.WriteFile(spec, []byte("recipe: r\nversion: 1.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal("mkfifo:", err)
	}
	var stop atomic.Bool
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		for !stop.Load() {
			os.Rename(spec, reg)
			os.Rename(fifo, spec)
			os.Rename(spec, fifo)
			os.Rename(reg, spec)
		}
	}()
	reads := make(chan struct{}, 1)
	go func() {
		for !stop.Load() {
			LoadApp(dir, "a", Defaults{DomainSuffix: "test"})
			select {
			case reads <- struct{}{}:
			default:
			}
		}
	}()
	deadline := time.After(2 * time.Second)
	for {
		select {
		case <-reads:
			continue
		case <-deadline:
			stop.Store(true)
			<-swapped
			return
		case <-time.After(time.Second):
			stop.Store(true)
			<-swapped
			for _, p := range []string{spec, fifo} { // unblock the reader: a writer opens and closes
				if w, err := os.OpenFile(p, os.O_RDWR|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
			}
			t.Fatal("LoadApp blocked for 1s: it opened a FIFO renamed over the spec file after the listing stat'ed it")
		}
	}
}
