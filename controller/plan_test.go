package controller

import (
	"context"
	"errors"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/errdefs"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

func desiredService(name, app, image string) swarm.ServiceSpec {
	s := swarm.ServiceSpec{
		Annotations:  swarm.Annotations{Name: name, Labels: map[string]string{swarmstate.LabelApp: app, swarmstate.LabelOwner: "d"}},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: image}},
	}
	s.Labels[manifests.LabelSpecHash] = manifests.SpecHash(s)
	return s
}

// liveFrom is what the engine would hold after creating want through PlanServices.
func liveFrom(id string, want swarm.ServiceSpec) swarm.Service {
	plan, _ := PlanServices(swarmstate.Owner{App: want.Labels[swarmstate.LabelApp]}, map[string]swarm.ServiceSpec{want.Name: want}, nil, "t1")
	return swarm.Service{ID: id, Spec: *plan[0].Service, Meta: swarm.Meta{Version: swarm.Version{Index: 7}}}
}

func TestPlanServices(t *testing.T) {
	v1 := desiredService("s_app", "a", "img:1")
	v2 := desiredService("s_app", "a", "img:2")
	labelOnly := withLabels(v1, map[string]string{"extra": "x"})
	labelOnly.Labels[manifests.LabelSpecHash] = manifests.SpecHash(labelOnly)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rolled := liveFrom("id1", v1)
	rolled.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateCompleted, StartedAt: &t0}
	rolled.Spec.TaskTemplate.ForceUpdate = 3
	foreign := liveFrom("id9", desiredService("s_app", "other", "img:1"))
	extra := liveFrom("id2", desiredService("s_old", "a", "img:1"))

	// Hand-made changes keep our labels and move our spec to PreviousSpec.
	ours := liveFrom("id1", v1)
	envByHand := ours
	envByHand.PreviousSpec = &ours.Spec
	envByHand.Spec = withLabels(ours.Spec, nil)
	cs := *ours.Spec.TaskTemplate.ContainerSpec
	cs.Env = []string{"X=1"}
	envByHand.Spec.TaskTemplate.ContainerSpec = &cs
	three := uint64(3)
	scaledByHand := ours
	scaledByHand.PreviousSpec = &ours.Spec
	scaledByHand.Spec = withLabels(ours.Spec, nil)
	scaledByHand.Spec.Mode = swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &three}}
	setBack := ours // our fix of envByHand: the hand-made spec is now the previous one
	setBack.PreviousSpec = &envByHand.Spec
	setBack.Spec = withLabels(ours.Spec, map[string]string{LabelWritten: "t9"})

	tests := []struct {
		name    string
		desired map[string]swarm.ServiceSpec
		live    []swarm.Service
		want    []string // "kind name"
		wantErr string
		check   func(t *testing.T, plan []Action)
	}{
		{name: "missing service is created", desired: map[string]swarm.ServiceSpec{"s_app": v1},
			want: []string{"create service s_app"},
			check: func(t *testing.T, plan []Action) {
				if plan[0].Service.Labels[LabelTaskHash] == "" {
					t.Error("created service has no task hash label")
				}
			}},
		{name: "unchanged spec plans nothing", desired: map[string]swarm.ServiceSpec{"s_app": v1},
			live: []swarm.Service{liveFrom("id1", v1)}},
		{name: "changed image is an update that expects a roll", desired: map[string]swarm.ServiceSpec{"s_app": v2},
			live: []swarm.Service{rolled}, want: []string{"update service s_app"},
			check: func(t *testing.T, plan []Action) {
				a := plan[0]
				if a.ID != "id1" || a.Version.Index != 7 {
					t.Errorf("update must pass the live ID and version, got %q %v", a.ID, a.Version)
				}
				if got := a.Service.Labels[swarmstate.LabelRollFrom]; got != t0.Format(time.RFC3339Nano) {
					t.Errorf("roll-from = %q, want the previous StartedAt", got)
				}
				if a.Service.TaskTemplate.ForceUpdate != 3 {
					t.Errorf("ForceUpdate = %d, want the live value kept", a.Service.TaskTemplate.ForceUpdate)
				}
			}},
		{name: "label-only change expects no roll", desired: map[string]swarm.ServiceSpec{"s_app": labelOnly},
			live: []swarm.Service{liveFrom("id1", v1)}, want: []string{"update service s_app"},
			check: func(t *testing.T, plan []Action) {
				if _, ok := plan[0].Service.Labels[swarmstate.LabelRollFrom]; ok {
					t.Error("a label-only update must not wait for a roll")
				}
			}},
		{name: "env changed by hand is set back, with a roll", desired: map[string]swarm.ServiceSpec{"s_app": v1},
			live: []swarm.Service{envByHand}, want: []string{"update service s_app"},
			check: func(t *testing.T, plan []Action) {
				if !strings.Contains(plan[0].Reason, "by hand") || plan[0].Service.TaskTemplate.ContainerSpec.Env != nil {
					t.Errorf("reason %q env %v", plan[0].Reason, plan[0].Service.TaskTemplate.ContainerSpec.Env)
				}
				if _, ok := plan[0].Service.Labels[swarmstate.LabelRollFrom]; !ok {
					t.Error("setting back a task template change must wait for its roll")
				}
			}},
		{name: "scaled by hand is set back, without a roll", desired: map[string]swarm.ServiceSpec{"s_app": v1},
			live: []swarm.Service{scaledByHand}, want: []string{"update service s_app"},
			check: func(t *testing.T, plan []Action) {
				if _, ok := plan[0].Service.Labels[swarmstate.LabelRollFrom]; ok {
					t.Error("a replica change rolls nothing")
				}
			}},
		{name: "our own set-back is not drift", desired: map[string]swarm.ServiceSpec{"s_app": v1},
			live: []swarm.Service{setBack}},
		{name: "service of another app is never updated", desired: map[string]swarm.ServiceSpec{"s_app": v1},
			live: []swarm.Service{foreign}, wantErr: "not owned by this reconciler"},
		{name: "owned service dropped by the recipe is removed", desired: map[string]swarm.ServiceSpec{"s_app": v1},
			live: []swarm.Service{liveFrom("id1", v1), extra}, want: []string{"remove service s_old"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := PlanServices(swarmstate.Owner{App: "a"}, tt.desired, tt.live, "t2")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range plan {
				got = append(got, string(a.Kind)+" "+a.Name)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("plan = %v, want %v", got, tt.want)
			}
			if tt.check != nil {
				tt.check(t, plan)
			}
		})
	}
}

