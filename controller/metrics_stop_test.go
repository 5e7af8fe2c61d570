package controller

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// TestStoppedLoopReportsNoWorkInProgress: once Run has returned (the process stopping, or a
// --leader-elect replica that lost the lease and goes on as a follower), no reconcile runs, and
// the gauges of the work in progress say so. client-go's queue stops updating them when it shuts
// down, so they kept the value of the pass that ran at the last update: a follower reported a
// reconcile running for ever (unfinished work and longest running processor seconds > 0),
// which is what the "stuck workers" alert of the metric's help text looks for.
func TestStoppedLoopReportsNoWorkInProgress(t *testing.T) {
	reg := prometheus.NewRegistry()
	root := t.TempDir()
	started := make(chan struct{}, 1)
	c := &Controller{
		R: &Reconciler{Engine: newFakeEngine(), SpecsDir: filepath.Join(root, "specs"), StatusDir: filepath.Join(root, "status"),
			Log: logr.Discard(), Metrics: NewMetrics(reg)},
		Workers: 1,
		Log:     logr.Discard(),
		reconcileFunc: func(ctx context.Context, app string) (Result, error) {
			select {
			case started <- struct{}{}:
			default:
			}
			<-ctx.Done() // a long pass (an image pull), cut short by the stop
			return Result{}, ctx.Err()
		},
		pendingFunc: func(context.Context) ([]string, error) { return []string{"a"}, nil },
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		cancel()
		<-done
		t.Fatal("the pass of a did not start")
	}
	// The queue updates the gauges every 500 ms: wait for an update that sees the pass running.
	deadline := time.Now().Add(5 * time.Second)
	for gathered(t, reg, "swarm_reconciler_workqueue_longest_running_processor_seconds") == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if v := gathered(t, reg, "swarm_reconciler_workqueue_longest_running_processor_seconds"); v == 0 {
		t.Fatal("the gauge never saw the pass running")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // more than one update period
	for _, name := range []string{
		"swarm_reconciler_workqueue_unfinished_work_seconds",
		"swarm_reconciler_workqueue_longest_running_processor_seconds",
	} {
		if v := gathered(t, reg, name); v != 0 {
			t.Errorf("%s = %v after the loop stopped, want 0: no reconcile runs", name, v)
		}
	}
}
