package webview

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/swarm-reconciler/reconciler/spec"
)

// BenchmarkIndex1000Apps renders / of 1,000 apps, each with a history of 20 phases: the server
// time of the operators' main page (issue target: < 50 ms).
func BenchmarkIndex1000Apps(b *testing.B) {
	dir := b.TempDir()
	for i := range 1000 {
		first := t0.Add(-time.Duration(i) * time.Minute)
		st := &spec.Status{App: fmt.Sprintf("app-%04d", i), Phase: phases[i%len(phases)], Recipe: "custom-html", Version: "1.7.1+1.27.2",
			Message: strings.Repeat("a message of some length ", 4), FirstDeployedAt: &first, UpdatedAt: t0}
		for j := range 20 {
			st.History = append(st.History, spec.HistoryEntry{Time: first.Add(time.Duration(j) * time.Second), Phase: spec.PhaseDeploying, Message: "step"})
		}
		if err := spec.WriteStatus(dir, st); err != nil {
			b.Fatal(err)
		}
	}
	// Steady state: most of 1,000 status files are unchanged for more than the status cache's
	// 3 s racy window, so they are stat'ed, not read; a file written within it is read again.
	time.Sleep(3100 * time.Millisecond)
	srv := New(dir, b.TempDir(), spec.Defaults{}, logr.Discard())
	h := srv.Handler()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)) // fill the cache
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkEventStreamIdle holds 10 event streams open on a status directory where nothing
// changes, for idleFor, and reports the CPU the whole process used meanwhile as a share of
// one core (issue target: < 1%).
func BenchmarkEventStreamIdle(b *testing.B) {
	const streams, idleFor = 10, 5 * time.Second
	dir := b.TempDir()
	for i := range 100 {
		if err := spec.WriteStatus(dir, &spec.Status{App: fmt.Sprintf("app-%03d", i), Phase: spec.PhaseReady, UpdatedAt: t0}); err != nil {
			b.Fatal(err)
		}
	}
	srv := New(dir, b.TempDir(), spec.Defaults{}, logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Watch(ctx)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	for range streams {
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			b.Fatalf("open a stream: %v", err)
		}
		defer resp.Body.Close()
	}
	var share float64
	for b.Loop() {
		before, start := cpuTime(b), time.Now()
		time.Sleep(idleFor)
		share = float64(cpuTime(b)-before) / float64(time.Since(start))
	}
	b.ReportMetric(100*share, "cpu-%")
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