func TestPlanTeardownOrder(t *testing.T) {
	own := map[string]string{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d"}
	snap := &swarmstate.Snapshot{
		Services: []swarm.Service{{ID: "s1", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "s_app", Labels: own}}}},
		Networks: []network.Summary{{ID: "n1", Name: "s_default", Labels: own}},
		Volumes:  []*volume.Volume{{Name: "s_data", Labels: own}},
	}
	plan := PlanTeardown(swarmstate.Owner{App: "a"}, snap, nil, "", nil)
	if len(plan) != 1 || plan[0].Kind != RemoveService {
		t.Fatalf("services must go first, alone: %v", plan)
	}
	snap.Services = nil
	plan = PlanTeardown(swarmstate.Owner{App: "a"}, snap, nil, "", nil)
	if len(plan) != 2 || plan[0].Kind != RemoveNetwork || plan[1].Kind != RemoveVolume {
		t.Fatalf("then the rest: %v", plan)
	}
	// Removed already, still listed (a network until the app's container detaches): waited for.
	plan = PlanTeardown(swarmstate.Owner{App: "a"}, snap, []string{"network s_default", "service s_app"}, "", nil)
	if len(plan) != 1 || plan[0].Kind != RemoveVolume {
		t.Fatalf("an object the teardown removed is asked for again: %v", plan)
	}
}

