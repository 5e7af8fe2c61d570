package controller

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarm-reconciler/reconciler/spec"
)

func TestDeploySlotsFirstComeFirstServed(t *testing.T) {
	var s deploySlots
	const limit = 2
	if w := s.record("a", limit, true, false, "g"); w != nil {
		t.Errorf("a holds: woke %v", w)
	}
	s.record("b", limit, true, false, "g")
	for _, app := range []string{"c", "d", "e"} {
		if v := s.view(app, limit, true); v.open() {
			t.Fatalf("%s: open with two of two slots held: %+v", app, v)
		}
		s.record(app, limit, false, true, "g")
	}
	if v := s.view("d", limit, true); v.Others != 2 || v.Ahead != 1 || v.Held {
		t.Errorf("d's view %+v, want 2 others holding and c ahead", v)
	}
	if v := s.view("x", limit, true); v.Ahead != 3 {
		t.Errorf("a newcomer's view %+v, want all three queued ahead", v)
	}
	// Queued again: its place is kept.
	s.record("c", limit, false, true, "g")
	if v := s.view("c", limit, true); v.Ahead != 0 {
		t.Errorf("c lost its place: %+v", v)
	}
	// a's tasks run: one slot frees, the first queued is let in.
	if w := s.record("a", limit, false, false, "g"); !slices.Equal(w, []string{"c"}) {
		t.Errorf("a released: woke %v, want [c]", w)
	}
	if v := s.view("c", limit, true); !v.open() {
		t.Errorf("c's view %+v: not open after a released", v)
	}
	if v := s.view("d", limit, true); v.open() {
		t.Errorf("d's view %+v: open while c is ahead of it for the one free slot", v)
	}
	s.record("c", limit, true, false, "g")
	// c leaves the queue by holding; b's release lets d in, then d's spec is deleted: e moves up.
	if w := s.record("b", limit, false, false, "g"); !slices.Equal(w, []string{"d"}) {
		t.Errorf("b released: woke %v, want [d]", w)
	}
	if w := s.record("d", limit, false, false, "g"); !slices.Equal(w, []string{"e"}) {
		t.Errorf("d left the queue: woke %v, want [e]", w)
	}
	// Two passes that both saw the last slot free: the first to take it has it.
	var race deploySlots
	if !race.view("p", 1, true).open() || !race.view("q", 1, true).open() {
		t.Fatal("an empty set of slots is not open")
	}
	if !race.take("p", 1) || race.take("q", 1) || !race.take("p", 1) {
		t.Error("take: want p's slot, none for q, and p's again")
	}
	// Two slots free at once before the first woken app's pass: each wakes another app.
	var twice deploySlots
	twice.record("h1", 2, true, false, "g")
	twice.record("h2", 2, true, false, "g")
	for _, app := range []string{"w1", "w2", "w3"} {
		twice.record(app, 2, false, true, "g")
	}
	first := twice.record("h1", 2, false, false, "g")
	second := twice.record("h2", 2, false, false, "g")
	if !slices.Equal(first, []string{"w1"}) || !slices.Equal(second, []string{"w2"}) {
		t.Errorf("two releases woke %v then %v, want [w1] then [w2]", first, second)
	}
	// No limit: nothing is kept, everything is open.
	var none deploySlots
	if w := none.record("a", 0, true, false, "g"); w != nil || !none.view("b", 0, true).open() || none.held != nil {
		t.Error("a limit of 0 is not no limit")
	}
}

