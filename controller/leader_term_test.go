package controller

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarm-reconciler/reconciler/spec"
)

// slowWrites is a replica's manager that commits every lease write at once but answers it
// late, later than the lease's timing lets a write count (maxTrip): a loaded manager, or one
// far from swarm's Raft leader.
type slowWrites struct {
	*leaseEngine
	delay time.Duration
}

func (e slowWrites) ConfigCreate(ctx context.Context, s swarm.ConfigSpec) (swarm.ConfigCreateResponse, error) {
	r, err := e.leaseEngine.ConfigCreate(ctx, s)
	time.Sleep(e.delay)
	return r, err
}

func (e slowWrites) ConfigUpdate(ctx context.Context, id string, v swarm.Version, s swarm.ConfigSpec) error {
	err := e.leaseEngine.ConfigUpdate(ctx, id, v, s)
	time.Sleep(e.delay)
	return err
}

// TestElectionSlowCandidateLetsOthersLead: a replica whose writes are answered too late to
// count never leads, which is right; but each of its tries writes a record naming it, so the
// others saw the lease renewed every retry period and waited for ever: no replica reconciled
// while one manager was slow. It must stop writing the record for long enough that a replica
// on a healthy manager can take the lease.
func TestElectionSlowCandidateLetsOthersLead(t *testing.T) {
	const (
		lease  = 2 * time.Second
		renew  = 1300 * time.Millisecond
		retry  = 130 * time.Millisecond
		stopIn = 400 * time.Millisecond // maxTrip: 2000 - 130 - 1300 - 400 = 170 ms
	)
	store := &raftConfigs{configs: map[string]swarm.Config{}}
	var slowLed, goodLed atomic.Bool
	run := func(id string, eng LeaseEngine, led *atomic.Bool) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		e := &Election{Engine: eng, Owner: "t", Identity: id, LeaseDuration: lease, RenewDeadline: renew, RetryPeriod: retry,
			StopWithin: stopIn, Log: testr.New(t)}
		go func() {
			defer close(done)
			_ = e.Run(ctx, func(lctx context.Context) { led.Store(true); <-lctx.Done() })
		}()
		t.Cleanup(func() { cancel(); <-done })
	}
	run("slow", slowWrites{&leaseEngine{store: store}, 300 * time.Millisecond}, &slowLed)
	waitFor(t, 5*time.Second, "the slow replica wrote the lease", func() bool { _, ok := store.get(LeaseName("t")); return ok })
	run("good", &leaseEngine{store: store}, &goodLed)
	waitFor(t, 4*lease, "the replica on a healthy manager leads", func() bool { return goodLed.Load() })
	if slowLed.Load() {
		t.Error("the replica whose writes came back too late to count led")
	}
}

// TestFollowerReportsNoApps: swarm_reconciler_apps is "apps by phase, from the status files at
// the last resync"; a --leader-elect replica that stopped leading kept the last counts of its
// term for ever, so summed over the replicas (or alerted on, per replica) every app counted
// once more per failover, and an app fixed since stayed Failed on the old leader.
func TestFollowerReportsNoApps(t *testing.T) {
	reg := prometheus.NewRegistry()
	root := t.TempDir()
	status := filepath.Join(root, "status")
	if err := os.MkdirAll(status, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := spec.WriteStatus(status, &spec.Status{App: "a", Phase: spec.PhaseDeleted, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	c := &Controller{
		R: &Reconciler{Engine: newFakeEngine(), SpecsDir: filepath.Join(root, "specs"), StatusDir: status, Now: time.Now,
			StatusRetention: time.Hour, Log: logr.Discard(), Metrics: NewMetrics(reg)},
		Workers: 1, Log: logr.Discard(),
	}
	apps := func() (sum float64) {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == "swarm_reconciler_apps" {
				for _, m := range f.GetMetric() {
					sum += m.GetGauge().GetValue()
				}
			}
		}
		return sum
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, 5*time.Second, "the leader counts the app", func() bool { return apps() == 1 })
	cancel() // the lease is lost: this replica goes on as a follower
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := apps(); n != 0 {
		t.Errorf("swarm_reconciler_apps sums to %v on a replica that stopped leading, want 0: it reconciles nothing and its counts are the last term's", n)
	}
}

// TestElectionLeaderCutOffNamesNoLeader: a replica that lost the lease with its manager cut
// off (no read goes through) kept naming itself as the leader it last saw, so /readyz said
// "ok: follower, leader <itself>" on the one replica that is sure not to lead.
func TestElectionLeaderCutOffNamesNoLeader(t *testing.T) {
	store := &raftConfigs{configs: map[string]swarm.Config{}}
	eng := &leaseEngine{store: store}
	var leading atomic.Bool
	e := &Election{Engine: eng, Owner: "t", Identity: "a", LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry, Log: testr.New(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Run(ctx, func(lctx context.Context) { leading.Store(true); <-lctx.Done(); leading.Store(false) })
	}()
	defer func() { cancel(); <-done }()
	waitFor(t, 5*time.Second, "a leads and knows it", func() bool { return leading.Load() && e.Leader() == "a" })
	eng.down.Store(true)
	waitFor(t, 2*testLease, "a stops leading", func() bool { return !leading.Load() })
	time.Sleep(3 * testRetry)
	if got := e.Leader(); got == "a" {
		t.Errorf("Leader() = %q on the replica that lost the lease and sees no record, want none", got)
	}
}
