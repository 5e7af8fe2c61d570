package controller

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarm-reconciler/reconciler/spec"
)

// TestFailedAtStartReleasesItsSlot: an upgrade whose first pass (the one that takes the slot)
// fails at once (an image that cannot be pulled) is Failed and holds no slot: the next app is
// not queued behind it (review S, S1).
func TestFailedAtStartReleasesItsSlot(t *testing.T) {
	f := newFixture(t)
	f.r.MaxDeploying = 1
	f.r.enqueue = func(string) {}
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\n")
	if st := f.settleAs("a", spec.PhaseReady, time.Second, 20); st.Phase != spec.PhaseReady {
		t.Fatalf("a: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("a", "recipe: echo\nversion: 2.0.0+1\n") // echo:2.0.0 is not pullable
	f.passes("a", 3)
	st, _ := spec.ReadStatus(f.r.StatusDir, "a")
	if st.Phase != spec.PhaseFailed {
		t.Fatalf("a: %s %s", st.Phase, st.Message)
	}
	if f.r.slots.held["a"] {
		t.Errorf("Failed app a still holds a deploy slot: %v", f.r.slots.held)
	}
	f.writeSpec("b", "recipe: echo\nversion: 1.0.0+1\n")
	f.passes("b", 1)
	if st, _ := spec.ReadStatus(f.r.StatusDir, "b"); st.Phase == spec.PhasePending {
		t.Errorf("b queued behind a Failed app: %s", st.Message)
	}
}

// TestAwaitedSecretTakesASlot: an attempt that leaves Pending without a plan to apply (here:
// waiting for a generate=false secret) takes a slot as one that applies does, or is queued; it
// never holds one over the limit (review S, S2).
func TestAwaitedSecretTakesASlot(t *testing.T) {
	f := newFixture(t)
	f.r.MaxDeploying = 1
	f.r.enqueue = func(string) {}
	dir := filepath.Join(f.r.RecipesDir, "sec")
	makeRecipe(t, f.r.RecipesDir, "sec", "1.0.0+1")
	commitFiles(t, dir, "1.1.0+1", map[string]string{
		"compose.yml": "version: \"3.8\"\nservices:\n  app:\n    image: echo:1.0.0\n    secrets:\n      - api_key\nsecrets:\n  api_key:\n    external: true\n    name: ${STACK_NAME}_api_key_${SECRET_API_KEY_VERSION}\n",
		".env.sample": "TYPE=sec\nSECRET_API_KEY_VERSION=v1 # generate=false\n"})
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 1h\n")
	f.passes("a", 1)
	f.writeSpec("b", "recipe: echo\nversion: 1.0.0+1\n")
	f.passes("b", 1)
	f.writeSpec("k", "recipe: sec\nversion: 1.1.0+1\n")
	f.passes("k", 1)
	st, _ := spec.ReadStatus(f.r.StatusDir, "k")
	if len(f.r.slots.held) > 1 {
		t.Errorf("--max-deploying 1, held %v (k: %s %s; b queued ahead of it)", f.r.slots.held, st.Phase, st.Message)
	}
}

// TestQueuedAppPastItsTTLIsReaped: a look at a queued app that only reads its spec still reaps
// it once its ttl passed (review S, S3).
func TestQueuedAppPastItsTTLIsReaped(t *testing.T) {
	f := newFixture(t)
	f.r.MaxDeploying = 1
	f.r.enqueue = func(string) {}
	f.writeSpec("t", "recipe: echo\nversion: 1.0.0+1\nttl: 1m\n")
	if st := f.settleAs("t", spec.PhaseReady, time.Second, 5); st.Phase != spec.PhaseReady {
		t.Fatalf("t: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 1h\n")
	f.passes("a", 1) // a holds the only slot
	f.writeSpec("t", "recipe: echo\nversion: 1.1.0+1\nttl: 1m\n")
	f.passes("t", 1)
	if st, _ := spec.ReadStatus(f.r.StatusDir, "t"); st.Phase != spec.PhasePending {
		t.Fatalf("t after its version changed: %s %s", st.Phase, st.Message)
	}
	f.now = f.now.Add(2 * time.Minute)
	res, err := f.r.Reconcile(t.Context(), "t")
	st, _ := spec.ReadStatus(f.r.StatusDir, "t")
	if err != nil || st.Phase != spec.PhaseDeleting && st.Phase != spec.PhaseExpired {
		t.Errorf("t past its ttl while queued: %s %s (after %s, err %v)", st.Phase, st.Message, res.RequeueAfter, err)
	}
}

// TestFailingPassesLeaveTheQueue: a queued app whose passes keep failing before they decide
// (here its status file cannot be read) leaves the queue: the apps behind it go on (review S,
// S4).
func TestFailingPassesLeaveTheQueue(t *testing.T) {
	f := newFixture(t)
	f.r.MaxDeploying = 1
	f.r.enqueue = func(string) {}
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\n")
	f.passes("a", 1)
	for _, app := range []string{"b", "c"} {
		f.writeSpec(app, "recipe: echo\nversion: 1.0.0+1\n")
		f.passes(app, 1)
	}
	bad := filepath.Join(f.r.StatusDir, "b.json")
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(bad, 0o755); err != nil { // any lasting read error
		t.Fatal(err)
	}
	if st := f.settleAs("a", spec.PhaseReady, time.Second, 20); st.Phase != spec.PhaseReady {
		t.Fatalf("a: %s %s", st.Phase, st.Message)
	}
	for range 5 {
		if _, err := f.r.Reconcile(t.Context(), "b"); err == nil {
			t.Fatal("b's pass did not fail")
		}
	}
	f.passes("c", 1)
	st, _ := spec.ReadStatus(f.r.StatusDir, "c")
	t.Logf("c: %s %s; held %v queued %v woken %v", st.Phase, st.Message, f.r.slots.held, f.r.slots.queued, f.r.slots.woken)
	if st.Phase == spec.PhasePending && len(f.r.slots.held) == 0 {
		t.Errorf("c waits behind an app whose passes fail, with every slot free: %s", st.Message)
	}
}

// TestHeldSlotReleasedWhenTheAttemptEnds: a held slot is given back, and the next app woken, when
// the spec is deleted, suspended, made invalid or names an unknown version.
func TestHeldSlotReleasedWhenTheAttemptEnds(t *testing.T) {
	for name, change := range map[string]func(f *fixture){
		"deleted":   func(f *fixture) { _ = os.Remove(filepath.Join(f.r.SpecsDir, "a.yml")) },
		"suspended": func(f *fixture) { f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 1h\nsuspend: true\n") },
		"invalid":   func(f *fixture) { f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\nbogus: 1\n") },
		"badver":    func(f *fixture) { f.writeSpec("a", "recipe: echo\nversion: 9.9.9\n") },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.r.MaxDeploying = 1
			var woken []string
			f.r.enqueue = func(app string) { woken = append(woken, app) }
			f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 1h\n")
			f.passes("a", 1)
			f.writeSpec("b", "recipe: echo\nversion: 1.0.0+1\n")
			f.passes("b", 1)
			change(f)
			f.passes("a", 1)
			st, _ := spec.ReadStatus(f.r.StatusDir, "a")
			if f.r.slots.held["a"] || len(woken) != 1 {
				t.Errorf("%s (%s): held %v woken %v", name, st.Phase, f.r.slots.held, woken)
			}
		})
	}
}