// TestPlanTeardownStoppedContainers: only a stopped container of a removed service's task on
// the reconciler's own node, while the app has volumes, and not one the teardown removed; no
// volume nor container while a task of a removed service is still starting or stopping here,
// and a volume listed again after its removal (made again by such a task) is removed again.
func TestPlanTeardownStoppedContainers(t *testing.T) {
	own := map[string]string{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d"}
	task := func(id, service, node string, state swarm.TaskState) swarm.Task {
		return swarm.Task{ID: id, ServiceID: service, NodeID: node, Status: swarm.TaskStatus{State: state,
			ContainerStatus: &swarm.ContainerStatus{ContainerID: "c-" + id}}}
	}
	live := swarm.Service{ID: "job", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "s_volumes-n2",
		Labels: map[string]string{swarmstate.LabelApp: "a", LabelJob: jobVolumes, LabelJobNode: "n2"}}}}
	tasks := []swarm.Task{
		task("t1", "gone", "self", swarm.TaskStateShutdown),                                                                     // removed: the one
		task("t3", "gone", "n2", swarm.TaskStateRunning),                                                                        // another node's: its job's
		task("t4", "job", "self", swarm.TaskStateRunning),                                                                       // a live service's
		task("t5", "gone", "self", swarm.TaskStateFailed),                                                                       // removed already
		{ID: "t6", ServiceID: "gone", NodeID: "self", Status: swarm.TaskStatus{State: swarm.TaskStateRejected}},                 // no container
		{ID: "t7", ServiceID: "gone", Status: swarm.TaskStatus{State: swarm.TaskStateNew}, DesiredState: swarm.TaskStateRemove}, // never placed
	}
	kinds := func(plan []Action, kind Kind) []string {
		var out []string
		for _, a := range plan {
			if a.Kind == kind {
				out = append(out, a.ID)
			}
		}
		return out
	}
	snap := &swarmstate.Snapshot{Services: []swarm.Service{live}, Tasks: tasks, Volumes: []*volume.Volume{{Name: "s_data", Labels: own}}}
	removed := []string{"container c-t5", "volume s_data"}
	plan := PlanTeardown(swarmstate.Owner{App: "a"}, snap, removed, "self", nil)
	if got := kinds(plan, RemoveContainer); !slices.Equal(got, []string{"c-t1"}) {
		t.Errorf("containers removed: %v, want [c-t1]", got)
	}
	if got := kinds(plan, RemoveVolume); !slices.Equal(got, []string{"s_data"}) {
		t.Errorf("volumes removed: %v, want s_data again (listed after its removal)", got)
	}
	if got := kinds(PlanTeardown(swarmstate.Owner{App: "a"}, snap, removed, "", nil), RemoveContainer); len(got) != 0 {
		t.Errorf("no node known: %v, want none", got)
	}
	starting := &swarmstate.Snapshot{Services: snap.Services, Volumes: snap.Volumes,
		Tasks: append(slices.Clone(tasks), task("t2", "gone", "self", swarm.TaskStatePreparing))}
	if plan := PlanTeardown(swarmstate.Owner{App: "a"}, starting, removed, "self", nil); len(kinds(plan, RemoveContainer))+len(kinds(plan, RemoveVolume)) != 0 {
		t.Errorf("a task of a removed service still starting here: %v, want no volume nor container", plan)
	}
	snap.Volumes = nil
	if got := kinds(PlanTeardown(swarmstate.Owner{App: "a"}, snap, removed, "self", nil), RemoveContainer); len(got) != 0 {
		t.Errorf("no volume left to free: %v, want none", got)
	}
	// A removed job's completed task: swarm keeps a removed job's tasks, and its agent leaves
	// their containers (seen in e2e: the job's exited container outlived Deleted by minutes).
	job := task("t8", "gone-job", "self", swarm.TaskStateComplete)
	job.JobIteration = &swarm.Version{Index: 1}
	snap.Tasks = append(snap.Tasks, job)
	snap.Networks = []network.Summary{{Name: "s_default", ID: "n1", Labels: own}}
	if got := kinds(PlanTeardown(swarmstate.Owner{App: "a"}, snap, removed, "self", nil), RemoveContainer); !slices.Equal(got, []string{"c-t8"}) {
		t.Errorf("a removed job's stopped container, no volume: %v, want [c-t8]", got)
	}
}

