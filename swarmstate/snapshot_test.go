package swarmstate

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
)

// rollingReader is an engine whose one service finishes its roll while the service list is
// being served: before it, the old task runs and the roll is updating; after it, the roll is
// completed and the new task runs (the old one shut down).
type rollingReader struct {
	mu           sync.Mutex
	rolled       bool
	tasksEntered chan struct{}
	once         sync.Once
}

func (r *rollingReader) ServiceList(context.Context, swarm.ServiceListOptions) ([]swarm.Service, error) {
	// Give a task list made at the same time the chance to be served first, as a busy
	// engine may; a task list that waits for this one is never entered.
	select {
	case <-r.tasksEntered:
	case <-time.After(100 * time.Millisecond):
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rolled = true
	return []swarm.Service{{
		ID:           "s1",
		Spec:         swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "app_web", Labels: map[string]string{LabelApp: "app", LabelOwner: "d"}}},
		UpdateStatus: &swarm.UpdateStatus{State: swarm.UpdateStateCompleted},
	}}, nil
}

func (r *rollingReader) TaskList(context.Context, swarm.TaskListOptions) ([]swarm.Task, error) {
	r.once.Do(func() { close(r.tasksEntered) })
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.rolled {
		return []swarm.Task{{ID: "old", ServiceID: "s1", DesiredState: swarm.TaskStateRunning,
			Status: swarm.TaskStatus{State: swarm.TaskStateRunning}}}, nil
	}
	return []swarm.Task{
		{ID: "old", ServiceID: "s1", DesiredState: swarm.TaskStateShutdown, Status: swarm.TaskStatus{State: swarm.TaskStateShutdown}},
		{ID: "new", ServiceID: "s1", DesiredState: swarm.TaskStateRunning, Status: swarm.TaskStatus{State: swarm.TaskStateRunning}},
	}, nil
}

func (r *rollingReader) NetworkList(context.Context, network.ListOptions) ([]network.Summary, error) {
	return nil, nil
}

func (r *rollingReader) SecretList(context.Context, swarm.SecretListOptions) ([]swarm.Secret, error) {
	return nil, nil
}

func (r *rollingReader) ConfigList(context.Context, swarm.ConfigListOptions) ([]swarm.Config, error) {
	return nil, nil
}

func (r *rollingReader) VolumeList(context.Context, volume.ListOptions) (volume.ListResponse, error) {
	return volume.ListResponse{}, nil
}

// TestTakeTasksAfterServices: a snapshot that shows a roll completed shows the tasks that
// completed it. Paired with a task list served before the roll ended, the old spec's running
// task would make the service converged on a release that never ran.
func TestTakeTasksAfterServices(t *testing.T) {
	r := &rollingReader{tasksEntered: make(chan struct{})}
	s, err := Take(context.Background(), r, Owner{App: "app", Dir: "d"})
	if err != nil {
		t.Fatal(err)
	}
	var running []string
	for _, task := range s.Tasks {
		if task.DesiredState == swarm.TaskStateRunning {
			running = append(running, task.ID)
		}
	}
	if len(running) != 1 || running[0] != "new" {
		t.Fatalf("the service's roll is completed but the tasks meant to run are %v, want [new]: the task list was served before the service list", running)
	}
}

// TestWithout: a stack's objects go, tasks with them, also those of a removed service, which
// only their container's labels tie to the stack; the rest stays, a kept service's tasks
// whatever their containers' labels.
func TestWithout(t *testing.T) {
	ns := func(stack string) map[string]string { return map[string]string{LabelNamespace: stack} }
	s := &Snapshot{
		Services: []swarm.Service{{ID: "s1", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Labels: ns("a")}}},
			{ID: "s2", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Labels: ns("b")}}}},
		Tasks: []swarm.Task{{ID: "t1", ServiceID: "s1", Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Labels: ns("b")}}}, {ID: "t2", ServiceID: "s2"},
			{ID: "t3", ServiceID: "gone", Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Labels: ns("b")}}},
			{ID: "t4", ServiceID: "gone2"}},
		Networks: []network.Summary{{Name: "na", Labels: ns("a")}, {Name: "nb", Labels: ns("b")}},
		Secrets:  []swarm.Secret{{ID: "xb", Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Labels: ns("b")}}}},
		Configs:  []swarm.Config{{ID: "ca", Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Labels: ns("a")}}}},
		Volumes:  []*volume.Volume{{Name: "va", Labels: ns("a")}, {Name: "vb", Labels: ns("b")}},
	}
	got := s.Without(map[string]bool{"b": true})
	ids := append(idsOf(got.Services, func(o swarm.Service) string { return o.ID }), idsOf(got.Tasks, func(o swarm.Task) string { return o.ID })...)
	ids = append(ids, idsOf(got.Networks, func(o network.Summary) string { return o.Name })...)
	ids = append(ids, idsOf(got.Secrets, func(o swarm.Secret) string { return o.ID })...)
	ids = append(ids, idsOf(got.Configs, func(o swarm.Config) string { return o.ID })...)
	ids = append(ids, idsOf(got.Volumes, func(o *volume.Volume) string { return o.Name })...)
	if strings.Join(ids, " ") != "s1 t1 t4 na ca va" {
		t.Errorf("without b: %v", ids)
	}
	if s.Without(nil) != s {
		t.Error("without nothing: a copy")
	}
}

