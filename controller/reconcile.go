package controller

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/go-logr/logr"

	"github.com/swarm-reconciler/reconciler/locks"
	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// Result tells the queue when to come back to an app that is waiting on swarm.
type Result struct {
	// RequeueAfter, when positive, reconciles the app again after that long.
	RequeueAfter time.Duration
}

// Intervals at which an app that is waiting on swarm is looked at again. Engine events usually
// come sooner; these are the safety net.
const (
	waitInterval     = 500 * time.Millisecond
	maxWaitInterval  = 2 * time.Second
	teardownInterval = 500 * time.Millisecond
)

// waitAfter is when an app that has waited on swarm since start is looked at again: after
// waitInterval at first, then after a quarter of the time it has waited, up to
// maxWaitInterval, and never past its deadline. The engine's events announce at once what
// happens on this node (containers starting, dying, turning healthy; service updates); the
// poll is the safety net for tasks on other nodes and for states no container event announces
// (a task that cannot be scheduled), and with many apps waiting its list calls compete with
// swarm for the CPU.
func waitAfter(start, deadline, now time.Time) time.Duration {
	d := min(max(now.Sub(start)/4, waitInterval), maxWaitInterval)
	if left := deadline.Sub(now) + time.Millisecond; left > 0 && left < d {
		d = left
	}
	return d
}

// Reconciler converges one app at a time: Reconcile(app) re-reads the spec file and a fresh
// snapshot of the swarm, never trusting what triggered it.
type Reconciler struct {
	Engine     Engine
	SpecsDir   string
	StatusDir  string
	RecipesDir string
	Defaults   spec.Defaults
	// StatusRetention is how long a Deleted status file stays before it is removed.
	StatusRetention time.Duration
	// Now is the clock; tests pass their own.
	Now func() time.Time
	Log logr.Logger

	// Owner is this reconciler's identity (locks.SpecDirID of its spec directory), stamped on
	// everything it creates. Orphans stamped with another owner belong to the reconciler of
	// another spec directory and are left to it (or to the janitor, whose Owner is empty).
	Owner string

	// Locks, when set, is where app locks are taken: an app is only acted on by the process
	// holding its lock, and an orphan whose lock is held elsewhere is left alone.
	Locks *locks.Dir

	// Metrics, when set, records reconcile outcomes, times to Ready and teardown times.
	Metrics *Metrics

	// Step, when set, is called after every change made to the swarm, with its running
	// count. Fault-injection tests use it to kill the process at each step in turn.
	Step func(n int64, a Action)

	// observed is told which stack an app uses, so engine events can be routed to it.
	observed func(app, stack string)

	mu      sync.Mutex
	renders map[string]*manifests.Rendered // by app, for the generation it was rendered from
	renderG map[string]string
	steps   atomic.Int64
	held    map[string]*locks.Lock // app locks by domain
	stacks  map[string]string      // stack -> the app holding it (see stacks.go)
	probes  prober
}

