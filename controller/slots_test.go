package controller

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

func TestDeploySlotsFirstComeFirstServed(t *testing.T) {
	var s slotQueue
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
	var race slotQueue
	if !race.view("p", 1, true).open() || !race.view("q", 1, true).open() {
		t.Fatal("an empty set of slots is not open")
	}
	if !race.take("p", 1) || race.take("q", 1) || !race.take("p", 1) {
		t.Error("take: want p's slot, none for q, and p's again")
	}
	// Two slots free at once before the first woken app's pass: each wakes another app.
	var twice slotQueue
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
	var none slotQueue
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
		return f.slotPass(app, func(st *spec.Status) bool { return st.Phase == spec.PhasePending })
	}
	if st := pass("a"); st.Phase != spec.PhaseDeploying {
		t.Fatalf("a: %s %s", st.Phase, st.Message)
	}
	f.queuedInTurn(pass, spec.PhasePending, "queued: 1 apps are deploying (--max-deploying 1)")
	// One whose spec changed is looked at in full (and stays queued).
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
	f.atOnce(apps)
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

// TestQueuedForARemovalSlot: with --max-removing 1, of three apps deleted at once one removes
// its services and the others wait, Deleting, touching nothing, their looks reading no more
// than the spec directory, until that app's tasks have stopped; the freed slot wakes the next
// in line, and an app whose spec comes back while queued leaves the queue, never torn down.
func TestQueuedForARemovalSlot(t *testing.T) {
	f := newFixture(t)
	f.r.MaxRemoving = 1
	var woken []string
	f.r.enqueue = func(app string) { woken = append(woken, app) }
	apps := []string{"a", "b", "c"}
	for _, app := range apps {
		f.writeSpec(app, "recipe: echo\nversion: 1.0.0+1\ndomain: "+app+".example.org\n")
		if st := f.settle(app); st.Phase != spec.PhaseReady {
			t.Fatalf("install %s: %s %s", app, st.Phase, st.Message)
		}
	}
	f.engine.taskLinger = 3 // tasks listed, still running, for three task lists after their removal
	for _, app := range apps {
		if err := spec.Unplace(f.r.SpecsDir, app); err != nil {
			t.Fatal(err)
		}
	}
	pass := func(app string) *spec.Status {
		t.Helper()
		return f.slotPass(app, func(st *spec.Status) bool { return strings.Contains(st.Message, "queued") })
	}
	f.engine.resetCalls()
	if st := pass("a"); st.Phase != spec.PhaseDeleting || !slices.ContainsFunc(f.engine.writes(), func(w string) bool {
		return strings.HasPrefix(w, "remove service")
	}) {
		t.Fatalf("a: %s %s, writes %v", st.Phase, st.Message, f.engine.writes())
	}
	f.queuedInTurn(pass, spec.PhaseDeleting, "queued: 1 apps' services are stopping (--max-removing 1)")
	// c's spec comes back: it is wanted again, and leaves the queue untouched.
	f.writeSpec("c", "recipe: echo\nversion: 1.0.0+1\ndomain: c.example.org\n")
	if st := pass("c"); st.Phase == spec.PhaseDeleting || st.Phase == spec.PhaseDeleted {
		t.Fatalf("c with its spec back: %s %s", st.Phase, st.Message)
	}
	if _, queued := f.r.removals.queued["c"]; queued {
		t.Error("c, specified again, is still queued for a removal slot")
	}
	// a's tasks stop: its slot frees and wakes b (its networks and configs went while it held it).
	for i := 0; i < 10 && len(woken) == 0; i++ {
		if st := pass("a"); st.Phase == spec.PhaseDeleted {
			break
		}
	}
	if !slices.Equal(woken, []string{"b"}) {
		t.Fatalf("a's tasks stopped: woke %v, want [b]", woken)
	}
	if st := pass("b"); st.Phase != spec.PhaseDeleting || strings.Contains(st.Message, "queued") {
		t.Fatalf("b after a's tasks stopped: %s %s", st.Phase, st.Message)
	}
	for _, app := range []string{"a", "b"} {
		if st := f.settleAs(app, spec.PhaseDeleted, time.Second, 20); st.Phase != spec.PhaseDeleted {
			t.Errorf("%s: %s %s", app, st.Phase, st.Message)
		}
	}
	if st := f.settle("c"); st.Phase != spec.PhaseReady {
		t.Errorf("c: %s %s", st.Phase, st.Message)
	}
	if len(f.r.removals.held)+len(f.r.removals.queued) != 0 {
		t.Errorf("removal slots left: held %v, queued %v", f.r.removals.held, f.r.removals.queued)
	}
}

