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

// claim makes sure this process holds the app lock of domain, taking it without blocking the
// first time. Locks are kept for as long as the app is owned: the kernel drops them when the
// process dies, however it dies, which is what tells a sweep that an app is an orphan.
func (r *Reconciler) claim(domain string) error {
	if r.Locks == nil || domain == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.held[domain]; ok {
		return nil
	}
	l, err := r.Locks.TryApp(domain)
	if errors.Is(err, locks.ErrHeld) {
		return fmt.Errorf("%w (%s): leaving %s alone until it is released", errLockHeld, err, domain)
	}
	if err != nil {
		return fmt.Errorf("app lock of %s: %w", domain, err)
	}
	if r.held == nil {
		r.held = map[string]*locks.Lock{}
	}
	r.held[domain] = l
	return nil
}

// disown unlinks and releases the app lock of domain once nothing of the app is left.
func (r *Reconciler) disown(domain string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.held[domain]; ok {
		if err := l.Unlink(); err != nil {
			r.Log.Error(err, "unlink app lock", "domain", domain)
		}
		delete(r.held, domain)
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

// ownerOf is the owner label found on an app's objects ("" for none).
func ownerOf(snap *swarmstate.Snapshot) string { return snap.Label(manifests.LabelOwner) }

// ours reports whether this reconciler may sweep objects of owner: its own, unstamped ones,
// or any when it has no identity (the janitor).
func (r *Reconciler) ours(owner string) bool {
	return r.Owner == "" || owner == "" || owner == r.Owner
}