// TestPlanTeardownFinishedJobContainersFirst: a recipe job's finished container on this node
// is removed before its service: once the service is removed, swarm may reap the job's tasks
// at once, and then nothing names the container (it carries no label of ours), which the
// node's agent keeps for good (seen on CI: TestJobReadyOnlyOnceItRan's residue). Only its
// finished tasks here, of an owned service. A job whose task still runs is first given a
// constraint no node meets, and removed only once none runs: swarm leaves a removed job's
// running task running, for good (seen on engine 20.10).
func TestPlanTeardownFinishedJobContainersFirst(t *testing.T) {
	own := map[string]string{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d"}
	job := swarm.Service{ID: "mig", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "s_migrate", Labels: own},
		Mode: swarm.ServiceMode{ReplicatedJob: &swarm.ReplicatedJob{}}}}
	app := swarm.Service{ID: "app", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "s_app", Labels: own}}}
	task := func(id, service, node string, state swarm.TaskState) swarm.Task {
		return swarm.Task{ID: id, ServiceID: service, NodeID: node, JobIteration: &swarm.Version{Index: 1},
			Status: swarm.TaskStatus{State: state, ContainerStatus: &swarm.ContainerStatus{ContainerID: "c-" + id}}}
	}
	snap := &swarmstate.Snapshot{Services: []swarm.Service{app, job}, Tasks: []swarm.Task{
		task("t1", "mig", "self", swarm.TaskStateComplete), // the one
		task("t2", "mig", "n2", swarm.TaskStateComplete),   // another node's
		task("t3", "mig", "self", swarm.TaskStateRunning),  // still running
		{ID: "t4", ServiceID: "app", NodeID: "self", Status: swarm.TaskStatus{State: swarm.TaskStateShutdown,
			ContainerStatus: &swarm.ContainerStatus{ContainerID: "c-t4"}}}, // not a job's: swarm removes it
	}}
	plan := func() (got []string) {
		for _, a := range PlanTeardown(swarmstate.Owner{App: "a", Dir: "d"}, snap, nil, "self", nil) {
			got = append(got, string(a.Kind)+" "+a.Name)
		}
		return got
	}
	// t3 runs: the job is made to run nowhere first (a removed job's running task runs on).
	if got, want := plan(), []string{"remove container c-t1", "remove service s_app", "update service s_migrate"}; !slices.Equal(got, want) {
		t.Errorf("plan %v, want %v", got, want)
	}
	if c := stopJob(job).Service.TaskTemplate.Placement.Constraints; !slices.Equal(c, []string{jobStopped}) {
		t.Errorf("the job's constraints after the update: %v, want [%s]", c, jobStopped)
	}
	snap.Services[1] = swarm.Service{ID: "mig", Spec: *stopJob(job).Service}
	snap.Services[1].Spec.Labels = own
	// Made so, t3 still stopping: nothing more of the job, and nothing after the services.
	snap.Networks = []network.Summary{{Name: "s_default", ID: "n1", Labels: own}}
	if got, want := plan(), []string{"remove container c-t1", "remove service s_app"}; !slices.Equal(got, want) {
		t.Errorf("plan while the job's task stops %v, want %v", got, want)
	}
	// t3 ended, and a task of the job's new run pending on no node: the job goes.
	snap.Tasks[2].Status.State = swarm.TaskStateShutdown
	snap.Tasks = append(snap.Tasks, swarm.Task{ID: "t5", ServiceID: "mig", JobIteration: &swarm.Version{Index: 2}, Status: swarm.TaskStatus{State: swarm.TaskStatePending}})
	if got, want := plan(), []string{"remove container c-t1", "remove container c-t3", "remove service s_app", "remove service s_migrate"}; !slices.Equal(got, want) {
		t.Errorf("plan once the job's task stopped %v, want %v", got, want)
	}
	var none []string
	for _, a := range PlanTeardown(swarmstate.Owner{App: "a", Dir: "d"}, snap, []string{"container c-t1", "container c-t3"}, "self", nil) {
		if a.Kind == RemoveContainer {
			none = append(none, a.Name)
		}
	}
	if len(none) != 0 {
		t.Errorf("a container the teardown removed already is asked again: %v", none)
	}
}

// TestApplyAlreadyDone: what the engine answers when the goal is already reached is no change
// and no error; any other failure is an error.
func TestApplyAlreadyDone(t *testing.T) {
	own := map[string]string{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d"}
	for _, tc := range []struct {
		name        string
		kind        Kind
		err         error
		wantChanged bool
		wantErr     bool
	}{
		{"removed", RemoveNetwork, nil, true, false},
		{"typed not found", RemoveNetwork, errdefs.NotFound(errors.New("network n1 not found")), false, false},
		{"engine 20.10's 500 for a lingering network", RemoveNetwork, errors.New("Error response from daemon: network n1 not found"), false, false},
		{"another network's not found", RemoveNetwork, errors.New("Error response from daemon: network n2 not found"), false, true},
		{"in use", RemoveVolume, errors.New("Error response from daemon: remove n1: volume is in use"), false, true},
		{"not found of a create", CreateNetwork, errdefs.NotFound(errors.New("no such driver")), false, true},
		{"name taken: the snapshot listed no object of ours by it", CreateNetwork, errdefs.Conflict(errors.New("network n1 exists")), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := answering{err: tc.err}
			a := Action{Kind: tc.kind, Name: "x", ID: "n1", Labels: own, Network: &network.CreateOptions{}}
			changed, err := apply(t.Context(), e, swarmstate.Owner{App: "a"}, a)
			if changed != tc.wantChanged || (err != nil) != tc.wantErr {
				t.Errorf("apply = %v, %v; want changed %v, error %v", changed, err, tc.wantChanged, tc.wantErr)
			}
		})
	}
}

