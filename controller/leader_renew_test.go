package controller

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/go-logr/logr"
)

// slowRenewEngine is a leader's manager that, once armed, commits the next lease update at
// once but answers it late, answers the read-back late too (each just inside the lease's call
// timeout), and is then cut off from the swarm: a busy manager losing its quorum.
type slowRenewEngine struct {
	*leaseEngine
	delay    time.Duration
	armed    atomic.Bool
	slowRead atomic.Bool
	wrote    atomic.Int64 // unix nanos when the slow update was committed
}

func (e *slowRenewEngine) ConfigUpdate(ctx context.Context, id string, v swarm.Version, s swarm.ConfigSpec) error {
	if !e.armed.CompareAndSwap(true, false) {
		return e.leaseEngine.ConfigUpdate(ctx, id, v, s)
	}
	err := e.leaseEngine.ConfigUpdate(ctx, id, v, s) // committed: every manager reads it now
	e.wrote.Store(time.Now().UnixNano())
	time.Sleep(e.delay) // ... and the answer comes late
	e.slowRead.Store(err == nil)
	return err
}

func (e *slowRenewEngine) ConfigInspectWithRaw(ctx context.Context, id string) (swarm.Config, []byte, error) {
	if !e.slowRead.CompareAndSwap(true, false) {
		return e.leaseEngine.ConfigInspectWithRaw(ctx, id)
	}
	c, raw, err := e.leaseEngine.ConfigInspectWithRaw(ctx, id)
	time.Sleep(e.delay)
	e.down.Store(true) // then the manager is cut off
	return c, raw, err
}

// TestElectionSlowRenewThenCutOff: with timings in the proportions of the defaults (lease 15s,
// renew deadline 10s, retry 1s, StopWithin 3s, scaled by 2/15), which pass leaseTiming, a
// leader whose last renew was committed at once but answered late (the update and its
// read-back each just inside the call timeout, 2 retry periods) counts its renew deadline from
// the answer, while the others count the lease from the write they saw: the leader, its
// workers stopping within StopWithin as leaseTiming allows, still acts after another replica
// took the lease and acts. With answers on time (delay 0) there is no overlap.
func TestElectionSlowRenewThenCutOff(t *testing.T) {
	const (
		lease  = 2 * time.Second
		renew  = 1300 * time.Millisecond
		retry  = 130 * time.Millisecond
		stopIn = 400 * time.Millisecond
	)
	if retry+renew+stopIn >= lease {
		t.Fatal("the timings do not pass leaseTiming")
	}
	for _, delay := range []time.Duration{0, 2*retry - 10*time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			store := &raftConfigs{configs: map[string]swarm.Config{}}
			var acting atomic.Int32
			var aStopped, bStarted atomic.Int64
			run := func(id string, eng LeaseEngine, retry time.Duration, stopTook time.Duration) (cancel context.CancelFunc, done chan struct{}) {
				ctx, cancel := context.WithCancel(context.Background())
				done = make(chan struct{})
				e := &Election{Engine: eng, Owner: "t", Identity: id, LeaseDuration: lease, RenewDeadline: renew, RetryPeriod: retry,
					StopWithin: stopIn, Stuck: func() { t.Errorf("%s: stuck", id) }, Log: logr.Discard()}
				go func() {
					defer close(done)
					_ = e.Run(ctx, func(lctx context.Context) {
						if id == "b" {
							bStarted.CompareAndSwap(0, time.Now().UnixNano())
						}
						if n := acting.Add(1); n > 1 {
							t.Errorf("%s started acting while %d other replica acts", id, n-1)
						}
						<-lctx.Done()
						time.Sleep(stopTook) // the workers' engine calls in flight end (within StopWithin)
						acting.Add(-1)
						if id == "a" {
							aStopped.CompareAndSwap(0, time.Now().UnixNano())
						}
					})
				}()
				return cancel, done
			}
			a := &slowRenewEngine{leaseEngine: &leaseEngine{store: store}, delay: delay}
			cancelA, doneA := run("a", a, retry, stopIn-50*time.Millisecond)
			defer func() { cancelA(); <-doneA }()
			waitFor(t, 5*time.Second, "a leads", func() bool { return acting.Load() == 1 })
			cancelB, doneB := run("b", &leaseEngine{store: store}, 20*time.Millisecond, 0)
			defer func() { cancelB(); <-doneB }()
			time.Sleep(5 * retry) // b watches a's renews
			a.armed.Store(true)
			waitFor(t, 5*time.Second, "b leads", func() bool { return bStarted.Load() != 0 && aStopped.Load() != 0 })
			w := a.wrote.Load()
			t.Logf("from a's last renew written: a stopped acting after %s, b started after %s",
				time.Duration(aStopped.Load()-w), time.Duration(bStarted.Load()-w))
		})
	}
}
