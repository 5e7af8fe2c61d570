package controller

import (
	"strings"
	"testing"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/spec"
)

// TestRemovalSlotNotHeldByATaskOnANodeThatLeft: a teardown's tasks on a node that then left
// the swarm (docker node rm --force of a dead node) never report their end. Swarm orphans them
// in the same transaction as the node's removal, but the reconciler lists tasks before nodes,
// so one pass can see them running on a node that is gone; the test makes that view last. Such a task holds no removal slot, as one on a node that is down does not:
// the next teardown in line is let in (review T, T1).
func TestRemovalSlotNotHeldByATaskOnANodeThatLeft(t *testing.T) {
	f := newFixture(t)
	f.r.MaxRemoving = 1
	var woken []string
	f.r.enqueue = func(app string) { woken = append(woken, app) }
	f.engine.addNode("n2", "host-2")
	f.engine.place = func(*swarm.Service, int) string { return "n2" }
	for _, app := range []string{"a", "b"} {
		f.writeSpec(app, "recipe: echo\nversion: 1.0.0+1\ndomain: "+app+".example.org\n")
		if st := f.settle(app); st.Phase != spec.PhaseReady {
			t.Fatalf("install %s: %s %s", app, st.Phase, st.Message)
		}
	}
	f.engine.taskLinger = 1 << 20 // the tasks of a removed service stay listed, running
	for _, app := range []string{"a", "b"} {
		if err := spec.Unplace(f.r.SpecsDir, app); err != nil {
			t.Fatal(err)
		}
	}
	if st := f.pass("a"); st.Phase != spec.PhaseDeleting || !f.r.removals.held["a"] {
		t.Fatalf("a: %s %s, held %v", st.Phase, st.Message, f.r.removals.held)
	}
	if st := f.pass("b"); !strings.Contains(st.Message, "queued") {
		t.Fatalf("b while a holds the slot: %s %s", st.Phase, st.Message)
	}
	// n2 dies and is removed from the swarm: its tasks are listed running for good.
	f.engine.mu.Lock()
	delete(f.engine.nodes, "n2")
	f.engine.mu.Unlock()
	f.r.NodesChanged()
	var st *spec.Status
	for range 10 {
		if st = f.pass("a"); st.Phase == spec.PhaseDeleted {
			break
		}
	}
	if f.r.removals.held["a"] || len(woken) == 0 {
		t.Errorf("a's only tasks are on a node that left the swarm: still holds its removal slot (woken %v); a: %s %s", woken, st.Phase, st.Message)
	}
	if st := f.pass("b"); strings.Contains(st.Message, "queued") {
		t.Errorf("b still queued behind a: %s %s", st.Phase, st.Message)
	}
	// The fake never orphans the tasks here (swarm does, with the node's removal:
	// TestTeardownAfterItsNodeLeft), so a stays Deleting; it says once that the node left.
	if left := leftEntries(st); left != 1 {
		t.Errorf("%d entries say n2 left the swarm, want 1: %q", left, st.Removed)
	}
}

// TestDeletedWhileDeployingStopsAtOnce: an app deleted while its attempt deploys (holding a
// deploy slot) is not queued for a removal slot: queued, its deploy slot freed, swarm would go
// on starting its tasks for nothing, beside the installs the freed slot lets in (review T, T2).
func TestDeletedWhileDeployingStopsAtOnce(t *testing.T) {
	f := newFixture(t)
	f.r.MaxRemoving, f.r.MaxDeploying = 1, 1
	f.r.enqueue = func(string) {}
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ndomain: a.example.org\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("install a: %s %s", st.Phase, st.Message)
	}
	f.engine.taskLinger = 5
	if err := spec.Unplace(f.r.SpecsDir, "a"); err != nil {
		t.Fatal(err)
	}
	if st := f.pass("a"); !f.r.removals.held["a"] {
		t.Fatalf("a: %s %s, held %v", st.Phase, st.Message, f.r.removals.held)
	}
	f.writeSpec("d", "recipe: echo\nversion: 1.0.0+1\ndomain: d.example.org\ntimeout: 1h\n")
	if st := f.pass("d"); st.Phase != spec.PhaseDeploying || !f.r.slots.held["d"] {
		t.Fatalf("d: %s %s, deploy slots held %v", st.Phase, st.Message, f.r.slots.held)
	}
	if err := spec.Unplace(f.r.SpecsDir, "d"); err != nil {
		t.Fatal(err)
	}
	f.engine.resetCalls()
	st := f.pass("d")
	if strings.Contains(st.Message, "queued") || !strings.Contains(strings.Join(f.engine.writes(), "\n"), "remove service") {
		t.Errorf("d, deleted while deploying: %s %s; writes %v; deploy slots held %v", st.Phase, st.Message, f.engine.writes(), f.r.slots.held)
	}
}
