package controller

import (
	"fmt"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// Two specs must not map to one stack. Checking that by reading every spec on every reconcile
// costs O(N) per app, so the controller keeps an index of which app holds each stack: filled
// from what is deployed, then from each resync's scan (where the older file wins), claimed by
// the first app to reconcile a free stack, and kept by the app that holds it for as long as
// its spec maps there, so a deployed app is never displaced by a newcomer, also across a
// restart. An app releases its stack once torn down.

// loadSpec reads app's spec and turns a stack held by another app into an error on it.
func (r *Reconciler) loadSpec(app string) (*spec.Desired, error) {
	d, err := spec.LoadApp(r.SpecsDir, app, r.Defaults)
	if err != nil || d == nil || d.Spec == nil {
		return d, err
	}
	stack, err := spec.StackName(d.Spec.Domain)
	if err != nil {
		return d, nil // reported as Invalid by the caller
	}
	if owner := r.claimStack(stack, app); owner != "" {
		d.Err = &spec.FieldError{File: d.Path, Field: "domain", Msg: fmt.Sprintf(
			"domain %q maps to stack %q, which app %q already uses: give one of them another domain",
			d.Spec.Domain, stack, owner)}
		d.Spec = nil
	}
	return d, nil
}

// claimStack gives stack to app unless another app holds it and its spec still maps there;
// it returns that other app. The holder's spec is read without the lock held, so the stack is
// given only if its holder is still the one that was checked (compare and set).
func (r *Reconciler) claimStack(stack, app string) string {
	for {
		r.mu.Lock()
		owner, held := r.stacks[stack]
		if !held || owner == app {
			if r.stacks == nil {
				r.stacks = map[string]string{}
			}
			r.stacks[stack] = app
			r.mu.Unlock()
			return ""
		}
		r.mu.Unlock()
		if other, err := spec.LoadApp(r.SpecsDir, owner, r.Defaults); err == nil && other != nil && other.Spec != nil {
			if s, err := spec.StackName(other.Spec.Domain); err == nil && s == stack {
				return owner
			}
		} else if err == nil && other != nil && other.Err != nil {
			// An invalid edit of the holder touches nothing it deployed: it keeps its stack.
			return owner
		}
		r.mu.Lock()
		if r.stacks[stack] == owner {
			r.stacks[stack] = app
			r.mu.Unlock()
			return ""
		}
		r.mu.Unlock() // another app claimed it meanwhile: look again
	}
}

// indexDeployed gives each stack holding objects of ours to the app they are labelled with,
// before any spec is indexed: after a restart, what is deployed decides who holds a stack, not
// which spec file was edited last (a scan's "older file" rule would hand an edited holder's
// stack to a newer spec of the same domain). An app with services there comes first, then
// the first by name.
func (r *Reconciler) indexDeployed(snap *swarmstate.Snapshot) {
	holders := map[string]string{}
	services := map[string]bool{}
	for app, objs := range snap.ByApp() {
		if app == "" {
			continue
		}
		for stack, in := range objs.ByStack() {
			if stack == "" {
				continue
			}
			held, ok := holders[stack]
			withServices := len(in.Services) > 0
			if !ok || withServices && !services[stack] || withServices == services[stack] && app < held {
				holders[stack], services[stack] = app, withServices
			}
		}
	}
	r.holdFree(holders)
}

// holdFree gives each stack of holders to its app, unless an app holds it already.
func (r *Reconciler) holdFree(holders map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stacks == nil {
		r.stacks = map[string]string{}
	}
	for stack, app := range holders {
		if _, held := r.stacks[stack]; !held {
			r.stacks[stack] = app
		}
	}
}

// indexStacks adds the stacks of a scan's valid specs that nobody holds yet.
func (r *Reconciler) indexStacks(desired map[string]*spec.Desired) {
	holders := map[string]string{}
	for app, d := range desired {
		if d.Spec == nil {
			continue
		}
		if stack, err := spec.StackName(d.Spec.Domain); err == nil {
			if held, ok := holders[stack]; !ok || app < held {
				holders[stack] = app
			}
		}
	}
	r.holdFree(holders)
}

// releaseStacks frees every stack app holds but keep, once nothing of them is left.
func (r *Reconciler) releaseStacks(app, keep string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for stack, owner := range r.stacks {
		if owner == app && stack != keep {
			delete(r.stacks, stack)
		}
	}
}
