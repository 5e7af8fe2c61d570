package controller

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/locks"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// BenchmarkSteadyResync measures one resync over N converged apps against the in-memory
// engine: Engine API calls, CPU time and heap. Run with
// go test ./controller -run '^$' -bench SteadyResync -benchtime 3x
func BenchmarkSteadyResync(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("apps=%d", n), func(b *testing.B) {
			f := newBenchFixture(b, n)
			f.engine.resetCalls()
			var calls int
			b.ResetTimer()
			start := cpuTime()
			for i := 0; i < b.N; i++ {
				apps, err := f.r.Pending(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				if len(apps) != 0 {
					b.Fatalf("a steady resync found %d apps to reconcile, e.g. %v", len(apps), apps[:min(3, len(apps))])
				}
			}
			b.StopTimer()
			calls = len(f.engine.calls)
			b.ReportMetric(float64(calls)/float64(b.N), "engine-calls/resync")
			b.ReportMetric((cpuTime()-start).Seconds()/float64(b.N), "cpu-s/resync")
			var m runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m)
			b.ReportMetric(float64(m.HeapInuse)/(1<<20), "heap-MiB")
		})
	}
}

// BenchmarkConvergeAll measures the time to bring N new apps to Ready when the engine answers
// at once: the reconciler's own cost, rendering included.
func BenchmarkConvergeAll(b *testing.B) {
	for _, n := range []int{1000} {
		b.Run(fmt.Sprintf("apps=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				f := newFixture(b)
				writeSpecs(b, f, n)
				b.StartTimer()
				start := time.Now()
				f.convergeAll(b, n)
				b.ReportMetric(time.Since(start).Seconds(), "s-to-all-ready")
			}
		})
	}
}

// newBenchFixture lays out n converged apps directly (spec, Ready status, a running service
// each), as reconciling them one by one would leave them, without paying for that.
func newBenchFixture(b *testing.B, n int) *fixture {
	f := newFixture(b)
	lockDir, err := locks.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	f.r.Locks = lockDir // a resync also sweeps the lock directory, as in production
	one := uint64(1)
	started := f.now
	for i := 0; i < n; i++ {
		app := fmt.Sprintf("app-%05d", i)
		body := "recipe: echo\nversion: 1.0.0+1\n"
		f.writeSpec(app, body)
		st := &spec.Status{App: app, ObservedGeneration: spec.Generation([]byte(body)), Phase: spec.PhaseReady,
			AttemptStartedAt: &started, Stack: app + "_test", Domain: app + ".test",
			Services: []spec.ServiceStatus{{Name: app + "_test_app", Running: 1, Desired: 1}}, UpdatedAt: f.now}
		if err := spec.WriteStatus(f.r.StatusDir, st); err != nil {
			b.Fatal(err)
		}
		id := fmt.Sprintf("svc%05d", i)
		f.engine.services[id] = &swarm.Service{ID: id, Spec: swarm.ServiceSpec{
			Annotations: swarm.Annotations{Name: app + "_test_app", Labels: map[string]string{swarmstate.LabelApp: app}},
			Mode:        swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
		}}
		f.engine.tasks = append(f.engine.tasks, swarm.Task{ID: "t" + id, ServiceID: id, DesiredState: swarm.TaskStateRunning,
			Status: swarm.TaskStatus{State: swarm.TaskStateRunning}})
	}
	// Warm the caches as the first resync of a running reconciler would.
	if apps, err := f.r.Pending(b.Context()); err != nil || len(apps) != 0 {
		b.Fatalf("fixture not steady: %v %v", apps[:min(3, len(apps))], err)
	}
	return f
}

func writeSpecs(b *testing.B, f *fixture, n int) {
	for i := 0; i < n; i++ {
		f.writeSpec(fmt.Sprintf("app-%05d", i), "recipe: echo\nversion: 1.0.0+1\n")
	}
}

// convergeAll reconciles every pending app until none is left, as the workers would.
func (f *fixture) convergeAll(b *testing.B, n int) {
	for round := 0; round < 10; round++ {
		apps, err := f.r.Pending(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if len(apps) == 0 {
			return
		}
		for _, app := range apps {
			if _, err := f.r.Reconcile(b.Context(), app); err != nil {
				b.Fatal(err)
			}
		}
		f.now = f.now.Add(time.Second)
	}
	st, _ := spec.ListStatus(f.r.StatusDir)
	var phases []string
	for _, s := range st[:min(3, len(st))] {
		phases = append(phases, string(s.Phase)+": "+s.Message)
	}
	b.Fatalf("%d apps did not converge: %s", n, strings.Join(phases, "; "))
}
