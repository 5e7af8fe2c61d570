package controller

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/locks"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

func TestTTLExpiresAndStaysDown(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("t", "recipe: echo\nversion: 1.0.0+1\nttl: 1m\n")
	st := f.settle("t")
	if st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	res, err := f.r.Reconcile(t.Context(), "t")
	if err != nil || res.RequeueAfter <= 0 || res.RequeueAfter > time.Minute {
		t.Fatalf("a Ready app with a ttl must come back at its expiry: %v %v", res, err)
	}
	f.now = f.now.Add(time.Minute)
	st = f.settle("t")
	if st.Phase != spec.PhaseExpired || !strings.Contains(st.Message, "ttl 1m0s passed") {
		t.Fatalf("after ttl: %s %s", st.Phase, st.Message)
	}
	if n := len(f.engine.services) + len(f.engine.networks) + len(f.engine.configs) + len(f.engine.volumes); n != 0 {
		t.Fatalf("%d objects left after Expired", n)
	}
	// Not redeployed until the content changes.
	f.engine.resetCalls()
	if st = f.settle("t"); st.Phase != spec.PhaseExpired || len(f.engine.writes()) > 0 {
		t.Fatalf("expired app acted on again: %s %v", st.Phase, f.engine.writes())
	}
	f.writeSpec("t", "recipe: echo\nversion: 1.0.0+1\nttl: 2m\n")
	if st = f.settle("t"); st.Phase != spec.PhaseReady {
		t.Fatalf("new content after Expired: %s %s", st.Phase, st.Message)
	}
}

