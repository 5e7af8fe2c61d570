package controller

import (
	"errors"
	"fmt"
	"strings"

	"github.com/swarm-reconciler/reconciler/locks"
	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// errLockHeld is returned by claim when another live process holds the app's lock.
var errLockHeld = errors.New("app lock held by another process")

// claim makes sure this process holds the app lock of domain for app, taking it without
// blocking the first time. Locks are kept for as long as the app is owned: the kernel drops
// them when the process dies, however it dies, which is what tells a sweep that an app is an
// orphan.
func (r *Reconciler) claim(app, domain string) error {
	if r.Locks == nil || domain == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.held[domain]; ok {
		r.heldFor[domain][app] = true
		return nil
	}
	l, err := r.Locks.TryApp(domain)
	if errors.Is(err, locks.ErrHeld) {
		return fmt.Errorf("%w (%s): leaving %s alone until it is released", errLockHeld, err, domain)
	}
	if err != nil {
		return fmt.Errorf("app lock of %s: %w", domain, err)
	}
	if r.ProbeLocks {
		// Nobody else holds it, and the lease is what makes this process the only one acting:
		// keeping it would only make a new leader wait for the lock's release (docs/ha.md).
		return l.Release()
	}
	if r.held == nil {
		r.held, r.heldFor = map[string]*locks.Lock{}, map[string]map[string]bool{}
	}
	r.held[domain], r.heldFor[domain] = l, map[string]bool{app: true}
	return nil
}

// disown lets go of the app locks this process holds for app, except the lock of keep: their
// stacks are gone. A lock is unlinked and released once no app holds it: an app that waits for
// the names of one leaving its domain (a rename) holds the lock from then on.
func (r *Reconciler) disown(app, keep string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for domain, holders := range r.heldFor {
		if !holders[app] || domain == keep {
			continue
		}
		delete(holders, app)
		if len(holders) > 0 {
			continue
		}
		if err := r.held[domain].Unlink(); err != nil {
			r.Log.Error(err, "unlink app lock", "domain", domain)
		}
		delete(r.held, domain)
		delete(r.heldFor, domain)
	}
}

// ReleaseAll drops every app lock this process holds, without unlinking: the apps stay
// owned by whoever runs next.
func (r *Reconciler) ReleaseAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for d, l := range r.held {
		_ = l.Release()
		delete(r.held, d)
		delete(r.heldFor, d)
	}
}

// domainOf finds the domain of an app with no spec: from its status, or from the labels of
// whatever it left behind; last, from its stack name (the domain with dots as underscores).
func domainOf(st *spec.Status, snap *swarmstate.Snapshot) string {
	if st.Domain != "" {
		return st.Domain
	}
	if d := snap.Label(manifests.LabelDomain); d != "" {
		return d
	}
	return strings.ReplaceAll(snap.Label(swarmstate.LabelNamespace), "_", ".")
}

// owner is whose objects this reconciler may use, change or remove for app: those labelled
// with app and with its Owner (any owner for the janitor, whose Owner is empty).
func (r *Reconciler) owner(app string) swarmstate.Owner {
	return swarmstate.Owner{App: app, Dir: r.Owner}
}