// Reconcile makes the swarm match the spec of app and writes the app's status file.
//
// The error contract: a returned error is transient (the engine did not answer, an apply
// failed) and the caller retries with exponential backoff. Faults that waiting will not fix (a
// bad spec, an unknown version, a rollback, a timeout) are not errors: they are written to the
// status as Invalid or Failed, final for that generation, and not retried until the spec file
// changes. A positive RequeueAfter means the app waits on swarm.
func (r *Reconciler) Reconcile(ctx context.Context, app string) (Result, error) {
	prev, err := spec.ReadStatus(r.StatusDir, app)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Result{}, fmt.Errorf("read status of %s: %w", app, err)
	}
	st := &spec.Status{App: app}
	if prev != nil {
		st = cloneStatus(prev)
	}

	d, snap, rerr := r.observe(ctx, app)
	// The clock is read after the world is: a phase is stamped with when it was seen, not with
	// when this pass began (the list calls take tens of ms on a busy engine).
	now := r.Now()
	var res Result
	if rerr == nil {
		res, rerr = r.reconcile(ctx, app, d, snap, st, now)
	}
	if r.observed != nil && st.Stack != "" {
		r.observed(app, st.Stack)
	}
	if rerr != nil && st.Phase != "" && !st.Phase.Final() {
		st.Message = "retrying: " + rerr.Error()
	}
	if st.Phase == "" {
		return res, rerr // nothing to report: no spec, no objects, no status
	}
	if st.Phase == spec.PhaseDeleted && r.StatusRetention > 0 && prev != nil &&
		prev.Phase == spec.PhaseDeleted && now.Sub(prev.UpdatedAt) > r.StatusRetention {
		if err := spec.RemoveStatus(r.StatusDir, app); err != nil {
			return res, errors.Join(rerr, fmt.Errorf("remove status of %s: %w", app, err))
		}
		return res, rerr
	}
	if changed(prev, st) {
		st.UpdatedAt = now
		if err := spec.WriteStatus(r.StatusDir, st); err != nil {
			return res, errors.Join(rerr, fmt.Errorf("write status of %s: %w", app, err))
		}
	}
	return res, rerr
}

// observe reads app's desired state and the swarm's objects of it.
func (r *Reconciler) observe(ctx context.Context, app string) (*spec.Desired, *swarmstate.Snapshot, error) {
	d, err := r.loadSpec(app)
	if err != nil {
		return nil, nil, fmt.Errorf("load spec of %s: %w", app, err)
	}
	snap, err := swarmstate.Take(ctx, r.Engine, app)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot of %s: %w", app, err)
	}
	return d, snap, nil
}

func (r *Reconciler) reconcile(ctx context.Context, app string, d *spec.Desired, snap *swarmstate.Snapshot, st *spec.Status, now time.Time) (Result, error) {
	switch {
	case d == nil:
		return r.teardown(ctx, app, snap, st, now, spec.PhaseDeleted, "")
	case d.Err != nil:
		// An invalid edit touches nothing already deployed.
		st.ObservedGeneration = d.Generation
		setPhase(st, spec.PhaseInvalid, d.Err.Error(), now)
		return Result{}, nil
	}
	s := d.Spec
	st.Recipe, st.Version, st.Tier, st.Domain = s.Recipe, s.Version, s.Tier, s.Domain
	var err error
	if st.Stack, err = spec.StackName(s.Domain); err != nil {
		st.ObservedGeneration = d.Generation
		setPhase(st, spec.PhaseInvalid, err.Error(), now)
		return Result{}, nil
	}
	if err := r.claim(s.Domain); errors.Is(err, errLockHeld) {
		if st.Phase == "" || st.Phase == spec.PhaseDeleted {
			setPhase(st, spec.PhasePending, "waiting: "+err.Error(), now)
		} else {
			st.Message = "waiting: " + err.Error()
		}
		return Result{RequeueAfter: 5 * time.Second}, nil
	} else if err != nil {
		return Result{}, err
	}
	if expiry, ok := expiresAt(s, st); ok && st.ObservedGeneration == d.Generation &&
		st.Phase != spec.PhaseDeleted && st.Phase != spec.PhaseExpired && !now.Before(expiry) {
		// Past its ttl: reaped, and not deployed again until the spec's content changes.
		return r.teardown(ctx, app, snap, st, now, spec.PhaseExpired,
			fmt.Sprintf("ttl %s passed at %s", s.TTL.Duration, expiry.Format(time.RFC3339)))
	}
	if st.ObservedGeneration != d.Generation || st.Phase == spec.PhaseDeleted || st.Phase == spec.PhaseDeleting {
		// A new spec, or a spec put back after its app was torn down: a new attempt. An app
		// that is not running starts a new life, and its ttl counts from its next deploy.
		switch st.Phase {
		case "", spec.PhaseDeleted, spec.PhaseDeleting, spec.PhaseExpired:
			st.FirstDeployedAt = nil
		}
		st.ObservedGeneration = d.Generation
		st.AttemptStartedAt = &now
		st.Removed = nil
		st.UpgradeStage = ""
		if s.Tier == spec.TierUpgrade && len(snap.Services) == 0 {
			// Nothing runs yet: the upgrade tier first deploys upgradeFrom, then upgrades.
			st.UpgradeStage = upgradeFrom
		}
		r.probes.forget(app)
		setPhase(st, spec.PhasePending, "new generation queued", now)
	} else if st.Phase.Final() {
		return Result{}, nil // final for this generation: only a new spec moves it
	}
	if st.AttemptStartedAt == nil {
		st.AttemptStartedAt = &now
	}
	if s.Suspend {
		v := swarmstate.Converged(snap.Services, snap.Tasks, *st.AttemptStartedAt)
		observeServices(st, v)
		setPhase(st, spec.PhaseSuspended, "suspended: observing only; "+v.Message, now)
		return Result{}, nil
	}
	res, err := r.deploy(ctx, d, snap, st, now)
	if deadline := st.AttemptStartedAt.Add(s.Timeout.Duration); err != nil && now.After(deadline) && ctx.Err() == nil {
		// An error that retrying has not fixed within the spec's timeout is the app's failure,
		// not a reason to retry for ever: say what the engine keeps answering.
		setPhase(st, spec.PhaseFailed, fmt.Sprintf("not deployed within %s: %v", s.Timeout.Duration, err), now)
		return Result{}, nil
	}
	if expiry, ok := expiresAt(s, st); ok && err == nil && !st.Phase.Final() {
		// The ttl timer: come back when the app is due to be reaped.
		if left := expiry.Sub(now); res.RequeueAfter <= 0 || left < res.RequeueAfter {
			res.RequeueAfter = max(left, time.Millisecond)
		}
	}
	return res, err
}

