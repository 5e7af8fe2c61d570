package spec

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// The benchmarks measure what a resync and a reconcile cost the spec package with 10,000 apps
// (issue 7): Scan and ListStatus of the whole directory, first call (cold cache) and repeated
// call (nothing changed), and Load of one app. Run with
//
//	go test ./spec -run '^$' -bench . -benchmem -benchtime 5x
//
// cpu-ms/op is user+system CPU of the whole process (GC included), which is what the 1 s target
// of a resync is about; heap-MiB is the live heap after the run, cache included.

const benchApps = 10000

// benchSpec is a realistic CI spec: a few fields, some env, one probe.
const benchSpec = "recipe: custom-html\nversion: 1.7.1+1.27.2\ntier: install\n" +
	"env:\n  LETS_ENCRYPT_ENV: \"\"\n  PORT: \"8080\"\n" +
	"timeout: 15m\nhealth:\n  - http: \"https://{domain}/\"\n    ok: [200]\n"

var (
	benchOnce               sync.Once
	benchSpecs, benchStatus string
	benchRoot               string
	errBenchFixtureNotBuilt error
)

// benchDirs writes the 10,000 specs and status files once per test binary: writing them takes
// longer than most benchmark runs, and the benchmark function is called several times.
func benchDirs(b *testing.B) (specs, status string) {
	b.Helper()
	benchOnce.Do(func() {
		root, err := os.MkdirTemp("", "spec-bench-")
		if err != nil {
			errBenchFixtureNotBuilt = err
			return
		}
		benchRoot = root
		benchSpecs, benchStatus = filepath.Join(root, "specs"), filepath.Join(root, "status")
		for _, d := range []string{benchSpecs, benchStatus} {
			if err := os.Mkdir(d, 0o755); err != nil {
				errBenchFixtureNotBuilt = err
				return
			}
		}
		for i := range benchApps {
			app := fmt.Sprintf("app-%05d", i)
			if err := os.WriteFile(filepath.Join(benchSpecs, app+".yml"), []byte(benchSpec), 0o644); err != nil {
				errBenchFixtureNotBuilt = err
				return
			}
			data, err := json.MarshalIndent(sampleStatus(app), "", "  ") // as WriteStatus writes it
			if err != nil {
				errBenchFixtureNotBuilt = err
				return
			}
			// Plain writes, not WriteStatus: its two fsyncs per file would make the setup slow.
			if err := os.WriteFile(filepath.Join(benchStatus, app+".json"), data, 0o644); err != nil {
				errBenchFixtureNotBuilt = err
				return
			}
		}
		// Let the files settle (see racyWindow), as a steady state's files have: until then
		// every call reads and hashes them, which BenchmarkScan10k/unsettled measures.
		time.Sleep(racyWindow)
	})
	if errBenchFixtureNotBuilt != nil {
		b.Fatal(errBenchFixtureNotBuilt)
	}
	return benchSpecs, benchStatus
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchRoot != "" {
		os.RemoveAll(benchRoot)
	}
	os.Exit(code)
}

// measure runs op b.N times and reports CPU per op and the live heap afterwards. cold empties
// the caches before every op (outside the timer), to measure a first call.
func measure(b *testing.B, cold bool, op func()) {
	b.Helper()
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	reads, parses := cacheReads.Load(), cacheParses.Load()
	for i := 0; i < b.N; i++ {
		if cold {
			b.StopTimer()
			dropCaches()
			runtime.GC()
			b.StartTimer()
		}
		start := cpuTime()
		op()
		cpu += cpuTime() - start
	}
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(cacheReads.Load()-reads)/float64(b.N), "reads/op")
	b.ReportMetric(float64(cacheParses.Load()-parses)/float64(b.N), "parses/op")
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	b.ReportMetric(float64(m.HeapInuse)/(1<<20), "heap-MiB")
}

func benchScan(b *testing.B, cold bool) {
	specs, _ := benchDirs(b)
	scan := func() {
		set, err := Scan(specs, testDefaults)
		if err != nil || len(set) != benchApps {
			b.Fatalf("Scan: %d apps, %v", len(set), err)
		}
	}
	if !cold {
		scan() // warm the cache: the repeated call is the steady state
	}
	measure(b, cold, scan)
}

func benchListStatus(b *testing.B, cold bool) {
	_, status := benchDirs(b)
	list := func() {
		all, err := ListStatus(status)
		if err != nil || len(all) != benchApps {
			b.Fatalf("ListStatus: %d statuses, %v", len(all), err)
		}
	}
	if !cold {
		list()
	}
	measure(b, cold, list)
}

func BenchmarkScan10k(b *testing.B) {
	b.Run("first", func(b *testing.B) { benchScan(b, true) })
	b.Run("repeated", func(b *testing.B) { benchScan(b, false) })
	// unsettled is the worst case of the cache: every file changed within racyWindow, so each
	// call reads and hashes all of them (and still parses none).
	b.Run("unsettled", func(b *testing.B) {
		defer func(w time.Duration) { racyWindow = w }(racyWindow)
		racyWindow = 100 * 365 * 24 * time.Hour
		dropCaches() // entries read with the real window are settled for good
		benchScan(b, false)
	})
}

func BenchmarkListStatus10k(b *testing.B) {
	b.Run("first", func(b *testing.B) { benchListStatus(b, true) })
	b.Run("repeated", func(b *testing.B) { benchListStatus(b, false) })
}

// BenchmarkLoad10k is one reconcile's spec read: one app among 10,000 specs, nothing changed.
func BenchmarkLoad10k(b *testing.B) {
	specs, _ := benchDirs(b)
	load := func() {
		des, err := Load(specs, "app-04242", testDefaults)
		if err != nil || des == nil || des.Spec == nil {
			b.Fatalf("Load: %+v, %v", des, err)
		}
	}
	load()
	measure(b, false, load)
}

// BenchmarkSteadyResync10k is the spec package's share of a steady resync: Scan and ListStatus
// of 10,000 unchanged apps (the targets: under 1 s of CPU, under 200 MiB of heap).
func BenchmarkSteadyResync10k(b *testing.B) {
	specs, status := benchDirs(b)
	resync := func() {
		set, err := Scan(specs, testDefaults)
		if err != nil || len(set) != benchApps {
			b.Fatalf("Scan: %d apps, %v", len(set), err)
		}
		all, err := ListStatus(status)
		if err != nil || len(all) != benchApps {
			b.Fatalf("ListStatus: %d statuses, %v", len(all), err)
		}
	}
	resync()
	measure(b, false, resync)
}
