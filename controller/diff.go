package controller

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/swarm"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// Difference is one change a reconcile would make, with what differs.
type Difference struct {
	Action Action
	// Detail is a field diff of the live service against what it would become ("-" live,
	// "+" desired); empty for creates and removals.
	Detail string
}

// Diff computes what reconciling the spec d would change in the swarm, changing nothing:
// the same render and plans as Reconcile, with the engine only read. Nothing to do is an
// empty list.
func (r *Reconciler) Diff(ctx context.Context, d *spec.Desired) ([]Difference, error) {
	s := d.Spec
	stack, err := spec.StackName(s.Domain)
	if err != nil {
		return nil, err
	}
	snap, err := swarmstate.Take(ctx, r.Engine, r.owner(d.App))
	if err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", d.App, err)
	}
	// As a pass renders: the recipe fetched or cloned when missing, a spec's source and ref
	// resolved (to the commit its attempt deployed, which the status records), the overlays
	// applied.
	version := s.Version
	if r.StatusDir != "" {
		if prev, err := spec.ReadStatus(r.StatusDir, d.App); err == nil {
			if c := d.DeployedCommit(prev); c != "" {
				version = c
			}
		}
	}
	rendered, err := r.render(ctx, d, stack, version)
	if err != nil {
		return nil, err
	}
	support, _, err := PlanSupport(rendered, snap)
	if err != nil {
		return nil, err
	}
	desired, err := rendered.Services(ctx, existingOrPlaceholder{r.Engine})
	if err != nil {
		return nil, fmt.Errorf("convert services of %s: %w", rendered.Revision, err)
	}
	plan, err := PlanServices(r.owner(d.App), desired, snap.Services, "diff")
	if err != nil {
		return nil, err
	}
	live := map[string]swarm.Service{}
	for _, svc := range snap.Services {
		live[svc.Spec.Name] = svc
	}
	var out []Difference
	for _, a := range append(support, plan...) {
		diff := Difference{Action: a}
		if cur, ok := live[a.Name]; ok && a.Kind == UpdateService {
			if byHand, _ := drift(cur); byHand {
				diff.Detail = cmp.Diff(*cur.PreviousSpec, cur.Spec, cmpopts.EquateEmpty())
				diff.Detail = "changed by hand (- as last applied, + live):\n" + diff.Detail
			} else {
				want := withoutVolatile(*a.Service)
				// As the engine will hold it: an enum the file leaves unset is no change.
				want.EndpointSpec = endpointAsStored(want.EndpointSpec)
				diff.Detail = cmp.Diff(withoutVolatile(cur.Spec), want, cmpopts.EquateEmpty())
			}
		}
		out = append(out, diff)
	}
	return out, nil
}

// withoutVolatile drops the labels that change on every write, which would only be noise in
// a diff.
func withoutVolatile(s swarm.ServiceSpec) swarm.ServiceSpec {
	labels := map[string]string{}
	for k, v := range s.Labels {
		switch k {
		case LabelWritten, swarmstate.LabelRollFrom:
		default:
			labels[k] = v
		}
	}
	s.Labels = labels
	return s
}

// existingOrPlaceholder resolves secret and config names to the IDs of existing objects, and to
// placeholders for those a reconcile would create first.
type existingOrPlaceholder struct{ engine Engine }

func (e existingOrPlaceholder) SecretList(ctx context.Context, o swarm.SecretListOptions) ([]swarm.Secret, error) {
	found, err := e.engine.SecretList(ctx, o)
	if err != nil || len(found) > 0 {
		return found, err
	}
	return manifests.PlaceholderResolver().SecretList(ctx, o)
}

func (e existingOrPlaceholder) ConfigList(ctx context.Context, o swarm.ConfigListOptions) ([]swarm.Config, error) {
	found, err := e.engine.ConfigList(ctx, o)
	if err != nil || len(found) > 0 {
		return found, err
	}
	return manifests.PlaceholderResolver().ConfigList(ctx, o)
}
