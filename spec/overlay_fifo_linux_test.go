package spec

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOverlayFIFODoesNotHang: an overlay path that names a FIFO in the spec directory
// must be refused as "not a regular file", not block the scan (and with it the whole loop)
// until some process opens the FIFO for writing.
func TestOverlayFIFODoesNotHang(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "overlays"), 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "overlays", "ci.yml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal("mkfifo:", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.yml"), []byte("recipe: r\nversion: 1.0.0\noverlays:\n  - file: overlays/ci.yml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan map[string]*Desired, 1)
	go func() {
		set, _ := Scan(dir, Defaults{DomainSuffix: "test"})
		done <- set
	}()
	select {
	case set := <-done:
		if d := set["a"]; d == nil || d.Err == nil || !strings.Contains(d.Err.Error(), "not a regular file") {
			t.Fatalf("a FIFO overlay: %+v, want an Invalid app saying it is not a regular file", d)
		}
	case <-time.After(3 * time.Second):
		// Unblock the reader so the test process can end: a writer that opens and closes.
		if w, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("Scan blocked for 3s opening a FIFO named as an overlay: one mkfifo in the spec directory stops every reconcile")
	}
}
