package controller

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/swarm-reconciler/reconciler/spec"
)

// RunOnce is one full pass: every app that needs work is reconciled, on up to Workers at a
// time, until it has settled: its status file describes its current spec in a phase that
// waiting in this pass would not change (see settled), or its reconcile asks for nothing more.
// An app that is converging (Pending, Deploying, Upgrading, Deleting) is reconciled again when
// it asks to be, and one whose reconcile fails is retried with backoff, for as long as ctx
// lasts: the caller bounds the pass with a deadline on ctx.
//
// It returns the apps it looked at and every other app with a spec (one settled before the
// pass is judged too), and, sorted, those that had not settled when ctx ended; err is ctx's
// error then, or the error of listing the apps. The caller reads the status files for the
// verdict.
func (c *Controller) RunOnce(ctx context.Context) (apps, unsettled []string, err error) {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	apps, err = c.pending(ctx)
	if err != nil {
		return nil, nil, err
	}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, c.Workers)
	)
	for _, app := range apps {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			mu.Lock()
			unsettled = append(unsettled, app)
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if !c.settle(ctx, app) {
				mu.Lock()
				unsettled = append(unsettled, app)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(unsettled)
	// The verdict is over every app with a spec: one settled before this pass (Failed or
	// Invalid for its generation, by an earlier once or a run) is not reconciled, but it is
	// still Failed or Invalid.
	if desired, derr := spec.Scan(c.R.SpecsDir, c.R.Defaults); derr == nil {
		for app := range desired {
			if !slices.Contains(apps, app) {
				apps = append(apps, app)
			}
		}
		slices.Sort(apps)
	}
	return apps, unsettled, ctx.Err()
}

// settle reconciles app until it has settled, and reports whether it did before ctx ended.
func (c *Controller) settle(ctx context.Context, app string) bool {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		res, log, err := c.runPass(ctx, app)
		wait := res.RequeueAfter
		switch {
		case err == nil && c.settled(app):
			return true
		case ctx.Err() != nil:
			return false // cut short: a pass that asks for nothing more may not have ended
		case err == nil && wait <= 0:
			return true
		case err != nil:
			log.Error(err, "reconcile failed; retrying with backoff", "backoff", backoff.String())
			wait, backoff = backoff, min(backoff*2, 30*time.Second)
		}
		// While the app waits on its tasks alone (TasksFor), a look is a task list call and a
		// pass only when it moved, as in the loop (waitOn): on a swarm of several nodes an app
		// is looked at every 100 ms, and a full pass at each would be dozens of calls a second.
		until := time.Now().Add(res.TasksFor)
		for {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			if ctx.Err() != nil || err != nil || !time.Now().Before(until) || c.tasksMoved(ctx, app) {
				break
			}
		}
	}
	return false
}

// settled reports whether app's status file describes its current spec in a phase that
// waiting in this pass would not change: Ready, Degraded (it asks to be looked at again, but
// only to notice a repair), Failed, Invalid, Suspended, Expired; or Deleted when it has no
// spec. The Result of a reconcile cannot tell: a Degraded or watched Ready app asks to be
// requeued for as long as it lives, and so does an app whose lock another process holds.
func (c *Controller) settled(app string) bool {
	st, err := spec.ReadStatus(c.R.StatusDir, app)
	if err != nil {
		return false
	}
	d, err := spec.LoadApp(c.R.SpecsDir, app, c.R.Defaults)
	switch {
	case err != nil:
		return false
	case d == nil:
		return st.Phase == spec.PhaseDeleted || st.Phase == spec.PhaseExpired
	case st.ObservedGeneration != d.Generation:
		return false
	}
	switch st.Phase {
	case spec.PhaseReady, spec.PhaseDegraded, spec.PhaseFailed, spec.PhaseInvalid, spec.PhaseSuspended, spec.PhaseExpired:
		return true
	}
	return false
}
