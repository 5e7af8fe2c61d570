package controller

import (
	"testing"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/spec"
)

// TestJobOfANodeThatLeftRemovedAfterAFailedRemoval (review U): a teardown's volume job waits,
// pending, for n2, which is down; n2 is then removed from the swarm (node rm --force). The pass
// that sees it gone records "left the swarm", drops n2 from status.nodes and removes the job;
// that removal fails once (an engine error). The next passes must still remove the job and
// reach Deleted: the job's task is never placed, so it never completes.
func TestJobOfANodeThatLeftRemovedAfterAFailedRemoval(t *testing.T) {
	f := readyOnN2(t)
	f.engine.taskLinger = 1 << 20 // the removed service's task on the down node stays listed
	f.deleteWithNodeDown("a", "n2")
	for range 3 {
		if st := f.pass("a"); st.Phase != spec.PhaseDeleting {
			t.Fatalf("teardown with n2 down: %s %s", st.Phase, st.Message)
		}
	}
	var job string
	f.engine.mu.Lock()
	for id, s := range f.engine.services {
		if isJob(*s) {
			job = id
		}
	}
	f.engine.mu.Unlock()
	if job == "" {
		t.Fatal("no volume job for n2")
	}
	f.engine.removeNode("n2")
	f.r.NodesChanged()
	f.engine.mu.Lock()
	f.engine.fail = map[string]int{"remove service " + job: 1}
	f.engine.mu.Unlock()
	_, err := f.r.Reconcile(f.t.Context(), "a")
	t.Logf("pass with the failed removal: %v", err)
	if st, _ := spec.ReadStatus(f.r.StatusDir, "a"); st != nil {
		t.Logf("status: %s %s; nodes %+v; removed %q", st.Phase, st.Message, st.Nodes, st.Removed)
	}
	st := passesTo(f, "a", spec.PhaseDeleted, 10)
	if st.Phase != spec.PhaseDeleted || f.jobs() != 0 {
		t.Errorf("after 10 passes: %s %s; %d volume jobs left; nodes %+v", st.Phase, st.Message, f.jobs(), st.Nodes)
	}
	if left := leftEntries(st); left != 1 {
		t.Errorf("%d entries say n2 left the swarm, want 1: %q", left, st.Removed)
	}
}

// TestMoveAfterItsNodeLeft (review U): m's task and volume are on n2, which is removed from
// the swarm (node rm --force); its domain then changes (a move). The move says once that
// n2 left with the old stack's volume, as a teardown now does.
func TestMoveAfterItsNodeLeft(t *testing.T) {
	f := multiNodeFixture(t) // m on m.test, its task and volume m_test_data on n2
	f.engine.place = func(_ *swarm.Service, i int) string { return "n3" }
	f.engine.taskLinger = 5 // the old stack's tasks stay listed for a few lists, as swarm's reaper takes a moment
	f.engine.removeNode("n2")
	f.r.NodesChanged()
	f.writeSpec("m", "recipe: echo\nversion: 1.0.0+1\ndomain: new.test\n")
	if st := passesTo(f, "m", spec.PhaseReady, 20); st.Phase != spec.PhaseReady {
		t.Fatalf("the move: %s %s", st.Phase, st.Message)
	} else if left := leftEntries(st); left != 1 {
		t.Errorf("%d entries say n2 left the swarm, want 1: %q", left, st.Removed)
	}
}

// TestRecordNodesLeftEntryIgnoredWhenTheNodeIsKnown (review U): an entry saying a node left
// skips its tasks only while the swarm does not list that node, only in a teardown's later
// passes (answered), and only with a node list: never for a node that is in the swarm.
func TestRecordNodesLeftEntryIgnoredWhenTheNodeIsKnown(t *testing.T) {
	task := swarm.Task{ServiceID: "s", NodeID: "n2", Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{
		Mounts: []mountSpec{{Type: "volume", Source: "a_data", VolumeOptions: ownVolume()}}}}}
	left := leftEntry(spec.NodeVolumes{ID: "n2", Hostname: "h2", Volumes: []string{"a_data"}})
	for _, tc := range []struct {
		name     string
		answered bool
		nodes    map[string]swarm.Node
		want     int
	}{
		{"known node", true, map[string]swarm.Node{"n2": {ID: "n2", Description: swarm.NodeDescription{Hostname: "h2"}}}, 1},
		{"no node list", true, nil, 1},
		{"first teardown pass", false, map[string]swarm.Node{}, 1},
		{"unknown node, later pass", true, map[string]swarm.Node{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &spec.Status{Removed: []string{left}}
			recordNodes(st, []swarm.Task{task}, nil, map[string]bool{"s": true}, tc.answered, tc.nodes, "self")
			if len(st.Nodes) != tc.want {
				t.Errorf("nodes %+v, want %d", st.Nodes, tc.want)
			}
		})
	}
}
