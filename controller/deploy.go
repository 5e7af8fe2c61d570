package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// deploy converges an app with a valid spec: render, create what is missing, update what
// changed, then judge the rollout on a later pass, from a fresh snapshot: converged (and its
// probes answer) is Ready; a rollback or a timeout is Failed; a Ready app that stops
// converging is Degraded.
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
		setPhase(st, spec.PhaseFailed, fmt.Sprintf("%s did not roll out: %s", rendered.Revision, v.RolloutFailure()), now)
		return Result{}, nil
	}

	support, err := PlanSupport(rendered, snap)
	if err != nil {
		setPhase(st, spec.PhaseFailed, err.Error(), now)
		return Result{}, nil
	}
	if len(support) > 0 && st.Phase == spec.PhasePending {
		setPhase(st, spec.PhaseDeploying, "applying "+rendered.Revision+": "+summary(support), now)
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
		return Result{RequeueAfter: maxWaitInterval}, nil
	case now.After(deadline):
		setPhase(st, spec.PhaseFailed, fmt.Sprintf("%s not converged within %s: %s", rendered.Revision, s.Timeout.Duration, v.Message), now)
		return Result{}, nil
	default:
		if st.Phase == spec.PhasePending {
			setPhase(st, spec.PhaseDeploying, v.Message, now)
		}
		st.Message = v.Message
		return Result{RequeueAfter: waitAfter(*st.AttemptStartedAt, deadline, now)}, nil
	}
}
