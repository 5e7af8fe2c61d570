package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// stackKinds are the kinds of object the suite's recipe gives a stack.
var stackKinds = []string{"service", "network", "volume", "secret", "config"}

// objectsOf lists the objects labelled key=value
// as "kind name", without containers (their number depends on restarts).
func objectsOf(t testing.TB, key, value string) []string {
	t.Helper()
	all, err := labelled(context.Background(), suite.docker, key, value)
	if err != nil {
		t.Fatalf("list objects labelled %s=%s: %v", key, value, err)
	}
	return withoutContainers(all)
}

// TestDomainChangeMoves: an app Ready on domain A has its spec's domain edited to B (and its
// published port, as two stacks cannot publish one host port while the new one converges
// before the old one goes). The new generation is Ready on B, and then only the new stack is
// left: nothing labelled with A's stack namespace remains (services, networks, volumes,
// secrets, configs, containers), every object of the app is of B's stack, B's stack has every
// kind of object, and A's app lock file is gone from the lock directory.
func TestDomainChangeMoves(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := startHarness(t)
	a := h.newApp("e2e-move")
	version := h.recipe.first().Version
	oldDomain, oldStack := a.name+"."+domainSuffix, a.stack()
	oldLock := filepath.Join(suite.lockDir, "app-"+oldDomain+".lock")

	a.deploy(version)
	before := objectsOf(t, namespaceLabel, oldStack)
	for _, kind := range stackKinds {
		if !hasKind(before, kind) {
			t.Errorf("stack %s on domain A has no %s labelled %s=%s: %v", oldStack, kind, namespaceLabel, oldStack, before)
		}
	}
	if _, err := os.Stat(oldLock); err != nil {
		t.Errorf("the app lock of domain A is not there while the app runs (%v): its removal proves nothing", err)
	}

	newDomain := a.name + "-moved." + domainSuffix
	newStack := strings.ReplaceAll(newDomain, ".", "_")
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	a.port = port
	moved := time.Now()
	gen := h.writeSpec(a.name, a.spec(version, "domain: "+newDomain))
	s := h.waitPhase(a.name, gen, "Ready")
	t.Logf("Ready on %s %s after the edit: %s", newDomain, time.Since(moved).Round(time.Millisecond), s.Message)
	if s.Stack != newStack {
		t.Errorf("status stack %q after the move, want %q", s.Stack, newStack)
	}
	if err := waitHTTP(ctx, a.port, "/", h.recipe.message(version)); err != nil {
		t.Error(err)
	}

	// The old stack goes after the new one converged: wait for it, boundedly.
	var left []string
	var lockErr error
	err = poll(ctx, time.Minute, func() (bool, error) {
		var err error
		left, err = labelled(ctx, suite.docker, namespaceLabel, oldStack)
		_, lockErr = os.Stat(oldLock)
		return err == nil && len(left) == 0 && errors.Is(lockErr, os.ErrNotExist), err
	})
	if err != nil {
		t.Errorf("a minute after Ready on %s, stack %s of domain A still has %d objects: %s; its lock file %s: %v",
			newDomain, oldStack, len(left), strings.Join(left, ", "), oldLock, lockErr)
	} else {
		t.Logf("stack %s and its lock gone %s after the edit", oldStack, time.Since(moved).Round(time.Millisecond))
	}

	ours := objectsOf(t, appLabel, a.name)
	now := objectsOf(t, namespaceLabel, newStack)
	for _, kind := range stackKinds {
		if !hasKind(now, kind) {
			t.Errorf("stack %s on domain B has no %s: %v", newStack, kind, now)
		}
	}
	for _, o := range ours {
		if !slices.Contains(now, o) {
			t.Errorf("app %s still has %s, which is not of the stack %s", a.name, o, newStack)
		}
	}
	if s, _, err := h.readStatus(a.name); err != nil || s.Phase != "Ready" || s.ObservedGeneration != gen {
		t.Errorf("the app is not Ready on %s after the old stack went (err %v); status:\n%s", newDomain, err, s)
	}
}

// TestRenameOnTheSameDomain: an operator renames an app: deletes x's spec and writes y's with
// x's domain at once. y needs the names x's objects hold while x's teardown removes them: y
// waits for them (never Failed, which would be final for its generation though waiting
// helps), then is Ready in the stack x left, with nothing of x left.
func TestRenameOnTheSameDomain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := startHarness(t)
	version := h.recipe.first().Version
	x := h.newApp("e2e-rename-x")
	x.deploy(version)
	domain := x.name + "." + domainSuffix
	y := h.newApp("e2e-rename-y")
	y.port = x.port // the same app under a new name: x's port is free once x is gone
	w := watchStatus(t, h.statusPath(y.name), 5*time.Millisecond)
	h.deleteSpec(x.name)
	gen := h.writeSpec(y.name, y.spec(version, "domain: "+domain))
	s := h.waitPhase(y.name, gen, "Ready")
	if s.Stack != x.stack() {
		t.Errorf("y Ready in stack %s, want x's %s", s.Stack, x.stack())
	}
	if err := waitHTTP(ctx, y.port, "/", h.recipe.message(version)); err != nil {
		t.Error(err)
	}
	if _, err := h.waitDeleted(x.name); err != nil {
		t.Fatal(err)
	}
	// x's objects: not assertNoResidue, whose containers are matched by stack, which is y's now.
	if left := objectsOf(t, appLabel, x.name); len(left) > 0 {
		t.Errorf("x's objects left: %v", left)
	}
	_, seen, _ := w.states()
	waited := false
	for _, st := range seen {
		if st.Phase == "Failed" {
			t.Errorf("y was Failed on the way: %s", st.Message)
		}
		waited = waited || strings.Contains(st.Message, "waiting for the names it needs to be freed")
	}
	t.Logf("y waited for x's names: %v (x's teardown may also have finished before y's first pass)", waited)
	for _, o := range objectsOf(t, namespaceLabel, x.stack()) {
		if !slices.Contains(objectsOf(t, appLabel, y.name), o) {
			t.Errorf("%s in stack %s is not y's", o, x.stack())
		}
	}
}
