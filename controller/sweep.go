package controller

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// Pending lists the apps a resync should reconcile, from one scan of the spec directory, one
// snapshot of every owned object and the status files: a constant number of Engine API calls
// however many apps there are. Owned stacks with no spec are in the list: reconciling an app
// without a spec tears it down, so the orphan sweep is this same function.
func (r *Reconciler) Pending(ctx context.Context) ([]string, error) {
	desired, err := spec.Scan(r.SpecsDir, r.Defaults)
	if err != nil {
		return nil, fmt.Errorf("scan specs: %w", err)
	}
	snap, err := swarmstate.Take(ctx, r.Engine, "")
	if err != nil {
		return nil, fmt.Errorf("snapshot of all apps: %w", err)
	}
	statuses, err := spec.ListStatus(r.StatusDir)
	if err != nil {
		// One unreadable status file must not stop the sweep: go on with the readable ones.
		r.Log.Error(err, "some status files are unreadable; they are rewritten when their apps are reconciled")
	}
	if r.observed != nil {
		for stack, app := range snap.Stacks() {
			r.observed(app, stack)
		}
		for _, st := range statuses {
			r.observed(st.App, st.Stack)
		}
	}
	return needsWork(desired, snap.ByApp(), statuses, r.Now(), r.StatusRetention), nil
}

// needsWork decides which apps are not settled. An app is settled when its status describes
// its current spec and is either final for that generation, or Ready with every service still
// converged; a deleted app is settled when nothing of it is left and its Deleted status is
// within retention.
func needsWork(desired map[string]*spec.Desired, live map[string]*swarmstate.Snapshot, statuses []*spec.Status, now time.Time, retention time.Duration) []string {
	status := map[string]*spec.Status{}
	for _, st := range statuses {
		status[st.App] = st
	}
	apps := map[string]bool{}
	for app := range desired {
		apps[app] = true
	}
	for app := range live {
		apps[app] = true
	}
	for app := range status {
		apps[app] = true
	}
	var out []string
	for app := range apps {
		if !settled(desired[app], live[app], status[app], now, retention) {
			out = append(out, app)
		}
	}
	sort.Strings(out)
	return out
}

func settled(d *spec.Desired, live *swarmstate.Snapshot, st *spec.Status, now time.Time, retention time.Duration) bool {
	if live == nil {
		live = &swarmstate.Snapshot{}
	}
	if d == nil {
		if !live.Empty() || st == nil {
			return live.Empty()
		}
		return st.Phase == spec.PhaseDeleted && (retention <= 0 || now.Sub(st.UpdatedAt) <= retention)
	}
	if st == nil || st.ObservedGeneration != d.Generation || st.Phase == spec.PhaseDeleted {
		return false
	}
	switch {
	case st.Phase.Final(), st.Phase == spec.PhaseSuspended:
		return true
	case st.Phase == spec.PhaseReady:
		since := st.UpdatedAt
		if st.AttemptStartedAt != nil {
			since = *st.AttemptStartedAt
		}
		for _, svc := range live.Services {
			if byHand, _ := drift(svc); byHand {
				return false
			}
		}
		return len(live.Services) == len(st.Services) && swarmstate.Converged(live.Services, live.Tasks, since).Converged
	}
	return false
}