// TestTTLOfAnAppWaitingOnItsTasks: a Degraded app waits on its task list, a pass only when it
// moves; its ttl comes first, and the look then is a pass (TasksFor no longer than the wait),
// or an app whose tasks stand still would be reaped only when that wait ended.
func TestTTLOfAnAppWaitingOnItsTasks(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("t", "recipe: echo\nversion: 1.0.0+1\nttl: 1m\nminReady: 20s\n")
	st := f.settleAs("t", spec.PhaseReady, 5*time.Second, 40)
	if st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	exp := st.FirstDeployedAt.Add(time.Minute)
	f.now = exp.Add(-3 * time.Second)
	f.engine.crashAfter = time.Second // the task restarts: Degraded, waiting out its window
	res, err := f.r.Reconcile(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > 3*time.Second || res.TasksFor > res.RequeueAfter {
		t.Fatalf("3s before the ttl: %+v, want a pass within 3s (TasksFor no longer than RequeueAfter)", res)
	}
}

// TestDeletedAppNotRoutedAgain: a teardown tells the loop its app is gone, and a resync must
// not route it again from its Deleted status (node events would queue passes of every app
// deleted within the status retention, and a new app on its stack could lose its events).
func TestDeletedAppNotRoutedAgain(t *testing.T) {
	f := newFixture(t)
	f.r.StatusRetention = time.Hour
	routes := map[string]string{}
	f.r.observed = func(app, stack string) {
		if stack == "" {
			delete(routes, app)
			return
		}
		routes[app] = stack
	}
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady || routes["a"] == "" {
		t.Fatalf("install: %s, routes %v", st.Phase, routes)
	}
	if err := spec.Unplace(f.r.SpecsDir, "a"); err != nil {
		t.Fatal(err)
	}
	if st := f.settle("a"); st.Phase != spec.PhaseDeleted || len(routes) != 0 {
		t.Fatalf("teardown: %s, routes %v", st.Phase, routes)
	}
	if _, err := f.r.Pending(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(routes) != 0 {
		t.Fatalf("a resync routed the deleted app again: %v", routes)
	}
}

func TestOrphanWithHeldLockIsLeftAlone(t *testing.T) {
	f := newFixture(t)
	dir, err := locks.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f.r.Locks = dir
	f.writeSpec("o", "recipe: echo\nversion: 1.0.0+1\n")
	if st := f.settle("o"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s", st.Phase)
	}
	// The reconciler that deployed it is gone (its locks with it) and so is the spec; a CI
	// harness holds the app's lock.
	f.r.ReleaseAll()
	if err := spec.Unplace(f.r.SpecsDir, "o"); err != nil {
		t.Fatal(err)
	}
	harness, err := dir.TryApp("o.test")
	if err != nil {
		t.Fatal(err)
	}
	f.engine.resetCalls()
	for i := 0; i < 3; i++ {
		if _, err := f.r.Reconcile(t.Context(), "o"); err != nil {
			t.Fatal(err)
		}
	}
	if w := f.engine.writes(); len(w) > 0 {
		t.Fatalf("reaped an app whose lock is held: %v", w)
	}
	if err := harness.Release(); err != nil {
		t.Fatal(err)
	}
	if st := f.settle("o"); st.Phase != spec.PhaseDeleted {
		t.Fatalf("after release: %s %s", st.Phase, st.Message)
	}
	files, _ := dir.AppLockfiles()
	if _, ok := files["o.test"]; ok {
		t.Error("the reaped app's lockfile is still there")
	}
}

func TestStepsAreCounted(t *testing.T) {
	f := newFixture(t)
	var seen []string
	f.r.Step = func(n int64, a Action) { seen = append(seen, string(a.Kind)) }
	f.writeSpec("s", "recipe: echo\nversion: 1.0.0+1\n")
	f.settle("s")
	if got := strings.Join(seen, ","); got != "create network,create config,create service" {
		t.Fatalf("steps = %s", got)
	}
}

// TestTeardownStepsAreChanges: a network still listed after its removal (a swarm node lists it
// until its last container there detaches) is waited for, not removed again, also by a
// restarted reconciler: the status says it was removed. The wait is no step, no error to show
// and no second count. (A reconciler killed before it wrote that status asks again and gets
// "not found": TestApplyAlreadyDone.)
func TestTeardownStepsAreChanges(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("s", "recipe: echo\nversion: 1.0.0+1\n")
	if st := f.settle("s"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	var seen []string
	f.r.Step = func(n int64, a Action) { seen = append(seen, string(a.Kind)) }
	f.engine.networkLinger = 6
	if err := spec.Unplace(f.r.SpecsDir, "s"); err != nil {
		t.Fatal(err)
	}
	var messages []string
	for i := range 10 {
		if i == 4 { // a restarted reconciler: the same directories and engine, nothing in memory
			f.r = &Reconciler{Engine: f.r.Engine, SpecsDir: f.r.SpecsDir, StatusDir: f.r.StatusDir,
				RecipesDir: f.r.RecipesDir, Defaults: f.r.Defaults, Now: f.r.Now, Log: f.r.Log, Step: f.r.Step}
		}
		if _, err := f.r.Reconcile(t.Context(), "s"); err != nil {
			t.Fatal(err)
		}
		st, err := spec.ReadStatus(f.r.StatusDir, "s")
		if err != nil {
			t.Fatal(err)
		}
		messages = append(messages, st.Message)
	}
	st := f.settle("s")
	if st.Phase != spec.PhaseDeleted {
		t.Fatalf("teardown: %s %s", st.Phase, st.Message)
	}
	if all := strings.Join(messages, "\n"); !strings.Contains(all, "removing: network") || strings.Contains(all, "not found") {
		t.Errorf("messages while the network lingered, want it listed as residue and no error:\n%s", all)
	}
	if got := strings.Join(seen, ","); got != "remove service,remove network,remove config,remove volume" {
		t.Errorf("steps = %s, want each object's removal once", got)
	}
	if removes := strings.Count(strings.Join(f.engine.calls, "\n"), "remove network"); removes != 1 {
		t.Errorf("the lingering network was removed %d times, want once, across the restart too", removes)
	}
	if !strings.Contains(st.Message, "removed 4 objects") {
		t.Errorf("message %q, want removed 4 objects", st.Message)
	}
}

// twoReadyApps is a fixture with apps s and other, each Ready, on two domains.
func twoReadyApps(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	f.writeSpec("s", "recipe: echo\nversion: 1.0.0+1\n")
	f.writeSpec("other", "recipe: echo\nversion: 1.0.0+1\ndomain: other.example.org\n")
	for _, app := range []string{"s", "other"} {
		if st := f.settle(app); st.Phase != spec.PhaseReady {
			t.Fatalf("install %s: %s %s", app, st.Phase, st.Message)
		}
	}
	return f
}

// deletePasses deletes app's spec and reconciles it until Deleted, at most n passes: the phase
// and message of each.
func (f *fixture) deletePasses(app string, n int) []string {
	f.t.Helper()
	if err := spec.Unplace(f.r.SpecsDir, app); err != nil {
		f.t.Fatal(err)
	}
	var phases []string
	for range n {
		if _, err := f.r.Reconcile(f.t.Context(), app); err != nil {
			f.t.Fatal(err)
		}
		st, err := spec.ReadStatus(f.r.StatusDir, app)
		if err != nil {
			f.t.Fatal(err)
		}
		phases = append(phases, string(st.Phase)+": "+st.Message)
		if st.Phase == spec.PhaseDeleted {
			break
		}
	}
	return phases
}

// TestTeardownWaitsForTasksOfRemovedServices: swarm lists the tasks of a removed service until
// their containers are gone, and a task still starting then attaches the app's network on its
// node after the network was removed. Deleted waits for those tasks (found by their service's
// labels), not only for the services: until then the status names them as what is left.
func TestTeardownWaitsForTasksOfRemovedServices(t *testing.T) {
	f := twoReadyApps(t)
	f.engine.taskLinger = 5
	phases := f.deletePasses("s", 8)
	all := strings.Join(phases, "\n")
	if !strings.Contains(all, "removing: 1 task of a removed service") {
		t.Errorf("no pass named the lingering task as what is left:\n%s", all)
	}
	// Removing the services takes one pass and the rest one more; the tasks are listed by the
	// five task lists after the removal (one a pass) and Deleted comes with the first pass
	// that finds none.
	if n := len(phases); !strings.HasPrefix(phases[n-1], "Deleted") || n < 5 {
		t.Errorf("Deleted after %d passes, want after the tasks left the list:\n%s", n, all)
	}
	if st := f.settle("other"); st.Phase != spec.PhaseReady {
		t.Errorf("the other app: %s %s, want Ready (its tasks are not the deleted app's)", st.Phase, st.Message)
	}
}

// TestTeardownRemovesStoppedContainersOfItsNode: a removed service's task whose container
// stopped keeps that container, and with it the app's volume, until swarm reaps the task; the
// teardown removes the container instead of waiting, and no other app's.
func TestTeardownRemovesStoppedContainersOfItsNode(t *testing.T) {
	f := twoReadyApps(t)
	f.engine.taskLinger, f.engine.containersHold = 50, true
	f.engine.resetCalls()
	if err := spec.Unplace(f.r.SpecsDir, "s"); err != nil {
		t.Fatal(err)
	}
	const vol = "s_test_data"
	if f.engine.volumes[vol] == nil {
		t.Fatalf("the app has no volume %s: %v", vol, slices.Collect(maps.Keys(f.engine.volumes)))
	}
	var st *spec.Status
	passes := 0
	for ; passes < 10 && f.engine.volumes[vol] != nil; passes++ {
		if _, err := f.r.Reconcile(t.Context(), "s"); err != nil {
			t.Fatal(err)
		}
		var err error
		if st, err = spec.ReadStatus(f.r.StatusDir, "s"); err != nil {
			t.Fatal(err)
		}
	}
	var removedContainers, removedVolumes []string
	for _, w := range f.engine.writes() {
		if c, ok := strings.CutPrefix(w, "remove container "); ok {
			removedContainers = append(removedContainers, c)
		}
		if v, ok := strings.CutPrefix(w, "remove volume "); ok {
			removedVolumes = append(removedVolumes, v)
		}
	}
	if len(removedContainers) != 1 || f.engine.volumes[vol] != nil {
		t.Fatalf("after %d passes: containers removed %v, volumes %v (want the app's one container, then its volume); status %s: %s",
			passes, removedContainers, removedVolumes, st.Phase, st.Message)
	}
	if passes > 4 {
		t.Errorf("the volume went after %d passes, want within 4 (the task is listed for 50)", passes)
	}
	if st := f.settle("other"); st.Phase != spec.PhaseReady {
		t.Errorf("the other app: %s %s, want Ready", st.Phase, st.Message)
	}
}

// TestTeardownThroughALateTask: a restart that crossed the removal of its service starts a task
// whose container, were the volume already removed, would make it again (seen in CI). The
// teardown waits for that task before it removes the volume, and the app ends Deleted with
// nothing left.
func TestTeardownThroughALateTask(t *testing.T) {
	f := twoReadyApps(t)
	f.engine.taskLinger, f.engine.containersHold, f.engine.lateTask = 8, true, true
	phases := f.deletePasses("s", 12)
	if last := phases[len(phases)-1]; !strings.HasPrefix(last, "Deleted") || f.engine.volumes["s_test_data"] != nil {
		t.Errorf("volume left: %v; passes:\n%s", f.engine.volumes["s_test_data"] != nil, strings.Join(phases, "\n"))
	}
}

func TestOrphanOfAnotherSpecDirectoryIsLeftToIt(t *testing.T) {
	f := newFixture(t)
	f.r.Owner = "dir-a"
	f.writeSpec("x", "recipe: echo\nversion: 1.0.0+1\n")
	if st := f.settle("x"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s", st.Phase)
	}
	if err := spec.Unplace(f.r.SpecsDir, "x"); err != nil {
		t.Fatal(err)
	}
	f.r.Owner = "dir-b" // another reconciler on the same host, another spec directory
	f.engine.resetCalls()
	if _, err := f.r.Reconcile(t.Context(), "x"); err != nil {
		t.Fatal(err)
	}
	if w := f.engine.writes(); len(w) > 0 {
		t.Fatalf("swept another directory's app: %v", w)
	}
	f.r.Owner = "" // the janitor
	if st := f.settle("x"); st.Phase != spec.PhaseDeleted {
		t.Fatalf("janitor: %s %s", st.Phase, st.Message)
	}
}

func TestTwoSpecsOneStack(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ndomain: shared.test\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("a: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("b", "recipe: echo\nversion: 1.0.0+1\ndomain: shared.test\n")
	f.engine.resetCalls()
	st := f.settle("b")
	if st.Phase != spec.PhaseInvalid || !strings.Contains(st.Message, `app "a" already uses`) {
		t.Fatalf("b: %s %s", st.Phase, st.Message)
	}
	if w := f.engine.writes(); len(w) > 0 {
		t.Fatalf("the second spec touched the first app's stack: %v", w)
	}
	// The holder keeps its stack through a resync, whatever the files' ages.
	if _, err := f.r.Pending(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("a after resync: %s %s", st.Phase, st.Message)
	}
	// The holder's spec edited (its file now the newer), then a restart: what is deployed
	// decides who holds the stack, not the files' ages.
	old := f.now.Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(f.r.SpecsDir, "b.yml"), old, old); err != nil {
		t.Fatal(err)
	}
	f.writeSpec("a", "recipe: echo\nversion: 1.1.0+1\ndomain: shared.test\n")
	f.r.stacks = nil // all a restart remembers is the swarm and the files
	if _, err := f.r.Pending(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := f.settle("a"); st.Phase != spec.PhaseReady || st.Version != "1.1.0+1" {
		t.Fatalf("a edited, after a restart: %s %s %s", st.Phase, st.Version, st.Message)
	}
	if st := f.settle("b"); st.Phase != spec.PhaseInvalid || !strings.Contains(st.Message, `app "a" already uses`) {
		t.Fatalf("b after a restart: %s %s", st.Phase, st.Message)
	}
	// Once a is gone, a changed b takes the stack.
	if err := spec.Unplace(f.r.SpecsDir, "a"); err != nil {
		t.Fatal(err)
	}
	if st := f.settle("a"); st.Phase != spec.PhaseDeleted {
		t.Fatalf("a deleted: %s", st.Phase)
	}
	f.writeSpec("b", "recipe: echo\nversion: 1.0.0+1\ndomain: shared.test\ntimeout: 9m\n")
	if st := f.settle("b"); st.Phase != spec.PhaseReady {
		t.Fatalf("b after a is gone: %s %s", st.Phase, st.Message)
	}
}

// TestTeardownThroughEngineTrouble: a teardown that meets a restarting dockerd or calls that
// fail for a while is Deleting until the engine answers again, then Deleted with nothing left;
// never Failed, and the other app is not touched. Each removal meets its trouble after the
// teardown has begun: the service removal on the first pass, the others when they come.
func TestTeardownThroughEngineTrouble(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail map[string]int
	}{
		{name: "dockerd restarting: every call fails", fail: map[string]int{"": 12}},
		{name: "service removal fails", fail: map[string]int{"remove service": 3}},
		{name: "container removal fails", fail: map[string]int{"remove container": 3}},
		{name: "volume removal fails", fail: map[string]int{"remove volume": 3}},
		{name: "network, config and volume removals fail", fail: map[string]int{"remove network": 2, "remove config": 2, "remove volume": 2}},
		{name: "listing fails between removals", fail: map[string]int{"list tasks": 3, "list volumes": 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := twoReadyApps(t)
			f.engine.taskLinger, f.engine.containersHold = 3, true
			if err := spec.Unplace(f.r.SpecsDir, "s"); err != nil {
				t.Fatal(err)
			}
			f.engine.resetCalls()
			f.engine.fail = tc.fail
			seen, errs := f.passes("s", 30)
			if len(errs) == 0 {
				t.Error("no pass met the injected trouble")
			}
			var phases []string
			for _, st := range seen {
				phases = append(phases, string(st.Phase)+": "+st.Message)
				if st.Phase != spec.PhaseDeleting && st.Phase != spec.PhaseDeleted {
					t.Fatalf("phase %s during the teardown, want Deleting until Deleted:\n%s", st.Phase, strings.Join(phases, "\n"))
				}
			}
			if last := seen[len(seen)-1]; last.Phase != spec.PhaseDeleted {
				t.Fatalf("ended %s after %d passes:\n%s", last.Phase, len(seen), strings.Join(phases, "\n"))
			}
			for name := range f.engine.volumes {
				if strings.HasPrefix(name, "s_") {
					t.Errorf("volume %s left", name)
				}
			}
			for _, w := range f.engine.writes() {
				if strings.Contains(w, "other") {
					t.Errorf("the other app was touched: %s", w)
				}
			}
			if st := f.settle("other"); st.Phase != spec.PhaseReady {
				t.Errorf("the other app: %s %s, want Ready", st.Phase, st.Message)
			}
		})
	}
}

// TestFailedAppDeletedWhileTheEngineIsDown: a Failed app's spec deleted while no engine call
// answers is Deleting at once (a Failed status would tell a poller the teardown never began),
// then Deleted.
func TestFailedAppDeletedWhileTheEngineIsDown(t *testing.T) {
	f := newFixture(t)
	f.engine.fail = map[string]int{"create service": 100}
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 5s\n")
	if seen, _ := f.passes("a", 20); seen[len(seen)-1].Phase != spec.PhaseFailed {
		t.Fatalf("install ended %s, want Failed", seen[len(seen)-1].Phase)
	}
	if err := spec.Unplace(f.r.SpecsDir, "a"); err != nil {
		t.Fatal(err)
	}
	f.engine.fail = map[string]int{"": 6}
	if _, err := f.r.Reconcile(t.Context(), "a"); err == nil {
		t.Fatal("the pass met no injected failure")
	}
	st, err := spec.ReadStatus(f.r.StatusDir, "a")
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != spec.PhaseDeleting || !strings.Contains(st.Message, "retrying") {
		t.Errorf("after a pass that could not see the swarm: %s %q, want Deleting, retrying", st.Phase, st.Message)
	}
	seen, _ := f.passes("a", 20)
	if last := seen[len(seen)-1]; last.Phase != spec.PhaseDeleted {
		t.Errorf("ended %s: %s", last.Phase, last.Message)
	}
}

// TestHandEditsDuringTeardown: while a teardown waits for the removed services' tasks, a person
// removes the app's network, config and volume by hand, and makes a service and a network of
// the names the app's had, without its labels (a `docker stack deploy` of the same stack, say).
// What was removed by hand counts as removed; the teardown ends Deleted without an error; and
// the look-alikes, not ours, are neither removed nor counted.
func TestHandEditsDuringTeardown(t *testing.T) {
	f := twoReadyApps(t)
	f.engine.taskLinger = 5
	ctx := t.Context()
	var service, net, conf, vol string
	for _, s := range f.engine.services {
		if s.Spec.Labels[swarmstate.LabelApp] == "s" {
			service = s.Spec.Name
		}
	}
	for id, n := range f.engine.networks {
		if n.Labels[swarmstate.LabelApp] == "s" {
			net = id
		}
	}
	for id, c := range f.engine.configs {
		if c.Spec.Labels[swarmstate.LabelApp] == "s" {
			conf = id
		}
	}
	for name, v := range f.engine.volumes {
		if v.Labels[swarmstate.LabelApp] == "s" {
			vol = name
		}
	}
	if service == "" || net == "" || conf == "" || vol == "" {
		t.Fatalf("app s: service %q network %q config %q volume %q", service, net, conf, vol)
	}
	netName := f.engine.networks[net].Name
	phases := f.deletePasses("s", 1)
	if !strings.HasPrefix(phases[0], "Deleting") {
		t.Fatalf("first pass: %s", phases[0])
	}
	// By hand, while the tasks linger.
	if err := f.engine.NetworkRemove(ctx, net); err != nil {
		t.Fatal(err)
	}
	if err := f.engine.ConfigRemove(ctx, conf); err != nil {
		t.Fatal(err)
	}
	f.engine.mu.Lock()
	delete(f.engine.volumes, vol)
	f.engine.mu.Unlock()
	one := uint64(1)
	if _, err := f.engine.ServiceCreate(ctx, swarm.ServiceSpec{Annotations: swarm.Annotations{Name: service},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "echo:1.0.0"}}}, swarm.ServiceCreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine.NetworkCreate(ctx, netName, network.CreateOptions{Driver: "overlay"}); err != nil {
		t.Fatal(err)
	}
	f.engine.resetCalls()
	var st *spec.Status
	for range 10 {
		if _, err := f.r.Reconcile(ctx, "s"); err != nil {
			t.Fatalf("a pass after the hand edits: %v", err)
		}
		f.now = f.now.Add(time.Second)
		var err error
		if st, err = spec.ReadStatus(f.r.StatusDir, "s"); err != nil {
			t.Fatal(err)
		}
		if st.Phase == spec.PhaseDeleted {
			break
		}
	}
	if st.Phase != spec.PhaseDeleted {
		t.Fatalf("after the hand edits: %s %s", st.Phase, st.Message)
	}
	for _, w := range f.engine.writes() {
		if strings.HasPrefix(w, "remove") && !strings.Contains(w, "container") {
			t.Errorf("the teardown removed something after the hand edits, when nothing of ours was left but tasks: %s", w)
		}
	}
	found := map[string]bool{}
	for _, s := range f.engine.services {
		found["service "+s.Spec.Name] = true
	}
	for _, n := range f.engine.networks {
		found["network "+n.Name] = true
	}
	if !found["service "+service] || !found["network "+netName] {
		t.Errorf("a look-alike made by hand is gone: %v", found)
	}
	if st := f.settle("other"); st.Phase != spec.PhaseReady {
		t.Errorf("the other app: %s %s", st.Phase, st.Message)
	}
}
