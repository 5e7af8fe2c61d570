package webview

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/swarm-reconciler/reconciler/spec"
)

// TestAppPageDoesNotReadAnOversizeSpec: a spec file over spec.MaxSpecBytes (a log or an image
// written into the spec directory by mistake) is refused unread by the reconciler; its app's
// page does not read it either. Each load of the page read the whole file into the
// reconciler's memory and parsed it: a 1 GiB file took a gigabyte per load.
func TestAppPageDoesNotReadAnOversizeSpec(t *testing.T) {
	f := newView(t)
	f.write("big", spec.PhaseInvalid, "too large", time.Minute)
	fh, err := os.Create(filepath.Join(f.specs, "big.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString("recipe: x\nversion: 1\n"); err != nil {
		t.Fatal(err)
	}
	if err := fh.Truncate(64 << 20); err != nil { // sparse: 64 MiB that take no disk
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	code, body := f.get("/apps/big")
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("the page of an app with a 64 MiB spec file allocated %d MiB", alloc>>20)
	}
	if code != 200 || !strings.Contains(body, "the most a spec file may have") {
		t.Errorf("%d: want the page to say the spec is not shown:\n%s", code, body)
	}
}
