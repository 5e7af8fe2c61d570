package controller

import (
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// TestLogsWanted: the tasks whose logs a pass reads are the failed ones the status shows, and
// only those whose logs the status does not carry yet.
func TestLogsWanted(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	one := uint64(1)
	svc := swarm.Service{ID: "s1", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "a_app"},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}}}}
	task := func(id string, state swarm.TaskState, err string, age time.Duration) swarm.Task {
		return swarm.Task{ID: id, ServiceID: "s1", DesiredState: swarm.TaskStateRunning,
			Status: swarm.TaskStatus{State: state, Err: err, Timestamp: at.Add(-age)}}
	}
	running := task("run", swarm.TaskStateRunning, "", 0)
	failed := task("bad", swarm.TaskStateFailed, "task: non-zero exit (3)", time.Minute)
	rejected := task("rej", swarm.TaskStateRejected, "No such image: x", 2*time.Minute)
	withLogs := &spec.Status{Services: []spec.ServiceStatus{{Name: "a_app", Tasks: []spec.TaskStatus{{ID: "bad", Logs: []string{"boom"}}}}}}
	tests := []struct {
		name  string
		tasks []swarm.Task
		prev  *spec.Status
		want  []string
	}{
		{"all running: none", []swarm.Task{running}, nil, nil},
		{"a failed task and a rejected one", []swarm.Task{running, failed, rejected}, nil, []string{"bad", "rej"}},
		{"logs already in the status are not read again", []swarm.Task{running, failed, rejected}, withLogs, []string{"rej"}},
		{"no tasks", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, w := range logsWanted(&swarmstate.Snapshot{Services: []swarm.Service{svc}, Tasks: tt.tasks}, tt.prev) {
				got = append(got, w.ID)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("logs wanted of %v, want %v", got, tt.want)
			}
		})
	}
}
