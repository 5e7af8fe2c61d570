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
	waitInterval     = time.Second
	teardownInterval = 500 * time.Millisecond
)

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
	now := r.Now()
	prev, err := spec.ReadStatus(r.StatusDir, app)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Result{}, fmt.Errorf("read status of %s: %w", app, err)
	}
	st := &spec.Status{App: app}
	if prev != nil {
		st = cloneStatus(prev)
	}

	res, rerr := r.reconcile(ctx, app, st, now)
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

func (r *Reconciler) reconcile(ctx context.Context, app string, st *spec.Status, now time.Time) (Result, error) {
	d, err := spec.Load(r.SpecsDir, app, r.Defaults)
	if err != nil {
		return Result{}, fmt.Errorf("load spec of %s: %w", app, err)
	}
	snap, err := swarmstate.Take(ctx, r.Engine, app)
	if err != nil {
		return Result{}, fmt.Errorf("snapshot of %s: %w", app, err)
	}
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
	if st.Stack, err = spec.StackName(s.Domain); err != nil {
		st.ObservedGeneration = d.Generation
		setPhase(st, spec.PhaseInvalid, err.Error(), now)
		return Result{}, nil
	}
	if err := r.claim(s.Domain); errors.Is(err, lockHeld) {
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

func (r *Reconciler) deploy(ctx context.Context, d *spec.Desired, snap *swarmstate.Snapshot, st *spec.Status, now time.Time) (Result, error) {
	s, log := d.Spec, r.Log.WithValues("app", d.App)
	version := s.Version
	if st.UpgradeStage == upgradeFrom {
		from, err := r.upgradeFrom(s)
		if err != nil {
			setPhase(st, spec.PhaseInvalid, err.Error(), now)
			return Result{}, nil
		}
		version = from
	}
	rendered, err := r.render(ctx, d, st.Stack, version)
	if errors.Is(err, manifests.ErrInput) {
		setPhase(st, spec.PhaseInvalid, err.Error(), now)
		return Result{}, nil
	} else if err != nil {
		return Result{}, err
	}
	st.LastAttemptedRevision = rendered.Revision

	v := swarmstate.Converged(snap.Services, snap.Tasks, *st.AttemptStartedAt)
	observeServices(st, v)
	if v.RolledBack {
		// Swarm restored the old spec and labels; updating again would only roll back again.
		setPhase(st, spec.PhaseFailed, fmt.Sprintf("%s did not roll out: %s; the running spec is the previous one", rendered.Revision, v.Message), now)
		return Result{}, nil
	}

	support, err := PlanSupport(rendered, snap)
	if err != nil {
		setPhase(st, spec.PhaseFailed, err.Error(), now)
		return Result{}, nil
	}
	if err := r.applyAll(ctx, log, d.App, support); err != nil {
		return Result{}, err
	}
	desired, err := rendered.Services(ctx, r.Engine)
	if err != nil {
		return Result{}, fmt.Errorf("convert services of %s: %w", rendered.Revision, err)
	}
	plan, err := PlanServices(d.App, desired, snap.Services, now.UTC().Format(time.RFC3339Nano))
	if err != nil {
		setPhase(st, spec.PhaseFailed, err.Error(), now)
		return Result{}, nil
	}
	if len(plan) > 0 {
		if err := r.checkExternalNetworks(ctx, rendered.ExternalNetworks); err != nil {
			setPhase(st, spec.PhaseFailed, err.Error(), now)
			return Result{}, nil
		}
		for _, ref := range rendered.Images {
			if err := ensureImage(ctx, r.Engine, ref); err != nil {
				setPhase(st, spec.PhaseFailed, err.Error(), now)
				return Result{}, nil
			}
		}
		phase := spec.PhaseDeploying
		if len(snap.Services) > 0 {
			phase = spec.PhaseUpgrading
		}
		if st.DeployedGeneration != d.Generation {
			st.DeployedGeneration = d.Generation
			st.Deploys++
			if st.FirstDeployedAt == nil {
				st.FirstDeployedAt = &now
			}
		}
		setPhase(st, phase, fmt.Sprintf("applying %s: %s", rendered.Revision, summary(plan)), now)
		// Record the attempt before acting, so a crash right after the services change
		// neither loses the deploy count nor forgets when the attempt started.
		if err := r.persist(st, now); err != nil {
			return Result{}, err
		}
		if err := r.applyAll(ctx, log, d.App, plan); err != nil {
			return Result{}, err
		}
		// Judge convergence on a fresh snapshot, never on the one taken before the changes.
		return Result{RequeueAfter: waitInterval}, nil
	}

	deadline := st.AttemptStartedAt.Add(s.Timeout.Duration)
	switch {
	case v.Converged && st.UpgradeStage == upgradeFrom:
		st.UpgradeStage = upgradeTo
		st.LastAppliedRevision = rendered.Revision
		msg := fmt.Sprintf("%s converged; upgrading in place to %s", rendered.Revision, s.Version)
		st.History = append(st.History, spec.HistoryEntry{Time: now, Phase: st.Phase, Message: msg})
		st.Message = msg
		return Result{RequeueAfter: time.Millisecond}, nil
	case v.Converged && len(s.Health) > 0 && st.Phase != spec.PhaseReady && st.Phase != spec.PhaseDegraded:
		// Swarm says converged; the spec's probes say whether the app answers.
		if probe, ok := r.probes.check(ctx, d.App, s); !ok {
			if now.After(deadline) {
				setPhase(st, spec.PhaseFailed, fmt.Sprintf("%s: %s never passed within %s; last result: %s", rendered.Revision, probe.Name, s.Timeout.Duration, probe.Last), now)
				return Result{}, nil
			}
			st.Message = fmt.Sprintf("%s; waiting for %s: %s", v.Message, probe.Name, probe.Last)
			return Result{RequeueAfter: waitInterval}, nil
		}
		fallthrough
	case v.Converged:
		if st.Phase != spec.PhaseReady && r.Metrics != nil && !d.ModTime.IsZero() {
			r.Metrics.TimeToReady.Observe(now.Sub(d.ModTime).Seconds())
		}
		st.LastAppliedRevision = rendered.Revision
		setPhase(st, spec.PhaseReady, v.Message, now)
		return Result{}, nil
	case st.Phase == spec.PhaseReady || st.Phase == spec.PhaseDegraded:
		setPhase(st, spec.PhaseDegraded, v.Message, now)
		return Result{RequeueAfter: waitInterval}, nil
	case now.After(deadline):
		setPhase(st, spec.PhaseFailed, fmt.Sprintf("%s not converged within %s: %s", rendered.Revision, s.Timeout.Duration, v.Message), now)
		return Result{}, nil
	default:
		if st.Phase == spec.PhasePending {
			setPhase(st, spec.PhaseDeploying, v.Message, now)
		}
		st.Message = v.Message
		return Result{RequeueAfter: waitInterval}, nil
	}
}

// teardown removes one layer of what app owns per pass (services, then the rest) and reports
// final (Deleted, or Expired for a ttl) only when a fresh snapshot finds nothing labelled with
// the app. why, when set, leads the messages.
func (r *Reconciler) teardown(ctx context.Context, app string, snap *swarmstate.Snapshot, st *spec.Status, now time.Time, final spec.Phase, why string) (Result, error) {
	lead := ""
	if why != "" {
		lead = why + "; "
	}
	domain := domainOf(st, snap)
	if owner := ownerOf(snap); final == spec.PhaseDeleted && !r.ours(owner) {
		r.Log.V(1).Info("not reaping another spec directory's app", "app", app, "owner", owner)
		return Result{}, nil
	}
	if !snap.Empty() {
		if err := r.claim(domain); errors.Is(err, lockHeld) {
			// Another live process operates this app: not an orphan.
			r.Log.V(1).Info("not reaping", "app", app, "reason", err.Error())
			return Result{}, nil
		} else if err != nil {
			return Result{}, err
		}
	}
	if snap.Empty() {
		defer r.disown(domain)
		if st.Phase != "" && st.Phase != final {
			st.Services = nil
			msg := "nothing left"
			if len(st.Removed) > 0 {
				msg = fmt.Sprintf("removed %d objects; nothing labelled %s=%s left", len(st.Removed), swarmstate.LabelApp, app)
			}
			if r.Metrics != nil {
				for i := len(st.History) - 1; i >= 0; i-- {
					if st.History[i].Phase == spec.PhaseDeleting {
						r.Metrics.TeardownSeconds.Observe(now.Sub(st.History[i].Time).Seconds())
						break
					}
				}
			}
			setPhase(st, final, lead+msg, now)
		}
		r.forget(app)
		return Result{}, nil
	}
	if st.Phase != spec.PhaseDeleting {
		st.Removed = nil
	}
	setPhase(st, spec.PhaseDeleting, lead+"removing: "+strings.Join(snap.Residual(), ", "), now)
	var errs []error
	for _, a := range PlanTeardown(app, snap) {
		if err := apply(ctx, r.Engine, app, a); err != nil {
			// A volume or network still held by a just-stopped container: the next pass retries.
			errs = append(errs, err)
			continue
		}
		r.Log.Info("removed", "app", app, "object", a.Name, "kind", a.Kind)
		r.stepped(a)
		st.Removed = append(st.Removed, strings.TrimPrefix(string(a.Kind), "remove ")+" "+a.Name)
	}
	if len(errs) > 0 {
		st.Message = lead + "removing: " + strings.Join(snap.Residual(), ", ") + "; waiting: " + errors.Join(errs...).Error()
	}
	return Result{RequeueAfter: teardownInterval}, nil
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
		if err := apply(ctx, r.Engine, app, a); err != nil {
			return err
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

// The stages of an upgrade-tier attempt.
const (
	upgradeFrom = "from"
	upgradeTo   = "to"
)

// upgradeFrom is the version an upgrade-tier attempt starts from: the spec's upgradeFrom, or
// the release tag just before version.
func (r *Reconciler) upgradeFrom(s *spec.Spec) (string, error) {
	if s.UpgradeFrom != "" {
		return s.UpgradeFrom, nil
	}
	from, err := manifests.PreviousTag(r.RecipesDir, s.Recipe, s.Version)
	if err != nil {
		return "", fmt.Errorf("tier upgrade: no version to upgrade from: %w (set upgradeFrom)", err)
	}
	return from, nil
}

// render renders an app's spec at version once per generation: the recipe at a tag or
// commit does not change.
func (r *Reconciler) render(ctx context.Context, d *spec.Desired, stack, version string) (*manifests.Rendered, error) {
	key := d.Generation + "\x00" + version
	r.mu.Lock()
	if r.renderG[d.App] == key {
		out := r.renders[d.App]
		r.mu.Unlock()
		return out, nil
	}
	r.mu.Unlock()
	s := d.Spec
	out, err := manifests.Render(ctx, r.RecipesDir, manifests.Request{
		App: d.App, Recipe: s.Recipe, Version: version, Domain: s.Domain, Stack: stack, Env: s.Env, Owner: r.Owner,
	})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.renders == nil {
		r.renders, r.renderG = map[string]*manifests.Rendered{}, map[string]string{}
	}
	r.renders[d.App], r.renderG[d.App] = out, key
	return out, nil
}

func (r *Reconciler) forget(app string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.renders, app)
	delete(r.renderG, app)
}

func summary(plan []Action) string {
	parts := make([]string, 0, len(plan))
	for _, a := range plan {
		parts = append(parts, string(a.Kind)+" "+a.Name)
	}
	return strings.Join(parts, ", ")
}
