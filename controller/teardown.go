package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

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
		if err := r.claim(domain); errors.Is(err, errLockHeld) {
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
		r.releaseStacks(app)
		return Result{}, nil
	}
	if st.Phase != spec.PhaseDeleting {
		st.Removed = nil
	}
	setPhase(st, spec.PhaseDeleting, lead+"removing: "+strings.Join(snap.Residual(), ", "), now)
	var errs []error
	for _, a := range PlanTeardown(app, snap, st.Removed) {
		changed, err := apply(ctx, r.Engine, app, a)
		if err != nil {
			// A volume still used by a container that is stopping, say: the next pass retries.
			errs = append(errs, err)
			continue
		}
		if !changed {
			r.Log.V(1).Info("already gone", "app", app, "object", a.Name, "kind", a.Kind)
			continue
		}
		r.Log.Info("removed", "app", app, "object", a.Name, "kind", a.Kind)
		r.stepped(a)
		st.Removed = append(st.Removed, a.object())
	}
	if len(errs) > 0 {
		st.Message = lead + "removing: " + strings.Join(snap.Residual(), ", ") + "; waiting: " + errors.Join(errs...).Error()
	}
	return Result{RequeueAfter: teardownInterval}, nil
}