// expiresAt is when an app with a ttl is reaped: its first deploy plus the ttl.
func expiresAt(s *spec.Spec, st *spec.Status) (time.Time, bool) {
	if s.TTL.Duration <= 0 || st.FirstDeployedAt == nil {
		return time.Time{}, false
	}
	return st.FirstDeployedAt.Add(s.TTL.Duration), true
}

// checkExternalNetworks fails like docker stack deploy when a network the recipe declares
// external does not exist, instead of letting the service create fail less clearly.
func (r *Reconciler) checkExternalNetworks(ctx context.Context, names []string) error {
	for _, name := range names {
		nets, err := r.Engine.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
		if err != nil {
			return fmt.Errorf("look up external network %s: %w", name, err)
		}
		if !slices.ContainsFunc(nets, func(n network.Summary) bool { return n.Name == name }) {
			return fmt.Errorf("network %q is declared as external, but could not be found: create it (docker network create --driver overlay --attachable %s) or drop it from the recipe", name, name)
		}
	}
	return nil
}

// persist writes the status now, ahead of the write at the end of Reconcile.
func (r *Reconciler) persist(st *spec.Status, now time.Time) error {
	st.UpdatedAt = now
	if err := spec.WriteStatus(r.StatusDir, st); err != nil {
		return fmt.Errorf("write status of %s: %w", st.App, err)
	}
	return nil
}

func (r *Reconciler) applyAll(ctx context.Context, log logr.Logger, app string, plan []Action) error {
	for _, a := range plan {
		changed, err := apply(ctx, r.Engine, app, a)
		if err != nil {
			return err
		}
		if !changed {
			log.V(1).Info("already done", "action", string(a.Kind), "object", a.Name)
			continue
		}
		log.Info("applied", "action", string(a.Kind), "object", a.Name, "reason", a.Reason)
		r.stepped(a)
	}
	return nil
}

func (r *Reconciler) stepped(a Action) {
	if n := r.steps.Add(1); r.Step != nil {
		r.Step(n, a)
	}
}

func summary(plan []Action) string {
	parts := make([]string, 0, len(plan))
	for _, a := range plan {
		parts = append(parts, string(a.Kind)+" "+a.Name)
	}
	return strings.Join(parts, ", ")
}
