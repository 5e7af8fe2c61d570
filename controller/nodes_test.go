package controller

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// multiNodeFixture is a fixture whose swarm has two more nodes, n2 and n3, and whose services
// place their first task on n2 and the others on n3: the app's volume exists on both, where
// the engine the reconciler talks to cannot list it.
func multiNodeFixture(t *testing.T) *fixture {
	f := newFixture(t)
	f.engine.addNode("n2", "host-2")
	f.engine.addNode("n3", "host-3")
	f.engine.place = func(_ *swarm.Service, i int) string { return []string{"n2", "n3"}[min(i, 1)] }
	f.writeSpec("m", "recipe: echo\nversion: 1.0.0+1\n")
	if st := f.settle("m"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	return f
}

// pass reconciles app once and returns its status.
func (f *fixture) pass(app string) *spec.Status {
	f.t.Helper()
	if _, err := f.r.Reconcile(f.t.Context(), app); err != nil {
		f.t.Fatalf("reconcile %s: %v", app, err)
	}
	f.now = f.now.Add(time.Second)
	st, err := spec.ReadStatus(f.r.StatusDir, app)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// deleteWithNodeDown stops node (the node event seen) and deletes app's spec: a teardown
// whose volume job on that node waits.
func (f *fixture) deleteWithNodeDown(app, node string) {
	f.t.Helper()
	f.engine.setNodeState(node, swarm.NodeStateDown)
	f.r.NodesChanged()
	if err := spec.Unplace(f.r.SpecsDir, app); err != nil {
		f.t.Fatal(err)
	}
}

// TestTeardownRemovesVolumesOnOtherNodes, by the app's own reconciler and by the janitor,
// which finds its volume jobs again by the owner label it gives them.
func TestTeardownRemovesVolumesOnOtherNodes(t *testing.T) {
	for _, janitor := range []bool{false, true} {
		t.Run(fmt.Sprintf("janitor %v", janitor), func(t *testing.T) { testTeardownRemovesVolumesOnOtherNodes(t, janitor) })
	}
}

func testTeardownRemovesVolumesOnOtherNodes(t *testing.T, janitor bool) {
	f := multiNodeFixture(t)
	st, _ := spec.ReadStatus(f.r.StatusDir, "m")
	if len(st.Nodes) != 1 || st.Nodes[0].ID != "n2" || st.Nodes[0].Hostname != "host-2" || len(st.Nodes[0].Volumes) != 1 {
		t.Fatalf("status nodes after install: %+v", st.Nodes)
	}
	vol := st.Nodes[0].Volumes[0]
	if got := f.engine.remoteVolumes("n2"); len(got) != 1 || got[0] != vol {
		t.Fatalf("volumes on n2: %v", got)
	}
	if err := spec.Unplace(f.r.SpecsDir, "m"); err != nil {
		t.Fatal(err)
	}
	if janitor {
		f.r.Owner = ""
	}
	var seen []string
	for i := 0; i < 10 && st.Phase != spec.PhaseDeleted; i++ {
		st = f.pass("m")
		seen = append(seen, string(st.Phase)+": "+st.Message)
		if st.Phase == spec.PhaseDeleted && len(f.engine.remoteVolumes("n2")) > 0 {
			t.Fatalf("Deleted while n2 still holds %v", f.engine.remoteVolumes("n2"))
		}
	}
	if st.Phase != spec.PhaseDeleted {
		t.Fatalf("not Deleted:\n%s", strings.Join(seen, "\n"))
	}
	if !strings.Contains(strings.Join(seen, "\n"), "on node host-2") {
		t.Errorf("no pass said it removes the volumes on host-2:\n%s", strings.Join(seen, "\n"))
	}
	if len(f.engine.services) != 0 || len(f.engine.remoteVolumes("n2")) != 0 || len(st.Nodes) != 0 {
		t.Fatalf("left: services %d, n2 volumes %v, status nodes %v", len(f.engine.services), f.engine.remoteVolumes("n2"), st.Nodes)
	}
	if !strings.Contains(strings.Join(st.Removed, "\n"), "volumes on node host-2: "+vol) {
		t.Errorf("removed list does not say the volume on host-2 went: %v", st.Removed)
	}
}

func TestTeardownWaitsForANodeThatIsDown(t *testing.T) {
	f := multiNodeFixture(t)
	f.deleteWithNodeDown("m", "n2")
	var st *spec.Status
	for i := 0; i < 8; i++ {
		st = f.pass("m")
	}
	if st.Phase != spec.PhaseDeleting || !strings.Contains(st.Message, "node host-2 is down") || !strings.Contains(st.Message, "_data") {
		t.Fatalf("with host-2 down: %s %s", st.Phase, st.Message)
	}
	f.engine.setNodeState("n2", swarm.NodeStateReady)
	f.r.NodesChanged()
	for i := 0; i < 5 && st.Phase != spec.PhaseDeleted; i++ {
		st = f.pass("m")
	}
	if st.Phase != spec.PhaseDeleted || len(f.engine.remoteVolumes("n2")) != 0 || len(f.engine.services) != 0 {
		t.Fatalf("after host-2 is back: %s %s; n2 volumes %v", st.Phase, st.Message, f.engine.remoteVolumes("n2"))
	}
}

func TestRecordNodes(t *testing.T) {
	ended := func(t swarm.Task, service string) swarm.Task {
		t.ServiceID, t.Status.State = service, swarm.TaskStateShutdown
		return t
	}
	withVolume := func(node, vol string) swarm.Task {
		return swarm.Task{ServiceID: "s", NodeID: node, Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{
			Mounts: []mountSpec{{Type: "volume", Source: vol, VolumeOptions: ownVolume()}}}}}
	}
	nodes := map[string]swarm.Node{"n2": {ID: "n2", Description: swarm.NodeDescription{Hostname: "h2"}}}
	tests := []struct {
		name  string
		tasks []swarm.Task
		want  string
	}{
		{"own node is not recorded", []swarm.Task{withVolume("self", "a_data")}, ""},
		{"unassigned task", []swarm.Task{withVolume("", "a_data")}, ""},
		{"task without volumes", []swarm.Task{{ServiceID: "s", NodeID: "n2"}}, ""},
		{"other node, hostname known", []swarm.Task{withVolume("n2", "a_data"), withVolume("n2", "a_db")}, "h2:a_data,a_db"},
		{"unknown node keeps its ID", []swarm.Task{withVolume("n9", "a_data")}, "n9:a_data"},
		// swarm keeps a recipe job's finished container for good once the service is gone
		{"a recipe job's task without volumes", []swarm.Task{{ServiceID: "job", NodeID: "n2"}}, "h2: jobs job"},
		{"a recipe job's task with one", []swarm.Task{withVolume("n2", "a_data"), {ServiceID: "job", NodeID: "n2"}, {ServiceID: "job", NodeID: "n2"}}, "h2:a_data jobs job"},
		{"a recipe job's task on this node", []swarm.Task{{ServiceID: "job", NodeID: "self"}}, ""},
		// This teardown's job on h2 answered (st.Removed): a task there of a removed service
		// that has ended is covered by that answer, listed until swarm reaps it.
		{"an ended task of a removed service on a node that answered", []swarm.Task{ended(withVolume("n2", "a_data"), "gone")}, ""},
		{"one on a node that did not answer", []swarm.Task{ended(withVolume("n9", "a_data"), "gone")}, "n9:a_data"},
		{"one not ended on a node that answered", []swarm.Task{withVolume("n2", "a_data")}, "h2:a_data"},
		{"an ended task of a live service there", []swarm.Task{ended(withVolume("n2", "a_data"), "s")}, "h2:a_data"},
		// This teardown recorded that n7 (hostname h7) and n6 left the swarm: what the app had
		// there went with them, whatever swarm still lists.
		{"a task on a node that left", []swarm.Task{withVolume("n7", "a_data"), ended(withVolume("n6", "a_db"), "gone")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &spec.Status{Removed: []string{"volumes on node h2: a_data",
				leftEntry(spec.NodeVolumes{ID: "n7", Hostname: "h7", Volumes: []string{"a_data"}}), leftEntry(spec.NodeVolumes{ID: "n6", Volumes: []string{"a_db"}})}}
			jobs := map[string]bool{"job": true}
			live := map[string]bool{"s": true, "job": true}
			recordNodes(st, tc.tasks, jobs, live, true, nodes, "self")
			recordNodes(st, tc.tasks, jobs, live, true, nodes, "self") // idempotent
			var got []string
			for _, n := range st.Nodes {
				got = append(got, nodeName(n)+":"+strings.Join(n.Volumes, ","))
				if len(n.Jobs) > 0 {
					got[len(got)-1] += " jobs " + strings.Join(n.Jobs, ",")
				}
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("got %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
	// Two nodes of one hostname (one joined again under a new ID): the answer recorded by
	// hostname may be the other's, and the ended task's node is recorded.
	twins := map[string]swarm.Node{"n2": nodes["n2"], "n8": {ID: "n8", Description: swarm.NodeDescription{Hostname: "h2"}}}
	st := &spec.Status{Removed: []string{"volumes on node h2: a_data"}}
	recordNodes(st, []swarm.Task{ended(withVolume("n2", "a_data"), "gone")}, nil, nil, true, twins, "self")
	if len(st.Nodes) != 1 {
		t.Errorf("an ended task on a node whose hostname another shares: nodes %+v, want it recorded", st.Nodes)
	}
	// Not a teardown's pass after its first: st.Removed is not this teardown's.
	st = &spec.Status{Removed: []string{"volumes on node h2: a_data"}}
	recordNodes(st, []swarm.Task{ended(withVolume("n2", "a_data"), "gone")}, nil, nil, false, nodes, "self")
	if len(st.Nodes) != 1 {
		t.Errorf("outside a teardown: nodes %+v, want the node recorded", st.Nodes)
	}
}

type mountSpec = mount.Mount

func ownVolume() *mount.VolumeOptions {
	return &mount.VolumeOptions{Labels: map[string]string{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d"}}
}

func TestTeardownRetriesAFailedVolumeJobSlowly(t *testing.T) {
	f := multiNodeFixture(t)
	f.engine.jobFail = "No such image: swarm-reconciler:dev"
	if err := spec.Unplace(f.r.SpecsDir, "m"); err != nil {
		t.Fatal(err)
	}
	f.engine.resetCalls()
	var st *spec.Status
	for i := 0; i < 6; i++ { // 6 s of the fixture's clock
		st = f.pass("m")
	}
	creates := func() int {
		n := 0
		for _, c := range f.engine.writes() {
			if strings.HasPrefix(c, "create service") && strings.Contains(c, "_volumes-") {
				n++
			}
		}
		return n
	}
	if st.Phase != spec.PhaseDeleting || !strings.Contains(st.Message, "the reconciler's image") || !strings.Contains(st.Message, "host-2") {
		t.Fatalf("with the job's image missing: %s %s", st.Phase, st.Message)
	}
	if n := creates(); n != 1 {
		t.Fatalf("%d jobs created in 6 s: a failed job must wait %s before it is tried again", n, jobRetry)
	}
	f.now = f.now.Add(jobRetry)
	f.pass("m")
	st = f.pass("m")
	if n := creates(); n != 2 {
		t.Fatalf("%d jobs created after %s: want the retry", n, jobRetry)
	}
	f.engine.jobFail = ""
	f.now = f.now.Add(jobRetry) // the failed job is kept that long, then tried again
	for i := 0; i < 5 && st.Phase != spec.PhaseDeleted; i++ {
		st = f.pass("m")
	}
	if st.Phase != spec.PhaseDeleted || len(f.engine.remoteVolumes("n2")) != 0 {
		t.Fatalf("once the image is there: %s %s", st.Phase, st.Message)
	}
}

// TestTeardownThroughRepeatingJobs: on a swarm whose volume jobs run again and again and leave
// a task behind when removed (moby/moby#53632), a teardown ends Deleted once the node answered,
// without waiting for a later run or for the task swarm never places.
func TestTeardownThroughRepeatingJobs(t *testing.T) {
	f := multiNodeFixture(t)
	f.engine.jobsRepeat = true
	if err := spec.Unplace(f.r.SpecsDir, "m"); err != nil {
		t.Fatal(err)
	}
	var seen []string
	st := f.pass("m")
	for i := 0; i < 8 && st.Phase != spec.PhaseDeleted; i++ {
		st = f.pass("m")
		seen = append(seen, string(st.Phase)+": "+st.Message)
	}
	if st.Phase != spec.PhaseDeleted || len(f.engine.remoteVolumes("n2")) != 0 {
		t.Fatalf("%s %s; n2 holds %v:\n%s", st.Phase, st.Message, f.engine.remoteVolumes("n2"), strings.Join(seen, "\n"))
	}
	if !strings.Contains(strings.Join(st.Removed, "\n"), "volumes on node host-2") {
		t.Errorf("removed list does not name host-2: %v", st.Removed)
	}
}

// TestInventoryReadsEachNodeOnce: where swarm runs the inventory twice on a node
// (moby/moby#53632), that node's volumes are counted once, and so is its answer; an answer
// whose read fails for a moment is read again.
func TestInventoryReadsEachNodeOnce(t *testing.T) {
	f := multiNodeFixture(t)
	f.engine.jobsRepeat = true
	f.answerInventory()
	f.engine.fail = map[string]int{"logs": 2} // a node's logs out of reach for a moment
	found, _, read, err := f.r.inventory(t.Context(), fakeNode)
	if err != nil {
		t.Fatal(err)
	}
	if len(read) != 2 {
		t.Errorf("answers of %v read, want n2 and n3: a log read that failed twice is tried again", read)
	}
	if got, want := found["m"]["n2"], f.engine.remoteVolumes("n2"); strings.Join(got, ",") != strings.Join(want, ",") || len(got) != 1 {
		t.Errorf("volumes of m on n2: %v, want %v once", got, want)
	}
}

// TestInventoryLeftByAKilledStart: an inventory job outlives a reconciler killed in its
// start-up sweep. Its own next start removes it (same name); if it never starts again, the
// janitor, which sweeps every owner's, removes it once older than any inventory lasts, and
// leaves a younger one (another owner's inventory under way) and one with no owner.
func TestInventoryLeftByAKilledStart(t *testing.T) {
	f := multiNodeFixture(t)
	f.answerInventory()
	start := f.now
	f.engine.now = start.Add(-10 * time.Minute)
	for _, owner := range []string{"killed", ""} {
		if _, err := f.engine.ServiceCreate(t.Context(), inventoryJob(owner, "n9", DefaultNodeJobs), swarm.ServiceCreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f.engine.now = start.Add(-5 * time.Second)
	if _, err := f.engine.ServiceCreate(t.Context(), inventoryJob("busy", "n9", DefaultNodeJobs), swarm.ServiceCreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.engine.now = start
	left := func() (names []string) {
		f.engine.mu.Lock()
		defer f.engine.mu.Unlock()
		for _, s := range f.engine.services {
			if s.Spec.Labels[LabelJob] == jobInventory {
				names = append(names, s.Spec.Name)
			}
		}
		slices.Sort(names)
		return names
	}
	name := func(owner string) string { return inventoryJob(owner, "", DefaultNodeJobs).Name }

	f.r.Owner = "another" // a reconciler of another owner leaves the others' alone
	if _, _, _, err := f.r.inventory(t.Context(), fakeNode); err != nil {
		t.Fatal(err)
	}
	want := []string{name(""), name("busy"), name("killed")}
	slices.Sort(want)
	if got := left(); !slices.Equal(got, want) {
		t.Errorf("after the inventory of owner another: %v, want %v", got, want)
	}
	f.r.Owner = "" // the janitor: its own earlier one (same name) and the killed owner's go
	if _, _, _, err := f.r.inventory(t.Context(), fakeNode); err != nil {
		t.Fatal(err)
	}
	if got := left(); !slices.Equal(got, []string{name("busy")}) {
		t.Errorf("after the janitor's inventory: %v, want only %v (under way)", got, name("busy"))
	}
}

// answerInventory makes the inventory's task on each node answer what the node holds.
func (f *fixture) answerInventory() {
	f.engine.taskLog = func(id string) string { // under the engine's lock
		var out strings.Builder
		for _, task := range f.engine.tasks {
			if task.ID != id {
				continue
			}
			for name, v := range f.engine.remote[task.NodeID] {
				b, _ := json.Marshal(NodeVolume{App: v.Labels[swarmstate.LabelApp], Owner: v.Labels[swarmstate.LabelOwner], Volume: name})
				out.Write(append(b, '\n'))
			}
		}
		return out.String()
	}
}

// TestSweepNamesTheNodesNotAsked: the start-up sweep found an app's volumes on one node while
// another node was down. The teardown removes what it found and ends Deleted, but says which
// node was not asked rather than that nothing is left; the next sweep, with every node up,
// finds the rest and its Deleted no longer names a node.
func TestSweepNamesTheNodesNotAsked(t *testing.T) {
	f := multiNodeFixture(t)
	f.answerInventory()
	for name, v := range f.engine.remote["n2"] { // a task of the app once ran on n3 too
		c := *v
		f.engine.remote["n3"][name] = &c
	}
	// The app's spec and status are gone and its services removed, by hand: only its
	// volumes are left, on every node.
	for _, s := range f.engine.services {
		if err := f.engine.ServiceRemove(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := spec.Unplace(f.r.SpecsDir, "m"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.r.StatusDir, "m.json")); err != nil {
		t.Fatal(err)
	}
	f.engine.setNodeState("n3", swarm.NodeStateDown)
	f.r.NodesChanged()
	sweep := func() {
		t.Helper()
		apps, err := f.r.sweepNodes(t.Context(), map[string]*spec.Desired{})
		if err != nil || !slices.Equal(apps, []string{"m"}) {
			t.Fatalf("sweep: apps %v, %v; want m", apps, err)
		}
	}
	deleted := func() *spec.Status {
		t.Helper()
		st := f.pass("m")
		for i := 0; i < 10 && st.Phase != spec.PhaseDeleted; i++ {
			st = f.pass("m")
		}
		if st.Phase != spec.PhaseDeleted {
			t.Fatalf("teardown: %s %s", st.Phase, st.Message)
		}
		return st
	}
	sweep()
	st := deleted()
	if !slices.Equal(st.NodesNotAsked, []string{"host-3"}) || !strings.Contains(st.Message, "not asked") || !strings.Contains(st.Message, "host-3") {
		t.Errorf("Deleted with host-3 not asked: %q, nodesNotAsked %v", st.Message, st.NodesNotAsked)
	}
	if len(f.engine.remoteVolumes("n2")) != 0 || len(f.engine.remoteVolumes("n3")) == 0 {
		t.Fatalf("after the first sweep: n2 holds %v, n3 %v; want n2 clean, n3 not asked", f.engine.remoteVolumes("n2"), f.engine.remoteVolumes("n3"))
	}
	f.engine.setNodeState("n3", swarm.NodeStateReady)
	f.r.NodesChanged()
	sweep()
	st = deleted()
	if len(st.NodesNotAsked) != 0 || strings.Contains(st.Message, "not asked") || len(f.engine.remoteVolumes("n3")) != 0 {
		t.Errorf("every node asked: %q, nodesNotAsked %v, n3 holds %v", st.Message, st.NodesNotAsked, f.engine.remoteVolumes("n3"))
	}
}

// TestJanitorEndsWhereItLeavesVolumes: the janitor's inventory found volumes of an app whose
// stack nothing names (no status, no domain label). It leaves them and says how to remove
// them; with nothing else of the app left, its pass asks for no other look, so a janitor ends
// there rather than at its timeout (seen: a leftover of a killed test held one for 2 minutes).
func TestJanitorEndsWhereItLeavesVolumes(t *testing.T) {
	f := multiNodeFixture(t)
	f.answerInventory()
	// Of the app, only its volume on n2 is left: nothing names its stack.
	f.engine.mu.Lock()
	f.engine.tasks = nil
	clear(f.engine.services)
	clear(f.engine.networks)
	clear(f.engine.configs)
	clear(f.engine.secrets)
	clear(f.engine.volumes)
	f.engine.mu.Unlock()
	if err := spec.Unplace(f.r.SpecsDir, "m"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.r.StatusDir, "m.json")); err != nil {
		t.Fatal(err)
	}
	f.r.Owner, f.r.stacks = "", nil // a janitor's process: it never held the app's stack
	if apps, err := f.r.sweepNodes(t.Context(), map[string]*spec.Desired{}); err != nil || !slices.Equal(apps, []string{"m"}) {
		t.Fatalf("sweep: apps %v, %v; want m", apps, err)
	}
	var res Result
	for i := 0; i < 5; i++ { // the first passes may remove what swarm still lists of the services
		var err error
		if res, err = f.r.Reconcile(t.Context(), "m"); err != nil {
			t.Fatal(err)
		}
		if st, _ := spec.ReadStatus(f.r.StatusDir, "m"); st != nil {
			t.Logf("pass %d: %s %s; stack %q removed %v", i, st.Phase, st.Message, st.Stack, st.Removed)
		}
		if res.RequeueAfter == 0 {
			break
		}
		f.now = f.now.Add(time.Second)
	}
	st, err := spec.ReadStatus(f.r.StatusDir, "m")
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter != 0 || st.Phase != spec.PhaseDeleting || !strings.Contains(st.Message, "reconciler node-clean --app m") {
		t.Errorf("janitor's pass: %+v, %s %s; want no other look, Deleting saying how to remove them", res, st.Phase, st.Message)
	}
	if len(f.engine.remoteVolumes("n2")) == 0 {
		t.Error("the janitor removed volumes of a stack it does not know")
	}
}

// TestInventoryIsAGlobalServiceRunOnce: the inventory is a global service of one run a node
// (restart none) on every node but the engine's own, not a global-job (moby/moby#53632).
func TestInventoryIsAGlobalServiceRunOnce(t *testing.T) {
	s := inventoryJob("o", "n1", DefaultNodeJobs)
	if s.Mode.Global == nil || s.Mode.GlobalJob != nil || s.Mode.Replicated != nil {
		t.Errorf("mode %+v, want global", s.Mode)
	}
	if rp := s.TaskTemplate.RestartPolicy; rp == nil || rp.Condition != swarm.RestartPolicyConditionNone {
		t.Errorf("restart policy %+v, want none", rp)
	}
	if c := s.TaskTemplate.Placement.Constraints; len(c) != 1 || c[0] != "node.id!=n1" {
		t.Errorf("placement %v, want every node but n1", c)
	}
}

func TestJobNameFitsSwarm(t *testing.T) {
	long := strings.Repeat("s", 45)
	for _, stack := range []string{"app_example_org", long} {
		if n := jobName(stack, "app", "tdqxgpcxmlyx7g40eufxeizof"); len(n) > maxServiceName {
			t.Errorf("job name %q: %d characters", n, len(n))
		}
	}
	if jobName(long, "app", "node-a") == jobName(long, "app", "node-b") {
		t.Error("two nodes, one job name")
	}
}

// TestVolumeJobIsAOneShotService: a volume job is one replica never restarted, not a swarm
// replicated-job, whose tasks swarm keeps for good and may run again (moby/moby#53632).
func TestVolumeJobIsAOneShotService(t *testing.T) {
	w := &world{App: "a", Stack: "a_example_org", Owner: swarmstate.Owner{Dir: "o"}}
	s := volumeJob(w, spec.NodeVolumes{ID: "n2"}, DefaultNodeJobs, stackOf(w), false)
	if s.Mode.ReplicatedJob != nil || s.Mode.GlobalJob != nil || s.Mode.Replicated == nil || s.Mode.Replicated.Replicas == nil || *s.Mode.Replicated.Replicas != 1 {
		t.Errorf("mode %+v, want one replica", s.Mode)
	}
	if rp := s.TaskTemplate.RestartPolicy; rp == nil || rp.Condition != swarm.RestartPolicyConditionNone {
		t.Errorf("restart policy %+v, want none", rp)
	}
	if c := s.TaskTemplate.Placement.Constraints; len(c) != 1 || c[0] != "node.id==n2" {
		t.Errorf("placement %v, want node n2", c)
	}
	if !isJob(swarm.Service{Spec: s}) {
		t.Error("not recognised as a volume job by its labels")
	}
	// A node that ran a task of a recipe job: its teardown job removes that job's containers;
	// a move's job does not (the app's new stack runs on).
	n := spec.NodeVolumes{ID: "n2", Jobs: []string{"j1", "j2"}}
	args := strings.Join(volumeJob(w, n, DefaultNodeJobs, stackOf(w), false).TaskTemplate.ContainerSpec.Args, " ")
	moveArgs := strings.Join(volumeJob(w, n, DefaultNodeJobs, stackOf(w), true).TaskTemplate.ContainerSpec.Args, " ")
	if !strings.Contains(args, "--job-service j1 --job-service j2") || strings.Contains(moveArgs, "--job-service") {
		t.Errorf("teardown job args %q, move job args %q", args, moveArgs)
	}
	// The app's services (listed, and those of the node's listed tasks, removed) are the only
	// ones whose stopped task containers the job removes: not another app's, not a volume job's.
	own := map[string]string{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "o"}
	w.Owner = swarmstate.Owner{App: "a", Dir: "o"}
	w.Snap = &swarmstate.Snapshot{
		Services: []swarm.Service{{ID: "s1", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Labels: own}}},
			{ID: "vj", Spec: volumeJob(w, spec.NodeVolumes{ID: "n3"}, DefaultNodeJobs, stackOf(w), false)}},
		Tasks: []swarm.Task{{ServiceID: "gone", NodeID: "n2"}, {ServiceID: "elsewhere", NodeID: "n3"}, {ServiceID: "vj", NodeID: "n2"}},
	}
	args = strings.Join(volumeJob(w, n, DefaultNodeJobs, stackOf(w), false).TaskTemplate.ContainerSpec.Args, " ")
	if !strings.Contains(args, "--task-service gone --task-service s1") || strings.Contains(args, "elsewhere") || strings.Contains(args, "--task-service vj") {
		t.Errorf("teardown job args %q, want --task-service gone and s1 alone", args)
	}
}

// TestLostStatusKeepsANodePending: a teardown whose status is lost while a node's job waits
// (the node is down) does not report Deleted: the job says which node is still to answer.
func TestLostStatusKeepsANodePending(t *testing.T) {
	f := multiNodeFixture(t)
	f.deleteWithNodeDown("m", "n2")
	for i := 0; i < 4; i++ {
		f.pass("m")
	}
	if err := os.WriteFile(filepath.Join(f.r.StatusDir, "m.json"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st *spec.Status
	for i := 0; i < 4; i++ {
		st = f.pass("m")
	}
	if st.Phase != spec.PhaseDeleting || len(f.engine.remoteVolumes("n2")) != 1 || !strings.Contains(st.Message, "host-2 is down") {
		t.Fatalf("after the status was lost: %s %s; n2 volumes %v", st.Phase, st.Message, f.engine.remoteVolumes("n2"))
	}
	f.engine.setNodeState("n2", swarm.NodeStateReady)
	f.r.NodesChanged()
	for i := 0; i < 5 && st.Phase != spec.PhaseDeleted; i++ {
		st = f.pass("m")
	}
	if st.Phase != spec.PhaseDeleted || len(f.engine.remoteVolumes("n2")) != 0 {
		t.Fatalf("once host-2 is back: %s %s", st.Phase, st.Message)
	}
}

// TestWithoutSettledTasks: a teardown waits for the tasks of removed services that are still
// starting or running, except those on a node that is down or disconnected, which may never
// report; finished tasks (a removed job's stay listed for good) are not waited for; a drained
// node's tasks stop and are waited for until they have; a removed service's task that swarm
// never placed on a node is not, unless swarm may still place it.
func TestWithoutSettledTasks(t *testing.T) {
	node := func(state swarm.NodeState, avail swarm.NodeAvailability) swarm.Node {
		return swarm.Node{Status: swarm.NodeStatus{State: state}, Spec: swarm.NodeSpec{Availability: avail}}
	}
	nodes := map[string]swarm.Node{
		"up":      node(swarm.NodeStateReady, swarm.NodeAvailabilityActive),
		"down":    node(swarm.NodeStateDown, swarm.NodeAvailabilityActive),
		"gone":    node(swarm.NodeStateDisconnected, swarm.NodeAvailabilityActive),
		"drained": node(swarm.NodeStateReady, swarm.NodeAvailabilityDrain),
	}
	task := func(node string, state swarm.TaskState) swarm.Task {
		return swarm.Task{ServiceID: "live", NodeID: node, Status: swarm.TaskStatus{State: state}}
	}
	// removed is a task of a removed service, wanted in state desired.
	removed := func(node string, state, desired swarm.TaskState) swarm.Task {
		return swarm.Task{ServiceID: "removed", NodeID: node, Status: swarm.TaskStatus{State: state}, DesiredState: desired}
	}
	run, start := swarm.TaskStateRunning, swarm.TaskStateStarting
	stopped := removed("", swarm.TaskStatePending, swarm.TaskStateComplete)
	stopped.Spec.Placement = &swarm.Placement{Constraints: []string{jobStopped}}
	for _, tc := range []struct {
		name  string
		tasks []swarm.Task
		nodes map[string]swarm.Node
		want  []string
	}{
		{"single node (nodes not read)", []swarm.Task{task("self", run), task("", swarm.TaskStatePending)}, nil, []string{"self", ""}},
		{"up, unassigned and unknown nodes are waited for", []swarm.Task{task("up", start), task("", swarm.TaskStateNew), task("unknown", run)}, nodes, []string{"up", "", "unknown"}},
		{"down and disconnected are not", []swarm.Task{task("up", run), task("down", run), task("gone", run)}, nodes, []string{"up"}},
		{"a drained node's tasks stop: waited for", []swarm.Task{task("drained", run)}, nodes, []string{"drained"}},
		{"finished tasks are not", []swarm.Task{task("up", swarm.TaskStateComplete), task("up", swarm.TaskStateShutdown), task("up", swarm.TaskStateFailed),
			task("up", swarm.TaskStateRejected), task("up", swarm.TaskStateOrphaned), task("up", run)}, nodes, []string{"up"}},
		{"nothing left", []swarm.Task{task("down", run), task("up", swarm.TaskStateComplete)}, nodes, nil},
		{"a removed job's tasks created as it was removed are never placed", []swarm.Task{removed("", swarm.TaskStateNew, swarm.TaskStateComplete),
			removed("", swarm.TaskStateNew, swarm.TaskStateComplete)}, nodes, nil},
		{"unassigned and to be removed: never placed", []swarm.Task{removed("", swarm.TaskStatePending, swarm.TaskStateRemove),
			removed("", swarm.TaskStatePending, swarm.TaskStateShutdown)}, nodes, nil},
		{"pending and still wanted: swarm may place it", []swarm.Task{removed("", swarm.TaskStatePending, swarm.TaskStateComplete)}, nodes, []string{""}},
		{"pending, of a job made to run nowhere before its removal: never placed", []swarm.Task{stopped}, nodes, nil},
		{"placed on a node: its container may start", []swarm.Task{removed("up", swarm.TaskStateAssigned, swarm.TaskStateRemove),
			removed("up", swarm.TaskStateStarting, swarm.TaskStateRemove)}, nodes, []string{"up", "up"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := &swarmstate.Snapshot{Services: []swarm.Service{{ID: "live"}}, Tasks: tc.tasks}
			out := withoutSettledTasks(snap, tc.nodes)
			var got []string
			for _, task := range out.Tasks {
				got = append(got, task.NodeID)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("tasks on %v, want %v", got, tc.want)
			}
			if len(snap.Tasks) != len(tc.tasks) {
				t.Errorf("the snapshot itself changed: %d tasks, want %d", len(snap.Tasks), len(tc.tasks))
			}
		})
	}
}

// TestFindingReachesTheNextPass: what the start-up inventory found of an app without a spec
// on other nodes (volumes there, its domain) goes into the status its next pass starts from,
// once; an app that has a spec again keeps its status as it is.
func TestFindingReachesTheNextPass(t *testing.T) {
	nodes := map[string]swarm.Node{"n2": {ID: "n2", Description: swarm.NodeDescription{Hostname: "host-2"}}}
	vol := func(name string) swarm.Task {
		return swarm.Task{ServiceID: "found", NodeID: "n2", Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Mounts: []mount.Mount{{
			Type: mount.TypeVolume, Source: name, VolumeOptions: &mount.VolumeOptions{Labels: map[string]string{swarmstate.LabelApp: "gone"}}}}}}}
	}
	r := &Reconciler{found: map[string]nodeFinding{
		"gone": {tasks: []swarm.Task{vol("gone_example_org_data")}, nodes: nodes, self: "n1",
			domains: map[string]string{"gone_example_org_data": "gone.example.org"}},
		"again": {tasks: []swarm.Task{vol("again_example_org_data")}, nodes: nodes, self: "n1",
			domains: map[string]string{"again_example_org_data": "again.example.org"}},
	}}
	st := r.withFinding("gone", nil, false)
	// The stack too: the volume jobs remove that stack's volumes only.
	if st == nil || st.Domain != "gone.example.org" || st.Stack != "gone_example_org" || len(st.Nodes) != 1 || st.Nodes[0].Hostname != "host-2" ||
		strings.Join(st.Nodes[0].Volumes, ",") != "gone_example_org_data" {
		t.Fatalf("status from the finding: %+v", st)
	}
	if again := r.withFinding("gone", nil, false); again != nil {
		t.Errorf("the finding was handed out twice: %+v", again)
	}
	prev := &spec.Status{App: "again", Phase: spec.PhaseReady, Domain: "again.example.org"}
	if got := r.withFinding("again", prev, true); got != prev || len(prev.Nodes) != 0 {
		t.Errorf("an app with a spec: %+v, want its status untouched", got)
	}
}

// TestFindingOfTwoStacks: the janitor's inventory found volumes of one app name in two stacks
// (two owners' apps, or one that changed domain). A teardown takes one stack's (the janitor's
// jobs remove one stack's volumes): the status's while any of it is found, else the first by
// name once the status's teardown is over; a later sweep finds the other.
func TestFindingOfTwoStacks(t *testing.T) {
	nodes := map[string]swarm.Node{"n2": {ID: "n2", Description: swarm.NodeDescription{Hostname: "host-2"}}}
	vol := func(name string) swarm.Task {
		return swarm.Task{ServiceID: "found", NodeID: "n2", Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Mounts: []mount.Mount{{
			Type: mount.TypeVolume, Source: name, VolumeOptions: &mount.VolumeOptions{Labels: map[string]string{swarmstate.LabelApp: "x"}}}}}}}
	}
	both := map[string]string{"x_a_test_data": "x.a.test", "x_b_test_data": "x.b.test"}
	for _, tc := range []struct {
		name              string
		prev              *spec.Status
		domain, stack, on string
	}{
		{"no status", nil, "x.a.test", "x_a_test", "x_a_test_data"},
		{"a teardown of b under way", &spec.Status{App: "x", Phase: spec.PhaseDeleting, Domain: "x.b.test", Stack: "x_b_test"}, "x.b.test", "x_b_test", "x_b_test_data"},
		{"b torn down, its status kept", &spec.Status{App: "x", Phase: spec.PhaseDeleted, Domain: "x.c.test", Stack: "x_c_test"}, "x.a.test", "x_a_test", "x_a_test_data"},
	} {
		r := &Reconciler{found: map[string]nodeFinding{"x": {tasks: []swarm.Task{vol("x_a_test_data"), vol("x_b_test_data")},
			nodes: nodes, self: "n1", domains: both}}}
		st := r.withFinding("x", tc.prev, false)
		if st == nil || st.Domain != tc.domain || st.Stack != tc.stack || len(st.Nodes) != 1 || strings.Join(st.Nodes[0].Volumes, ",") != tc.on {
			t.Errorf("%s: status %+v, want domain %s, stack %s, volumes %s on host-2", tc.name, st, tc.domain, tc.stack, tc.on)
		}
	}
	// An owner's job removes every stack's volumes of its app: all are recorded.
	r := &Reconciler{Owner: "o", found: map[string]nodeFinding{"x": {tasks: []swarm.Task{vol("x_a_test_data"), vol("x_b_test_data")},
		nodes: nodes, self: "n1", domains: both}}}
	if st := r.withFinding("x", nil, false); st == nil || len(st.Nodes) != 1 || strings.Join(st.Nodes[0].Volumes, ",") != "x_a_test_data,x_b_test_data" {
		t.Errorf("an owner's finding: %+v, want both volumes", st)
	}
}

// TestInventoryOlderThanAJobsAnswer: a volume job that answers while the start-up inventory
// runs may answer after the inventory looked at its node. What the inventory found there is
// older than the answer and starts no second teardown (seen on the multi-node swarm: a new
// leader's inventory, beside the teardown it took over, created a removed app's job again).
func TestInventoryOlderThanAJobsAnswer(t *testing.T) {
	f := multiNodeFixture(t)
	var stale strings.Builder // what n2 holds before the teardown: the inventory's look
	for name, v := range f.engine.remote["n2"] {
		b, _ := json.Marshal(NodeVolume{App: v.Labels[swarmstate.LabelApp], Owner: v.Labels[swarmstate.LabelOwner], Volume: name})
		stale.Write(append(b, '\n'))
	}
	f.engine.taskLog = func(id string) string { // under the engine's lock
		for _, task := range f.engine.tasks {
			if task.ID == id && task.NodeID == "n2" {
				return stale.String()
			}
		}
		return ""
	}
	f.r.asking = true // the inventory has begun
	if err := spec.Unplace(f.r.SpecsDir, "m"); err != nil {
		t.Fatal(err)
	}
	st := f.pass("m")
	for i := 0; i < 10 && st.Phase != spec.PhaseDeleted; i++ {
		st = f.pass("m")
	}
	if st.Phase != spec.PhaseDeleted || len(f.engine.remoteVolumes("n2")) != 0 {
		t.Fatalf("teardown: %s %s; n2 holds %v", st.Phase, st.Message, f.engine.remoteVolumes("n2"))
	}
	apps, err := f.r.sweepNodes(t.Context(), map[string]*spec.Desired{})
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 0 || len(f.r.found) != 0 {
		t.Errorf("the inventory's older look at n2 was taken: apps %v, %d findings", apps, len(f.r.found))
	}
	if f.r.asking || f.r.answered != nil {
		t.Errorf("after the inventory: asking %v, answers kept %v", f.r.asking, f.r.answered)
	}
	if st := f.pass("m"); st.Phase != spec.PhaseDeleted || len(st.Nodes) != 0 {
		t.Errorf("a pass after the inventory: %s %s, nodes %v", st.Phase, st.Message, st.Nodes)
	}
}

// TestFindingOlderThanAJobsAnswer: a job that answers after the inventory ended but before its
// finding is taken drops that node from the finding; the other nodes stay. Answers are kept
// only while an inventory runs or its findings wait.
func TestFindingOlderThanAJobsAnswer(t *testing.T) {
	vol := func(node, name string) swarm.Task {
		return swarm.Task{ServiceID: "found", NodeID: node, Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Mounts: []mount.Mount{{
			Type: mount.TypeVolume, Source: name, VolumeOptions: &mount.VolumeOptions{Labels: map[string]string{swarmstate.LabelApp: "gone"}}}}}}}
	}
	r := &Reconciler{}
	r.noteAnswered("gone", []string{"n2"})
	if r.answered != nil {
		t.Fatalf("an answer with no inventory under way was kept: %v", r.answered)
	}
	r.found = map[string]nodeFinding{"gone": {tasks: []swarm.Task{vol("n2", "gone_data"), vol("n3", "gone_data")}, self: "n1"}}
	r.noteAnswered("gone", []string{"n2"})
	st := r.withFinding("gone", &spec.Status{App: "gone", Phase: spec.PhaseDeleted}, false)
	if len(st.Nodes) != 1 || st.Nodes[0].ID != "n3" {
		t.Errorf("nodes from the finding: %+v, want n3 alone", st.Nodes)
	}
	if r.answered != nil {
		t.Errorf("answers kept after every finding was taken: %v", r.answered)
	}
	r.found = map[string]nodeFinding{"gone": {tasks: []swarm.Task{vol("n2", "gone_data")}, self: "n1"}}
	r.noteAnswered("gone", []string{"n2"})
	prev := &spec.Status{App: "gone", Phase: spec.PhaseDeleted}
	if got := r.withFinding("gone", prev, false); got != prev || len(prev.Nodes) != 0 {
		t.Errorf("a finding of answered nodes alone: %+v, want the status as it was", got)
	}
}

// TestNodeAnswerAndLateTasks: a volume job's answer is taken unless a task of the app's removed
// services on its node could have made a container the job did not see: one that has not ended
// (waited for, the job kept), or one whose container ended after the answer (the job removed,
// to be asked again). The timestamps are the node's agent's.
func TestNodeAnswerAndLateTasks(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	job := swarm.Service{ID: "job", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "a_volumes-n2",
		Labels: map[string]string{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d", LabelJob: jobVolumes, LabelJobNode: "n2"}}}}
	task := func(service, node string, state swarm.TaskState, when int, container bool) swarm.Task {
		tk := swarm.Task{ID: service + "-" + string(state), ServiceID: service, NodeID: node,
			Status: swarm.TaskStatus{State: state, Timestamp: at(when)}}
		if service != "job" && service != "stateless" && service != "job-r" {
			tk.Spec.ContainerSpec = &swarm.ContainerSpec{Mounts: []mountSpec{{Type: "volume", Source: "a_data", VolumeOptions: ownVolume()}}}
		}
		if container {
			tk.Status.ContainerStatus = &swarm.ContainerStatus{ContainerID: "c-" + tk.ID}
		}
		return tk
	}
	answered := task("job", "n2", swarm.TaskStateComplete, 10, true)
	tests := []struct {
		name    string
		tasks   []swarm.Task
		taken   bool   // the node is recorded clean
		removed bool   // the job is removed
		waiting string // in the wait message
	}{
		{"no task of the app", []swarm.Task{answered}, true, true, ""},
		{"its container ended before the answer", []swarm.Task{answered, task("app", "n2", swarm.TaskStateShutdown, 5, true)}, true, true, ""},
		{"a task being prepared when it answered", []swarm.Task{answered, task("app", "n2", swarm.TaskStatePreparing, 9, false)}, false, false, "had not ended"},
		{"listed running: not reported yet", []swarm.Task{answered, task("app", "n2", swarm.TaskStateRunning, 4, true)}, false, false, "had not ended"},
		{"its container ended after the answer", []swarm.Task{answered, task("app", "n2", swarm.TaskStateFailed, 12, true)}, false, true, "removing the app's volumes on node host-2"},
		// A volume with a driver or driver options is made as the task is prepared, before
		// its container: a task that mounts one and ended after the answer may have made it.
		{"ended after the answer without a container", []swarm.Task{answered, task("app", "n2", swarm.TaskStateRejected, 12, false)}, false, true, "removing the app's volumes on node host-2"},
		{"a recipe job's task ended after it without a container", []swarm.Task{answered, task("job-r", "n2", swarm.TaskStateRejected, 12, false)}, true, true, ""},
		{"a recipe job's container ended after it", []swarm.Task{answered, task("job-r", "n2", swarm.TaskStateFailed, 12, true)}, false, true, "removing the app's volumes on node host-2"},
		{"another node's task", []swarm.Task{answered, task("app", "n3", swarm.TaskStateStarting, 9, false)}, true, true, ""},
		{"a later run of the job covers it", []swarm.Task{answered, task("app", "n2", swarm.TaskStateFailed, 12, true),
			{ID: "job-again", ServiceID: "job", NodeID: "n2", Status: swarm.TaskStatus{State: swarm.TaskStateComplete, Timestamp: at(14)}}}, true, true, ""},
		{"not answered yet", []swarm.Task{task("job", "n2", swarm.TaskStateRunning, 10, true)}, false, false, "job running"},
		// A task that mounts none of the app's volumes leaves nothing the job removes.
		{"a stateless task ended after the answer", []swarm.Task{answered, task("stateless", "n2", swarm.TaskStateShutdown, 12, true)}, true, true, ""},
		{"a stateless task still running", []swarm.Task{answered, task("stateless", "n2", swarm.TaskStateRunning, 4, true)}, true, true, ""},
		// The job removed that task's stopped container itself (its output says so): the
		// agent reported the end after the answer, but the container was gone before it.
		{"its stopped container removed by the job", []swarm.Task{answered, task("app", "n2", swarm.TaskStateShutdown, 12, true)}, true, true, ""},
		{"the job removed another task's", []swarm.Task{answered, task("app", "n2", swarm.TaskStateFailed, 12, true),
			{ID: "other", ServiceID: "app", NodeID: "n2", Spec: task("app", "n2", "", 0, false).Spec, Status: swarm.TaskStatus{State: swarm.TaskStateShutdown, Timestamp: at(12),
				ContainerStatus: &swarm.ContainerStatus{ContainerID: "c-other"}}}}, false, true, "removing the app's volumes on node host-2"},
	}
	stopped := map[string][]string{answered.ID: {"app-shutdown", "other-gone"}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &world{App: "a", Snap: &swarmstate.Snapshot{Services: []swarm.Service{job}, Tasks: tc.tasks}, JobStopped: stopped,
				Nodes: map[string]swarm.Node{"n2": {ID: "n2", Description: swarm.NodeDescription{Hostname: "host-2"}, Status: swarm.NodeStatus{State: swarm.NodeStateReady}}}}
			st := &spec.Status{App: "a", Nodes: []spec.NodeVolumes{{ID: "n2", Hostname: "host-2", Volumes: []string{"a_data"}, Jobs: []string{"job-r"}}}}
			nc := planNodeCleanup(w, st, DefaultNodeJobs)
			if taken := len(st.Nodes) == 0; taken != tc.taken || taken != (len(nc.Answered) == 1) {
				t.Errorf("answer taken: nodes left %v, answered %v; want taken %v", st.Nodes, nc.Answered, tc.taken)
			}
			removed := slices.ContainsFunc(nc.Actions, func(a Action) bool { return a.Kind == RemoveService && a.ID == "job" })
			if removed != tc.removed {
				t.Errorf("job removed: %v, want %v (%+v)", removed, tc.removed, nc.Actions)
			}
			if got := strings.Join(nc.Waiting, "; "); tc.waiting == "" && got != "" || !strings.Contains(got, tc.waiting) {
				t.Errorf("waiting %q, want %q", got, tc.waiting)
			}
		})
	}
}

// TestSpecBackWhileATeardownWaitsForANode: an app's spec deleted while the node holding its
// volume is down, then written again before the node returns. The waiting volume job goes (the
// app is wanted again: its data is not removed behind its back), the app deploys on the nodes
// that are up, and the node that is down stays in the status, so that the next teardown,
// once it is back, still removes the volume there: nothing leaks.
func TestSpecBackWhileATeardownWaitsForANode(t *testing.T) {
	f := multiNodeFixture(t)
	vol := f.engine.remoteVolumes("n2")
	f.deleteWithNodeDown("m", "n2")
	var st *spec.Status
	for i := 0; i < 4; i++ {
		st = f.pass("m")
	}
	if st.Phase != spec.PhaseDeleting || !strings.Contains(st.Message, "host-2 is down") || f.jobs() != 1 {
		t.Fatalf("with host-2 down: %s %s; %d volume jobs", st.Phase, st.Message, f.jobs())
	}

	f.engine.place = func(*swarm.Service, int) string { return "n3" } // swarm places nothing on a node that is down
	f.writeSpec("m", "recipe: echo\nversion: 1.0.0+1\n")
	if st = f.settle("m"); st.Phase != spec.PhaseReady {
		t.Fatalf("spec written again: %s %s", st.Phase, st.Message)
	}
	if f.jobs() != 0 {
		t.Errorf("%d volume jobs left beside the app deployed again", f.jobs())
	}
	if got := f.engine.remoteVolumes("n2"); !slices.Equal(got, vol) {
		t.Errorf("n2 volumes %v, want %v kept: the app is wanted again", got, vol)
	}
	if !slices.ContainsFunc(st.Nodes, func(n spec.NodeVolumes) bool { return n.ID == "n2" }) {
		t.Fatalf("status forgets n2, whose volume the next teardown must remove: %+v", st.Nodes)
	}

	f.engine.setNodeState("n2", swarm.NodeStateReady)
	f.r.NodesChanged()
	if st = f.settle("m"); st.Phase != spec.PhaseReady || len(f.engine.remoteVolumes("n2")) != 1 {
		t.Fatalf("host-2 back while the app runs: %s %s; n2 volumes %v", st.Phase, st.Message, f.engine.remoteVolumes("n2"))
	}
	if err := spec.Unplace(f.r.SpecsDir, "m"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10 && st.Phase != spec.PhaseDeleted; i++ {
		st = f.pass("m")
	}
	if st.Phase != spec.PhaseDeleted || len(f.engine.services) != 0 {
		t.Fatalf("second teardown: %s %s; %d services", st.Phase, st.Message, len(f.engine.services))
	}
	for _, n := range []string{"n2", "n3"} {
		if got := f.engine.remoteVolumes(n); len(got) != 0 {
			t.Errorf("Deleted, and %s still holds %v", n, got)
		}
	}
}

// jobs counts the volume jobs the fake swarm holds.
func (f *fixture) jobs() int {
	f.engine.mu.Lock()
	defer f.engine.mu.Unlock()
	n := 0
	for _, s := range f.engine.services {
		if isJob(*s) {
			n++
		}
	}
	return n
}

// TestSpecBackUnderAnotherDomainWhileAVolumeJobWaits: as TestSpecBackWhileATeardownWaitsForANode,
// but the spec comes back with another domain (another stack), suspended, or invalid: the job waiting
// on the node that is down goes all the same. Left, it kept the app moving for ever (a move
// waits for its old stack to be empty and removes no job), and once the node returned it
// would remove every volume of the app there, the live stack's too.
func TestSpecBackUnderAnotherDomainWhileAVolumeJobWaits(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       spec.Phase
	}{
		{"another domain", "recipe: echo\nversion: 1.0.0+1\ndomain: m2.test\n", spec.PhaseReady},
		{"suspended", "recipe: echo\nversion: 1.0.0+1\nsuspend: true\n", spec.PhaseSuspended},
		{"invalid", "recipe: echo\nversion: 1.0.0+1\ntimout: 15m\n", spec.PhaseInvalid}, // a typo: an unknown field
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := multiNodeFixture(t)
			f.deleteWithNodeDown("m", "n2")
			var st *spec.Status
			for range 4 {
				st = f.pass("m")
			}
			if st.Phase != spec.PhaseDeleting || f.jobs() != 1 {
				t.Fatalf("with host-2 down: %s %s; %d volume jobs", st.Phase, st.Message, f.jobs())
			}
			f.engine.place = func(*swarm.Service, int) string { return "n3" }
			f.writeSpec("m", tc.spec)
			for range 10 {
				if st = f.pass("m"); st.Phase == tc.want && f.jobs() == 0 {
					break
				}
			}
			if st.Phase != tc.want || f.jobs() != 0 {
				t.Fatalf("spec back: %s %s; %d volume jobs left", st.Phase, st.Message, f.jobs())
			}
			f.engine.setNodeState("n2", swarm.NodeStateReady)
			f.r.NodesChanged()
			for range 5 {
				f.now = f.now.Add(time.Minute)
				st = f.pass("m")
			}
			if st.Phase != tc.want || f.jobs() != 0 || len(f.engine.remoteVolumes("n2")) != 1 {
				t.Fatalf("host-2 back: %s %s; %d volume jobs, n2 volumes %v", st.Phase, st.Message, f.jobs(), f.engine.remoteVolumes("n2"))
			}
			if !slices.ContainsFunc(st.Nodes, func(n spec.NodeVolumes) bool { return n.ID == "n2" }) {
				t.Fatalf("status forgets n2, whose volume the next teardown must remove: %+v", st.Nodes)
			}
		})
	}
}

// TestJanitorFindsAnEarlierReleasesJob: a janitor of an earlier release left a volume job with
// no owner label, waiting on a node that is down. The janitor of this one finds it as its own
// (its job labels), with the status that recorded it: no second job of its name, and Deleted
// once the node is back.
func TestJanitorFindsAnEarlierReleasesJob(t *testing.T) {
	f := multiNodeFixture(t)
	f.deleteWithNodeDown("m", "n2")
	f.r.Owner = "" // the janitor
	var st *spec.Status
	for range 4 {
		st = f.pass("m")
	}
	if f.jobs() != 1 {
		t.Fatalf("with host-2 down: %s %s; %d jobs", st.Phase, st.Message, f.jobs())
	}
	// As the janitor of the previous release made it: no owner label.
	for _, s := range f.engine.services {
		if isJob(*s) {
			delete(s.Spec.Labels, swarmstate.LabelOwner)
		}
	}
	// The new janitor runs; host-2 comes back.
	f.engine.setNodeState("n2", swarm.NodeStateReady)
	f.r.NodesChanged()
	var errs []string
	for range 10 {
		if _, err := f.r.Reconcile(t.Context(), "m"); err != nil {
			errs = append(errs, err.Error())
		}
		f.now = f.now.Add(30 * time.Second)
	}
	st, _ = spec.ReadStatus(f.r.StatusDir, "m")
	if st.Phase != spec.PhaseDeleted || f.jobs() != 0 {
		t.Fatalf("janitor after an old janitor's job: %s %q; %d jobs left; errors %q", st.Phase, st.Message, f.jobs(), errs[:min(2, len(errs))])
	}
}

// TestJanitorListsAnEarlierReleasesJob: as TestJanitorFindsAnEarlierReleasesJob, with a status
// directory of its own: the job, all that is left of the app, makes the app one to sweep.
func TestJanitorListsAnEarlierReleasesJob(t *testing.T) {
	f := multiNodeFixture(t)
	f.deleteWithNodeDown("m", "n2")
	f.r.Owner = ""
	for range 6 {
		f.pass("m")
	}
	for _, s := range f.engine.services {
		if isJob(*s) {
			delete(s.Spec.Labels, swarmstate.LabelOwner)
		}
	}
	if err := os.Remove(filepath.Join(f.r.StatusDir, "m.json")); err != nil {
		t.Fatal(err)
	}
	f.engine.setNodeState("n2", swarm.NodeStateReady)
	f.r.NodesChanged()
	apps, err := f.r.Pending(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(apps, "m") || f.jobs() != 1 {
		t.Fatalf("janitor pending %v; %d jobs in the swarm, %d services", apps, f.jobs(), len(f.engine.services))
	}
}

// TestDropJanitorJobs: a janitor whose pass ends while its volume job waits on a node that is
// down removes the job: left, it would remove the stack's volumes there once the node is back,
// also those of the app its owner deployed again meanwhile. An owner's job stays.
func TestDropJanitorJobs(t *testing.T) {
	f := multiNodeFixture(t)
	f.deleteWithNodeDown("m", "n2")
	owner := f.r.Owner
	f.r.Owner = "" // the janitor
	for range 4 {
		f.pass("m")
	}
	if f.jobs() != 1 {
		t.Fatalf("%d volume jobs, want the janitor's one", f.jobs())
	}
	theirs := &swarm.Service{ID: "o1", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "x_test_volumes-n2",
		Labels: map[string]string{swarmstate.LabelApp: "x", swarmstate.LabelOwner: owner, LabelJob: jobVolumes, LabelJobNode: "n2"}}}}
	f.engine.services[theirs.ID] = theirs
	dropped, err := f.r.DropJanitorJobs(t.Context())
	if err != nil || len(dropped) != 1 || dropped[0] != "m_test_volumes-n2" {
		t.Fatalf("dropped %v, %v; want the janitor's job of m", dropped, err)
	}
	if f.jobs() != 1 || f.engine.services["o1"] == nil {
		t.Errorf("%d jobs left, want the owner's only", f.jobs())
	}
	f.r.Owner = owner
	if dropped, err := f.r.DropJanitorJobs(t.Context()); err != nil || len(dropped) > 0 {
		t.Errorf("an owner's reconciler dropped %v, %v", dropped, err)
	}
}

// TestJanitorNamesNoJobWithoutAStack: the janitor (any owner's) asks no node to remove an
// app's volumes without a stack to name: the job would remove every volume of an app of that
// name there, another owner's live one's too. It says what to do instead.
func TestJanitorNamesNoJobWithoutAStack(t *testing.T) {
	w := &world{App: "a", Snap: &swarmstate.Snapshot{},
		Nodes: map[string]swarm.Node{"n2": {ID: "n2", Description: swarm.NodeDescription{Hostname: "host-2"}, Status: swarm.NodeStatus{State: swarm.NodeStateReady}}}}
	for _, tc := range []struct {
		owner, stack string
		job          bool
	}{{"", "", false}, {"", "a_test", true}, {"d1", "", true}} {
		w.Owner = swarmstate.Owner{App: "a", Dir: tc.owner}
		st := &spec.Status{App: "a", Stack: tc.stack, Nodes: []spec.NodeVolumes{{ID: "n2", Hostname: "host-2", Volumes: []string{"a_data"}}}}
		w.Prev = st
		nc := planNodeCleanup(w, st, DefaultNodeJobs)
		job := slices.ContainsFunc(nc.Actions, func(a Action) bool { return a.Kind == CreateService })
		if job != tc.job || !job && !strings.Contains(strings.Join(nc.Waiting, "; "), "reconciler node-clean --app a --owner OWNER") {
			t.Errorf("owner %q, stack %q: job %v, want %v; waiting %q", tc.owner, tc.stack, job, tc.job, nc.Waiting)
		}
	}
}

// TestInventoryLeftIsTheOwners: a service of the inventory's name is taken for this owner's
// leftover only with this owner's label; with another's (or the janitor's name carrying an
// owner), it is not ours to remove, whatever its age.
func TestInventoryLeftIsTheOwners(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	job := func(name string, labels map[string]string) swarm.Service {
		labels[LabelJob] = jobInventory
		return swarm.Service{Meta: swarm.Meta{CreatedAt: now.Add(-time.Second)}, Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}}}
	}
	ours, janitors := inventoryJob("d1", "", DefaultNodeJobs).Name, inventoryJob("", "", DefaultNodeJobs).Name
	for _, tc := range []struct {
		name, owner string
		svc         swarm.Service
		left        bool
	}{
		{"our name, our owner", "d1", job(ours, map[string]string{swarmstate.LabelOwner: "d1"}), true},
		{"our name, another owner", "d1", job(ours, map[string]string{swarmstate.LabelOwner: "d2"}), false},
		{"our name, no owner", "d1", job(ours, map[string]string{}), false},
		{"the janitor's name, no owner", "", job(janitors, map[string]string{}), true},
		{"the janitor's name with an owner, young", "", job(janitors, map[string]string{swarmstate.LabelOwner: "d2"}), false},
	} {
		name := ours
		if tc.owner == "" {
			name = janitors
		}
		if got := inventoryLeft(tc.svc, name, tc.owner, now) != ""; got != tc.left {
			t.Errorf("%s: left %v, want %v", tc.name, got, tc.left)
		}
	}
}
