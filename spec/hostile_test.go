package spec

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// writeHugeSpec writes a 50 MiB spec file (a comment line repeated) into dir.
func writeHugeSpec(t testing.TB, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "huge.yml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line := []byte("# " + strings.Repeat("x", 1021) + "\n")
	if _, err := f.WriteString("recipe: r\nversion: 1.0.0\n"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50<<10; i++ {
		if _, err := f.Write(line); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHugeSpecIsRefusedUnread: a spec file over MaxSpecBytes is Invalid without being read, and
// the other specs of the directory are read as usual.
func TestHugeSpecIsRefusedUnread(t *testing.T) {
	dir := t.TempDir()
	writeHugeSpec(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "ok.yml"), []byte("recipe: r\nversion: 1.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Scan(dir, Defaults{DomainSuffix: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if d := got["huge"]; d == nil || d.Err == nil || !strings.Contains(d.Err.Error(), "a spec file may have at most 1048576 (1 MiB)") {
		t.Fatalf("huge spec: %+v", d)
	}
	if d := got["ok"]; d == nil || d.Err != nil {
		t.Fatalf("the other spec: %+v", d)
	}
	if _, err := Parse("huge.yml", "huge", make([]byte, MaxSpecBytes+1), Defaults{}); err == nil {
		t.Fatal("Parse accepted more than MaxSpecBytes")
	}
}

// BenchmarkHugeSpec reports the time and memory a scan takes to refuse a 50 MiB spec (issue
// 15: within 1 s and 64 MiB).
func BenchmarkHugeSpec(b *testing.B) {
	dir := b.TempDir()
	writeHugeSpec(b, dir)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		specCache.retain(dir, nil) // a cold scan each time
		got, err := Scan(dir, Defaults{DomainSuffix: "test"})
		if err != nil || got["huge"] == nil || got["huge"].Err == nil {
			b.Fatalf("%v %+v", err, got["huge"])
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "MiB-alloc/op")
}
