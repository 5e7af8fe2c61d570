package controller

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
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
	r.mu.Lock()
	first := !r.inventoried
	r.inventoried = true
	r.mu.Unlock()
	desired, err := spec.Scan(r.SpecsDir, r.Defaults)
	if err != nil {
		return nil, fmt.Errorf("scan specs: %w", err)
	}
	r.noteOverlayDirs(desired)
	var found []string
	if first {
		// Once per process, at the first resync: volumes of orphans on other nodes. Beside
		// the workers when the loop runs (a new leader reconciles at once, and the apps found
		// come through its queue); before this pass's list otherwise (once, janitor).
		inventory := func() []string {
			apps, err := r.sweepNodes(ctx, desired)
			if err != nil && ctx.Err() == nil {
				r.Log.Error(err, "could not look for the apps' volumes on the other nodes; the next start (or `reconciler janitor`) looks again")
			}
			return apps
		}
		if enqueue := r.enqueue; enqueue != nil {
			go func() {
				for _, app := range inventory() {
					enqueue(app)
				}
			}()
		} else {
			found = inventory()
		}
	}
	snap, err := swarmstate.Take(ctx, r.Engine, swarmstate.Owner{Dir: r.Owner})
	if err != nil {
		return nil, fmt.Errorf("snapshot of all apps: %w", err)
	}
	r.indexDeployed(snap)
	r.indexStacks(desired)
	statuses, err := spec.ListStatus(r.StatusDir)
	if err != nil {
		// One unreadable status file must not stop the sweep: go on with the readable ones.
		r.Log.Error(err, "some status files are unreadable; they are rewritten when their apps are reconciled")
	}
	if r.observed != nil {
		// Route engine events only for apps this reconciler reports on: an orphan held by
		// another process must not wake it up on every event of that process's app.
		for _, st := range statuses {
			// "" tells the router the app is gone. A torn-down app is not routed again: its
			// teardown removed its route, and node events would queue a pass of every app
			// deleted within the status retention; a stack reused by a new app routes to it.
			if st.Stack != "" && st.Phase != spec.PhaseDeleted && st.Phase != spec.PhaseExpired {
				r.observed(st.App, st.Stack)
			}
		}
	}
	if r.Metrics != nil {
		r.Metrics.AppsByPhase.Reset()
		for _, st := range statuses {
			r.Metrics.AppsByPhase.WithLabelValues(string(st.Phase)).Inc()
		}
	}
	groups := snap.ByApp()
	r.sweepLocks(desired, groups, statuses)
	apps := needsWork(desired, groups, statuses, r.Now(), r.StatusRetention)
	for _, app := range found {
		if !slices.Contains(apps, app) {
			apps = append(apps, app)
		}
	}
	return apps, nil
}

// noteOverlayDirs remembers the folders holding the specs' overlay files, for the loop's
// watch: editing an overlay file is a change of its app, as editing its spec is.
func (r *Reconciler) noteOverlayDirs(desired map[string]*spec.Desired) {
	seen := map[string]bool{}
	var dirs []string
	for _, d := range desired {
		for _, f := range d.OverlayFiles {
			if dir := filepath.Dir(f); !seen[dir] {
				seen[dir] = true
				dirs = append(dirs, dir)
			}
		}
	}
	sort.Strings(dirs)
	r.mu.Lock()
	r.overlayDirs = dirs
	r.mu.Unlock()
}

// OverlayDirs are the folders of the specs' overlay files, as of the last scan.
func (r *Reconciler) OverlayDirs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.overlayDirs
}

// sweepLocks unlinks app lockfiles that nobody holds and no app stands behind, and warns about
// app locks held by another process for longer than twice the longest ttl: a CI harness that
// hangs keeps its app, and a person should look.
func (r *Reconciler) sweepLocks(desired map[string]*spec.Desired, groups map[string]*swarmstate.Snapshot, statuses []*spec.Status) {
	if r.Locks == nil {
		return
	}
	domains := map[string]bool{}
	var longest time.Duration
	for _, d := range desired {
		if d.Spec != nil {
			domains[d.Spec.Domain] = true
			longest = max(longest, d.Spec.TTL.Duration)
		}
	}
	byApp := make(map[string]*spec.Status, len(statuses))
	for _, st := range statuses {
		byApp[st.App] = st
		if st.Domain != "" && st.Phase != spec.PhaseDeleted && st.Phase != spec.PhaseExpired {
			domains[st.Domain] = true
		}
	}
	for app, group := range groups {
		st := byApp[app]
		if st == nil {
			st = &spec.Status{}
		}
		domains[domainOf(st, group)] = true
	}
	if removed, err := r.Locks.SweepStale(func(domain string) bool { return domains[domain] }); err != nil {
		r.Log.Error(err, "sweep stale app lockfiles")
	} else if len(removed) > 0 {
		r.Log.Info("removed stale app lockfiles", "domains", removed)
	}
	if longest <= 0 {
		return
	}
	files, err := r.Locks.AppLockfiles()
	if err != nil {
		r.Log.Error(err, "list app lockfiles")
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for domain, since := range files {
		if _, ours := r.held[domain]; !ours && r.Now().Sub(since) > 2*longest {
			r.Log.Info("app lock held for longer than twice the longest ttl: is its holder stuck?",
				"domain", domain, "since", since.Format(time.RFC3339), "longestTTL", longest.String())
		}
	}
}

// needsWork decides which apps are not settled. An app is settled when its status describes
// its current spec and is either final for that generation, or Ready with every service still
// converged and no backup or restore due (a request, a scheduled time come, a run that died
// with its process); a deleted app is settled when nothing of it is left and its Deleted status is
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
		if len(st.Nodes) > 0 {
			return false // its volumes on other nodes are still to be removed
		}
		return st.Phase == spec.PhaseDeleted && (retention <= 0 || now.Sub(st.UpdatedAt) <= retention)
	}
	if st == nil || st.ObservedGeneration != d.Generation || st.Phase == spec.PhaseDeleted {
		return false
	}
	if d.Spec != nil && st.Phase != spec.PhaseExpired {
		if exp, ok := expiresAt(d.Spec, st); ok && !now.Before(exp) {
			return false // due to be reaped, Failed or not: what it made goes with the ttl
		}
	}
	switch {
	case len(stillOwedPostHooks(st)) > 0:
		return false // tried again while owed (owedAgain): the timer died with the process
	case st.Phase.Final(), st.Phase == spec.PhaseSuspended:
		return true
	case st.Phase == spec.PhaseReady:
		if d.Spec != nil && jobDue(d.Spec, st, now) {
			return false
		}
		since := st.UpdatedAt
		if st.AttemptStartedAt != nil {
			since = *st.AttemptStartedAt
		}
		for _, svc := range live.Services {
			if byHand, _ := drift(svc); byHand {
				return false
			}
		}
		v := swarmstate.Converged(live.Services, live.Tasks, since)
		if d.Spec != nil {
			// A task restarted while no reconciler ran: not Ready until its window passed.
			if _, unstable := v.Unstable(now, func(ss swarmstate.ServiceState) time.Duration { return minReady(d.Spec, ss) }); len(unstable) > 0 {
				return false
			}
		}
		return len(live.Services) == len(st.Services) && v.Converged
	}
	return false
}
