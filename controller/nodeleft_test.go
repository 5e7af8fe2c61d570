package controller

import (
	"strings"
	"testing"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/spec"
)

// TestTeardownAfterItsNodeLeft: an app whose task (and volume) was on a node that then left
// the swarm (docker node rm --force of a dead node) is torn down to Deleted, saying once that
// the volume there went with the node, whether the node left before the teardown or while it
// waited for the task to stop.
func TestTeardownAfterItsNodeLeft(t *testing.T) {
	for _, when := range []string{"before the teardown", "while the teardown waits"} {
		t.Run(when, func(t *testing.T) {
			f := readyOnN2(t)
			f.engine.taskLinger = 1 << 20 // the tasks of a removed service stay listed: Deleted only once they are orphaned
			if when == "before the teardown" {
				f.engine.removeNode("n2")
				f.r.NodesChanged()
			}
			if err := spec.Unplace(f.r.SpecsDir, "a"); err != nil {
				t.Fatal(err)
			}
			if when == "while the teardown waits" {
				if st := f.pass("a"); st.Phase != spec.PhaseDeleting {
					t.Fatalf("first teardown pass: %s %s", st.Phase, st.Message)
				}
				f.engine.removeNode("n2")
				f.r.NodesChanged()
			}
			st := passesTo(f, "a", spec.PhaseDeleted, 10)
			if st.Phase != spec.PhaseDeleted {
				t.Fatalf("after 10 passes: %s %s", st.Phase, st.Message)
			}
			if left := leftEntries(st); left != 1 {
				t.Errorf("%d entries say the node left the swarm, want 1: %q", left, st.Removed)
			}
		})
	}
}

// leftEntries counts the entries of st.Removed that say a node left the swarm.
func leftEntries(st *spec.Status) int {
	n := 0
	for _, r := range st.Removed {
		if strings.Contains(r, "left the swarm") {
			n++
		}
	}
	return n
}

// passesTo runs passes of app until its phase is want, at most n, and returns its status.
func passesTo(f *fixture, app string, want spec.Phase, n int) *spec.Status {
	var st *spec.Status
	for range n {
		if st = f.pass(app); st.Phase == want {
			break
		}
	}
	return st
}

// readyOnN2 is a fixture with app a Ready, its task and volume on node n2 (host-2).
func readyOnN2(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	f.engine.addNode("n2", "host-2")
	f.engine.place = func(*swarm.Service, int) string { return "n2" }
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ndomain: a.example.org\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	return f
}
