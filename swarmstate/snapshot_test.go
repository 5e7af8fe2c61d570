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
		Spec:         swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "app_web"}},
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