func idsOf[T any](list []T, id func(T) string) []string {
	var out []string
	for _, o := range list {
		out = append(out, id(o))
	}
	return out
}

func TestOwns(t *testing.T) {
	labels := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		owner  Owner
		labels map[string]string
		want   bool
	}{
		{"app and owner", Owner{App: "a", Dir: "d"}, labels(LabelApp, "a", LabelOwner, "d"), true},
		{"another owner", Owner{App: "a", Dir: "d"}, labels(LabelApp, "a", LabelOwner, "e"), false},
		{"another app", Owner{App: "a", Dir: "d"}, labels(LabelApp, "b", LabelOwner, "d"), false},
		{"no owner label", Owner{App: "a", Dir: "d"}, labels(LabelApp, "a"), false},
		{"any app of d", Owner{Dir: "d"}, labels(LabelApp, "b", LabelOwner, "d"), true},
		{"any app, no app label", Owner{Dir: "d"}, labels(LabelOwner, "d"), false},
		{"the janitor: any owner", Owner{}, labels(LabelApp, "a", LabelOwner, "e"), true},
		{"the janitor: its own jobs", Owner{App: "a"}, labels(LabelApp, "a", LabelOwner, JanitorOwner), true},
		{"the janitor: no owner label, made by hand", Owner{}, labels(LabelApp, "a", LabelNamespace, "a_test"), false},
		{"the janitor: an empty owner label", Owner{App: "a"}, labels(LabelApp, "a", LabelOwner, ""), false},
		{"the janitor: an earlier release's job, with no owner label", Owner{App: "a"}, labels(LabelApp, "a", LabelJob, "volumes"), true},
	} {
		if got := tc.owner.Owns(tc.labels); got != tc.want {
			t.Errorf("%s: %+v owns %v = %v, want %v", tc.name, tc.owner, tc.labels, got, tc.want)
		}
	}
}

// keyReader serves what the janitor's filter (the app label) lets through: objects whose owner
// label is empty, beside an owned one of each kind.
type keyReader struct{}

func (keyReader) ServiceList(context.Context, swarm.ServiceListOptions) ([]swarm.Service, error) {
	return []swarm.Service{
		{ID: "s1", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "a_app", Labels: map[string]string{LabelApp: "a", LabelOwner: "d"}}}},
		{ID: "s2", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "b_app", Labels: map[string]string{LabelApp: "b", LabelOwner: ""}}}},
	}, nil
}

func (keyReader) TaskList(context.Context, swarm.TaskListOptions) ([]swarm.Task, error) {
	return []swarm.Task{{ID: "t1", ServiceID: "s1"}, {ID: "t2", ServiceID: "s2"}, {ID: "t3", ServiceID: "removed"}}, nil
}

func (keyReader) NetworkList(context.Context, network.ListOptions) ([]network.Summary, error) {
	return []network.Summary{{ID: "n1", Name: "n1", Labels: map[string]string{LabelApp: "a", LabelOwner: "d"}}, {ID: "n2", Name: "n2", Labels: map[string]string{LabelApp: "b", LabelOwner: ""}}}, nil
}

func (keyReader) SecretList(context.Context, swarm.SecretListOptions) ([]swarm.Secret, error) {
	return []swarm.Secret{{ID: "x1", Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: "x1", Labels: map[string]string{LabelApp: "a", LabelOwner: "d"}}}},
		{ID: "x2", Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: "x2", Labels: map[string]string{LabelApp: "b", LabelOwner: ""}}}}}, nil
}

func (keyReader) ConfigList(context.Context, swarm.ConfigListOptions) ([]swarm.Config, error) {
	return []swarm.Config{{ID: "c1", Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "c1", Labels: map[string]string{LabelApp: "a", LabelOwner: "d"}}}},
		{ID: "c2", Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "c2", Labels: map[string]string{LabelApp: "b", LabelOwner: ""}}}}}, nil
}

func (keyReader) VolumeList(context.Context, volume.ListOptions) (volume.ListResponse, error) {
	return volume.ListResponse{Volumes: []*volume.Volume{{Name: "a_data", Labels: map[string]string{LabelApp: "a", LabelOwner: "d"}},
		{Name: "b_data", Labels: map[string]string{LabelApp: "b", LabelOwner: ""}}}}, nil
}

// TestTakeKeepsOnlyOwned: the janitor's snapshot holds what some reconciler made, not what an
// empty owner label lets through its filter, nor the tasks of such a service; the tasks of a
// service removed a moment ago stay.
func TestTakeKeepsOnlyOwned(t *testing.T) {
	s, err := Take(t.Context(), keyReader{}, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	got := s.Residual()
	for _, x := range s.Tasks {
		got = append(got, "task "+x.ID)
	}
	if want := "service a_app network n1 secret x1 config c1 volume a_data task t1 task t3"; strings.Join(got, " ") != want {
		t.Errorf("snapshot holds %v, want %s", got, want)
	}
}