// TestRemovalSlotsUnderConcurrentPasses: the workers' passes of apps deleted at once decide at
// the same time; with --max-removing 1 only one of them removes its services.
func TestRemovalSlotsUnderConcurrentPasses(t *testing.T) {
	f := newFixture(t)
	f.r.MaxRemoving = 1
	apps := []string{"a", "b", "c", "d"}
	for _, app := range apps {
		f.writeSpec(app, "recipe: echo\nversion: 1.0.0+1\ndomain: "+app+".example.org\n")
		if st := f.settle(app); st.Phase != spec.PhaseReady {
			t.Fatalf("install %s: %s %s", app, st.Phase, st.Message)
		}
		if err := spec.Unplace(f.r.SpecsDir, app); err != nil {
			t.Fatal(err)
		}
	}
	f.engine.taskLinger = 3
	f.engine.resetCalls()
	f.atOnce(apps)
	removed := map[string]bool{}
	for _, w := range f.engine.writes() {
		if name, ok := strings.CutPrefix(w, "remove service "); ok {
			removed[name] = true
		}
	}
	if len(removed) != 1 {
		t.Errorf("services of %d apps removed at once with --max-removing 1: %v", len(removed), f.engine.writes())
	}
}

// slotPass reconciles app once and returns its status; a status that queued says is queued
// must look again when a freed slot wakes it, not sooner.
func (f *fixture) slotPass(app string, queued func(*spec.Status) bool) *spec.Status {
	f.t.Helper()
	res, err := f.r.Reconcile(f.t.Context(), app)
	if err != nil {
		f.t.Fatalf("pass of %s: %v", app, err)
	}
	st, err := spec.ReadStatus(f.r.StatusDir, app)
	if err != nil {
		f.t.Fatal(err)
	}
	if queued(st) && res.RequeueAfter != queuedIdle {
		f.t.Errorf("%s queued, looks again after %s, want %s (a freed slot wakes it)", app, res.RequeueAfter, queuedIdle)
	}
	return st
}

// queuedInTurn passes b, c and b again while app a holds the one slot: each stays phase, its
// message saying want and its place in the queue; none changes the swarm, and a look at a
// queued app while no slot is free reads its spec, not the swarm.
func (f *fixture) queuedInTurn(pass func(string) *spec.Status, phase spec.Phase, want string) {
	f.t.Helper()
	f.engine.resetCalls()
	for i, app := range []string{"b", "c", "b"} {
		st := pass(app)
		ahead := []int{0, 1, 0}[i]
		if st.Phase != phase || !strings.Contains(st.Message, want) || !strings.Contains(st.Message, fmt.Sprintf("%d queued ahead", ahead)) {
			f.t.Fatalf("%s while a holds the slot: %s %s", app, st.Phase, st.Message)
		}
	}
	if w := f.engine.writes(); len(w) > 0 {
		f.t.Errorf("queued apps changed the swarm: %v", w)
	}
	f.engine.resetCalls()
	pass("c")
	f.engine.mu.Lock()
	calls := slices.Clone(f.engine.calls)
	f.engine.mu.Unlock()
	if len(calls) > 0 {
		f.t.Errorf("a queued app's look asked the engine: %v", calls)
	}
}