// answering is an Engine whose network and volume calls all answer err.
type answering struct {
	Engine
	err error
}

func (e answering) NetworkRemove(context.Context, string) error      { return e.err }
func (e answering) VolumeRemove(context.Context, string, bool) error { return e.err }
func (e answering) NetworkCreate(context.Context, string, network.CreateOptions) (network.CreateResponse, error) {
	return network.CreateResponse{}, e.err
}

// TestNeverTouchWhatWeDoNotOwn is a property test of the plans: whatever mix of labels the
// swarm holds (other apps, other owners' objects of the same app, look-alikes made by hand),
// no plan updates or removes an object that does not carry both the app's and the owner's
// label, and apply refuses such an action without calling the engine.
// TestNothingUnownedIsEverUsed checks the same through whole passes on the fake engine.
func TestNeverTouchWhatWeDoNotOwn(t *testing.T) {
	for _, own := range []swarmstate.Owner{{App: "a", Dir: "d1"}, {App: "a"}} { // an owner, the janitor
		t.Run("owner "+own.Dir, func(t *testing.T) { testNeverTouchWhatWeDoNotOwn(t, own) })
	}
}

func testNeverTouchWhatWeDoNotOwn(t *testing.T, own swarmstate.Owner) {
	rng := rand.New(rand.NewSource(1))
	apps := []string{"a", "b", "", "a "}
	dirs := []string{"d1", "d2", "", "-"} // "-": an owner label with no value
	label := func() map[string]string {
		l := map[string]string{swarmstate.LabelNamespace: "s"}
		if a := apps[rng.Intn(len(apps))]; a != "" {
			l[swarmstate.LabelApp] = a
		}
		switch d := dirs[rng.Intn(len(dirs))]; d {
		case "":
		case "-":
			l[swarmstate.LabelOwner] = ""
		default:
			l[swarmstate.LabelOwner] = d
		}
		return l
	}
	for i := 0; i < 2000; i++ {
		snap := &swarmstate.Snapshot{}
		live := []swarm.Service{}
		for j := rng.Intn(4); j > 0; j-- {
			svc := swarm.Service{ID: "s" + string(rune('0'+j)), Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "s_" + string(rune('a'+j)), Labels: label()}}}
			snap.Services = append(snap.Services, svc)
			live = append(live, svc)
		}
		if rng.Intn(2) == 0 {
			snap.Services = nil
		}
		for j := rng.Intn(3); j > 0; j-- {
			snap.Networks = append(snap.Networks, network.Summary{ID: "n", Name: "n", Labels: label()})
			snap.Volumes = append(snap.Volumes, &volume.Volume{Name: "v", Labels: label()})
			snap.Configs = append(snap.Configs, swarm.Config{ID: "c", Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "c", Labels: label()}}})
			snap.Secrets = append(snap.Secrets, swarm.Secret{ID: "x", Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: "x", Labels: label()}}})
		}
		plan := PlanTeardown(own, snap, nil, "", nil)
		desired := map[string]swarm.ServiceSpec{}
		if rng.Intn(2) == 0 {
			desired["s_b"] = desiredService("s_b", "a", "img")
		}
		if more, err := PlanServices(own, desired, live, "t"); err == nil {
			plan = append(plan, more...)
		}
		for _, a := range plan {
			if a.Kind == CreateService {
				continue
			}
			if !own.Owns(a.Labels) || a.Labels[swarmstate.LabelApp] != "a" || a.Labels[swarmstate.LabelOwner] == "" ||
				(own.Dir != "" && a.Labels[swarmstate.LabelOwner] != own.Dir) {
				t.Fatalf("plan touches an object not owned by %+v: %v labels %v", own, a, a.Labels)
			}
		}
	}
	f := newFakeEngine()
	foreign := []map[string]string{
		{swarmstate.LabelApp: "b", swarmstate.LabelOwner: "d1"},
		{swarmstate.LabelApp: "a"},
		{swarmstate.LabelApp: "a", swarmstate.LabelOwner: ""},
		{},
	}
	if own.Dir != "" {
		foreign = append(foreign, map[string]string{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d2"})
	}
	for _, labels := range foreign {
		for _, kind := range []Kind{UpdateService, RollbackService, RemoveService, RemoveNetwork, RemoveConfig, RemoveSecret, RemoveVolume} {
			_, err := apply(t.Context(), f, own, Action{Kind: kind, Name: "x", ID: "x", Labels: labels})
			if err == nil || !strings.Contains(err.Error(), "not owned") {
				t.Errorf("%s of an object labelled %v: err = %v", kind, labels, err)
			}
		}
	}
	if w := f.writes(); len(w) > 0 {
		t.Errorf("engine called for foreign objects: %v", w)
	}
}

// TestPruneAfterUpgrade: a config whose version an upgrade bumped is removed once the upgrade
// converged, unless the service's previous spec (swarm's rollback target) still uses it.
func TestPruneAfterUpgrade(t *testing.T) {
	f := newFixture(t)
	makeRecipeOf(t, f.r.RecipesDir, "versioned", strings.Replace(testCompose, "${STACK_NAME}_conf_v1", "${STACK_NAME}_conf_${CONF_VERSION:-v1}", 1), "1.0.0+1")
	configs := func() []string {
		var names []string
		for _, c := range f.engine.configs {
			names = append(names, strings.TrimPrefix(c.Spec.Name, "a_test_"))
		}
		slices.Sort(names)
		return names
	}
	for _, step := range []struct {
		version string
		want    []string
	}{
		{"v1", []string{"conf_v1"}},
		{"v2", []string{"conf_v1", "conf_v2"}}, // v1: the rollback target's
		{"v3", []string{"conf_v2", "conf_v3"}}, // v1 pruned; v2: the rollback target's
	} {
		f.writeSpec("a", "recipe: versioned\nversion: 1.0.0+1\nminReady: 0s\nenv:\n  CONF_VERSION: "+step.version+"\n")
		if st := f.settle("a"); st.Phase != spec.PhaseReady {
			t.Fatalf("%s: %s %s", step.version, st.Phase, st.Message)
		}
		if got := configs(); !slices.Equal(got, step.want) {
			t.Errorf("after %s: configs %v, want %v", step.version, got, step.want)
		}
	}
}

// TestJobsLeaving: a release without the recipe's job removes it as a teardown does: the
// finished containers of its tasks on this node first, and, while its task runs, not at all
// but made to run nowhere (swarm leaves a removed job's running task running). Other removals
// and other jobs' containers are left as they are.
func TestJobsLeaving(t *testing.T) {
	own := map[string]string{swarmstate.LabelApp: "a", swarmstate.LabelOwner: "d"}
	job := func(id, name string) swarm.Service {
		return swarm.Service{ID: id, Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: name, Labels: own},
			Mode: swarm.ServiceMode{ReplicatedJob: &swarm.ReplicatedJob{}}}}
	}
	task := func(id, service string, state swarm.TaskState) swarm.Task {
		return swarm.Task{ID: id, ServiceID: service, NodeID: "self", Status: swarm.TaskStatus{State: state, ContainerStatus: &swarm.ContainerStatus{ContainerID: "c-" + id}}}
	}
	snap := &swarmstate.Snapshot{
		Services: []swarm.Service{job("old", "s_old"), job("run", "s_run"), job("kept", "s_kept"),
			{ID: "web", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "s_web", Labels: own}}}},
		Tasks: []swarm.Task{task("t1", "old", swarm.TaskStateComplete), task("t2", "run", swarm.TaskStateRunning), task("t3", "kept", swarm.TaskStateComplete)},
	}
	remove := func(s swarm.Service) Action {
		return Action{Kind: RemoveService, Name: s.Spec.Name, ID: s.ID, Labels: s.Spec.Labels, Reason: "no longer in the recipe"}
	}
	plan := []Action{remove(snap.Services[0]), remove(snap.Services[1]), remove(snap.Services[3])}
	var got []string
	for _, a := range jobsLeaving(swarmstate.Owner{App: "a", Dir: "d"}, plan, snap, "self", nil) {
		got = append(got, string(a.Kind)+" "+a.Name)
	}
	want := []string{"remove container c-t1", "remove service s_old", "update service s_run", "remove service s_web"}
	if !slices.Equal(got, want) {
		t.Errorf("plan %v, want %v", got, want)
	}
}