// TestQueuedForADeploySlot: with --max-deploying 1, a second and third install wait Pending,
// touching nothing, their timeout not counting, until the first is Ready; a freed slot
// wakes the next in line; faults that waiting cannot fix are not queued; and a repair of a
// converged app takes no slot.
func TestQueuedForADeploySlot(t *testing.T) {
	f := newFixture(t)
	f.r.MaxDeploying = 1
	var woken []string
	f.r.enqueue = func(app string) { woken = append(woken, app) }
	for _, app := range []string{"a", "b", "c"} {
		f.writeSpec(app, "recipe: echo\nversion: 1.0.0+1\ntimeout: 5s\n")
	}
	f.writeSpec("bad", "recipe: echo\nversion: 9.9.9\n")
	pass := func(app string) *spec.Status {
		t.Helper()
		res, err := f.r.Reconcile(t.Context(), app)
		if err != nil {
			t.Fatalf("pass of %s: %v", app, err)
		}
		st, err := spec.ReadStatus(f.r.StatusDir, app)
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase == spec.PhasePending && res.RequeueAfter != queuedIdle {
			t.Errorf("%s queued, looks again after %s, want %s (a freed slot wakes it)", app, res.RequeueAfter, queuedIdle)
		}
		return st
	}
	if st := pass("a"); st.Phase != spec.PhaseDeploying {
		t.Fatalf("a: %s %s", st.Phase, st.Message)
	}
	f.engine.resetCalls()
	for i, app := range []string{"b", "c", "b"} {
		st := pass(app)
		ahead := []int{0, 1, 0}[i]
		if st.Phase != spec.PhasePending || !strings.Contains(st.Message, "queued: 1 apps are deploying (--max-deploying 1)") ||
			!strings.Contains(st.Message, string(rune('0'+ahead))+" queued ahead") {
			t.Fatalf("%s while a deploys: %s %s", app, st.Phase, st.Message)
		}
	}
	if w := f.engine.writes(); len(w) > 0 {
		t.Errorf("queued apps changed the swarm: %v", w)
	}
	// A look at a queued app while no slot is free reads its spec, not the swarm; one whose
	// spec changed is looked at in full (and stays queued).
	f.engine.resetCalls()
	pass("c")
	f.engine.mu.Lock()
	calls := slices.Clone(f.engine.calls)
	f.engine.mu.Unlock()
	if len(calls) > 0 {
		t.Errorf("a queued app's look asked the engine: %v", calls)
	}
	f.writeSpec("c", "recipe: echo\nversion: 1.0.0+1\ntimeout: 6s\n")
	if st := pass("c"); st.Phase != spec.PhasePending || !strings.Contains(st.Message, "1 queued ahead") || st.ObservedGeneration == "" {
		t.Fatalf("c with a new spec while queued: %s %s", st.Phase, st.Message)
	}
	if len(f.engine.calls) == 0 {
		t.Error("a queued app whose spec changed was not looked at in full")
	}
	if st := pass("bad"); st.Phase != spec.PhaseInvalid {
		t.Errorf("an unknown version waits in the queue: %s %s", st.Phase, st.Message)
	}
	f.now = f.now.Add(2 * time.Second) // a's tasks run, within their stability window
	if st := pass("a"); st.Phase != spec.PhaseDeploying || !strings.Contains(st.Message, "stay up") {
		t.Fatalf("a with its tasks running: %s %s", st.Phase, st.Message)
	}
	if st := pass("b"); st.Phase != spec.PhasePending || len(woken) > 0 {
		t.Fatalf("b while a waits out its stability window: %s %s; woken %v", st.Phase, st.Message, woken)
	}
	f.now = f.now.Add(5 * time.Second)
	if st := pass("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("a after its window: %s %s", st.Phase, st.Message)
	}
	if !slices.Equal(woken, []string{"b"}) {
		t.Fatalf("a is Ready: woke %v, want [b]", woken)
	}
	if st := pass("c"); st.Phase != spec.PhasePending {
		t.Fatalf("c went before b: %s %s", st.Phase, st.Message)
	}
	queuedAt := f.now
	f.now = f.now.Add(time.Second)
	st := pass("b")
	if st.Phase != spec.PhaseDeploying || st.AttemptStartedAt == nil || st.AttemptStartedAt.Before(queuedAt) {
		t.Fatalf("b after a's tasks ran: %s %s, attempt from %v", st.Phase, st.Message, st.AttemptStartedAt)
	}
	// b holds the slot. a's repair takes none.
	f.engine.removeByHand("a_test_app")
	if st := pass("a"); st.Phase != spec.PhaseDegraded || !strings.Contains(st.Message, "repairing") {
		t.Fatalf("a's repair while b holds the slot: %s %s", st.Phase, st.Message)
	}
	for _, app := range []string{"b", "c", "a"} {
		if st := f.settleAs(app, spec.PhaseReady, time.Second, 20); st.Phase != spec.PhaseReady {
			t.Errorf("%s: %s %s", app, st.Phase, st.Message)
		}
	}
	if len(f.r.slots.held)+len(f.r.slots.queued) != 0 {
		t.Errorf("slots left: held %v, queued %v", f.r.slots.held, f.r.slots.queued)
	}
}

func TestQueuedLooksAgainWithoutWakes(t *testing.T) {
	f := newFixture(t)
	f.r.MaxDeploying = 1
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\n")
	f.writeSpec("b", "recipe: echo\nversion: 1.0.0+1\n")
	if _, err := f.r.Reconcile(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	res, err := f.r.Reconcile(t.Context(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := spec.ReadStatus(f.r.StatusDir, "b"); st == nil || st.Phase != spec.PhasePending || res.RequeueAfter != queuedLook {
		t.Errorf("b without wakes (once): %v, after %s, want Pending after %s", st, res.RequeueAfter, queuedLook)
	}
}

// TestDeploySlotsUnderConcurrentPasses: the workers' passes of apps written at once decide at
// the same time; with --max-deploying 1 only one of them applies.
func TestDeploySlotsUnderConcurrentPasses(t *testing.T) {
	f := newFixture(t)
	f.r.MaxDeploying = 1
	apps := []string{"a", "b", "c", "d"}
	for _, app := range apps {
		f.writeSpec(app, "recipe: echo\nversion: 1.0.0+1\n")
	}
	var wg sync.WaitGroup
	for _, app := range apps {
		wg.Go(func() {
			if _, err := f.r.Reconcile(t.Context(), app); err != nil {
				t.Errorf("%s: %v", app, err)
			}
		})
	}
	wg.Wait()
	deploying := 0
	for _, app := range apps {
		st, err := spec.ReadStatus(f.r.StatusDir, app)
		if err != nil {
			t.Fatal(err)
		}
		switch st.Phase {
		case spec.PhaseDeploying:
			deploying++
		case spec.PhasePending:
		default:
			t.Errorf("%s: %s %s", app, st.Phase, st.Message)
		}
	}
	if deploying != 1 {
		t.Errorf("%d apps deploying with --max-deploying 1", deploying)
	}
}