// atOnce reconciles apps once each, all at the same time, as the workers do: every pass
// decides before any takes a slot (the passes meet between the two).
func (f *fixture) atOnce(apps []string) {
	var (
		met  sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	met.Add(len(apps))
	f.r.decided = func(app string) {
		mu.Lock()
		first := !seen[app]
		seen[app] = true
		mu.Unlock()
		if first { // a pass's later rounds (support objects, then services) decide again
			met.Done()
			met.Wait()
		}
	}
	defer func() { f.r.decided = nil }()
	var wg sync.WaitGroup
	for _, app := range apps {
		wg.Go(func() {
			if _, err := f.r.Reconcile(f.t.Context(), app); err != nil {
				f.t.Errorf("%s: %v", app, err)
			}
		})
	}
	wg.Wait()
}

func TestStoppingHoldsARemovalSlot(t *testing.T) {
	app := swarm.Service{ID: "s1"}
	job := swarm.Service{ID: "j1"}
	job.Spec.Labels = map[string]string{LabelJob: jobVolumes, LabelJobNode: "n2"}
	task := func(service string, state swarm.TaskState, job bool) swarm.Task {
		t := swarm.Task{ServiceID: service, NodeID: "n1", DesiredState: swarm.TaskStateRemove, Status: swarm.TaskStatus{State: state}}
		if job {
			t.JobIteration = &swarm.Version{Index: 1}
		}
		return t
	}
	for _, c := range []struct {
		name string
		snap swarmstate.Snapshot
		want bool
	}{
		{"nothing", swarmstate.Snapshot{}, false},
		{"a service of the app", swarmstate.Snapshot{Services: []swarm.Service{app}}, true},
		{"a task of a removed service, running", swarmstate.Snapshot{Tasks: []swarm.Task{task("s0", swarm.TaskStateRunning, false)}}, true},
		{"a task of a removed service, stopped", swarmstate.Snapshot{Tasks: []swarm.Task{task("s0", swarm.TaskStateShutdown, false)}}, false},
		{"a node job and its task", swarmstate.Snapshot{Services: []swarm.Service{job}, Tasks: []swarm.Task{task("j1", swarm.TaskStateRunning, true)}}, false},
		{"a removed job's task", swarmstate.Snapshot{Tasks: []swarm.Task{task("j0", swarm.TaskStateRunning, true)}}, false},
		{"a node job beside a task still stopping", swarmstate.Snapshot{Services: []swarm.Service{job}, Tasks: []swarm.Task{task("s0", swarm.TaskStateRunning, false)}}, true},
	} {
		if got := stopping(&c.snap, nil); got != c.want {
			t.Errorf("%s: stopping %v, want %v", c.name, got, c.want)
		}
	}
}

// TestQueuedLooksInFullOnSeveralNodes: on a swarm of several nodes a look at a queued app is a
// full pass, so that the nodes its tasks run on are recorded while it waits (review T4); on
// one node it reads the spec alone (TestQueuedForADeploySlot).
func TestQueuedLooksInFullOnSeveralNodes(t *testing.T) {
	f := newFixture(t)
	f.engine.addNode("n2", "host-2")
	f.r.MaxDeploying, f.r.MaxRemoving = 1, 1
	f.r.enqueue = func(string) {}
	for _, app := range []string{"a", "b"} {
		f.writeSpec(app, "recipe: echo\nversion: 1.0.0+1\ndomain: "+app+".example.org\n")
	}
	queued := func(st *spec.Status) bool { return strings.Contains(st.Message, "queued") }
	f.slotPass("a", queued)
	if st := f.slotPass("b", queued); !queued(st) {
		t.Fatalf("b while a deploys: %s %s", st.Phase, st.Message)
	}
	f.engine.resetCalls()
	if st := f.slotPass("b", queued); !queued(st) || !slices.Contains(f.engine.calls, "list tasks") {
		t.Errorf("a queued app's look on a swarm of two nodes: %s %s, calls %v; want a full pass", st.Phase, st.Message, f.engine.calls)
	}
}
