package swarmstate

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

func replicated(id string, n uint64, labels map[string]string, us *swarm.UpdateStatus) swarm.Service {
	return swarm.Service{
		ID: id,
		Spec: swarm.ServiceSpec{
			Annotations:  swarm.Annotations{Name: id, Labels: labels},
			Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &n}},
			TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "img"}},
		},
		UpdateStatus: us,
	}
}

func task(svc string, desired, state swarm.TaskState, err string) swarm.Task {
	return swarm.Task{ServiceID: svc, DesiredState: desired, Status: swarm.TaskStatus{State: state, Err: err, Timestamp: time.Unix(100, 0)}}
}

// onTemplate gives t the spec replicated() gives its service, as swarm copies the service's
// template into every task it creates.
func onTemplate(t swarm.Task) swarm.Task {
	t.Spec = swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "img"}}
	return t
}

func TestConverged(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Minute)
	running := swarm.TaskStateRunning
	rollFrom := func(ts string) map[string]string { return map[string]string{LabelRollFrom: ts} }
	tests := []struct {
		name       string
		services   []swarm.Service
		tasks      []swarm.Task
		converged  bool
		rolledBack bool
		reason     string
	}{
		{"replicas 1/1", []swarm.Service{replicated("a", 1, nil, nil)}, []swarm.Task{task("a", running, running, "")}, true, false, ""},
		{"replicas 0/1 with task error", []swarm.Service{replicated("a", 1, nil, nil)},
			[]swarm.Task{task("a", swarm.TaskStateShutdown, swarm.TaskStateRejected, "No such image: x:1")}, false, false, "No such image: x:1"},
		{"0/0 converges", []swarm.Service{replicated("a", 0, nil, nil)}, nil, true, false, ""},
		{"completed one-shot counts", []swarm.Service{replicated("a", 1, nil, nil)},
			[]swarm.Task{task("a", running, swarm.TaskStateComplete, "")}, true, false, ""},
		{"shutdown old task does not count", []swarm.Service{replicated("a", 1, nil, nil)},
			[]swarm.Task{task("a", swarm.TaskStateShutdown, running, "")}, false, false, "0/1 tasks running"},
		{"too many running while old stops", []swarm.Service{replicated("a", 1, nil, nil)},
			[]swarm.Task{task("a", running, running, ""), task("a", running, running, "")}, false, false, "2/1"},
		{"nil update status is no update", []swarm.Service{replicated("a", 1, nil, nil)}, []swarm.Task{task("a", running, running, "")}, true, false, ""},
		{"update in flight blocks", []swarm.Service{replicated("a", 1, nil, &swarm.UpdateStatus{State: swarm.UpdateStateUpdating})},
			[]swarm.Task{task("a", running, running, "")}, false, false, "update updating"},
		{"rollback in flight blocks", []swarm.Service{replicated("a", 1, nil, &swarm.UpdateStatus{State: swarm.UpdateStateRollbackStarted})},
			[]swarm.Task{task("a", running, running, "")}, false, false, "rollback_started"},
		{"stale paused does not block an install", []swarm.Service{replicated("a", 1, nil, &swarm.UpdateStatus{State: swarm.UpdateStatePaused})},
			[]swarm.Task{onTemplate(task("a", running, running, ""))}, true, false, ""},
		{"stale rollback_paused does not block an install", []swarm.Service{replicated("a", 1, nil, &swarm.UpdateStatus{State: swarm.UpdateStateRollbackPaused})},
			[]swarm.Task{onTemplate(task("a", running, running, ""))}, true, false, ""},
		{"first roll of a service completed", []swarm.Service{replicated("a", 1, rollFrom(""), &swarm.UpdateStatus{State: swarm.UpdateStateCompleted, StartedAt: &t1})},
			[]swarm.Task{task("a", running, running, "")}, true, false, ""},
		{"our roll not started yet (status reset to nil)", []swarm.Service{replicated("a", 1, rollFrom(t0.Format(time.RFC3339Nano)), nil)},
			[]swarm.Task{task("a", running, running, "")}, false, false, "waiting for swarm"},
		{"stale completed from previous deploy is not success", []swarm.Service{replicated("a", 1, rollFrom(t0.Format(time.RFC3339Nano)), &swarm.UpdateStatus{State: swarm.UpdateStateCompleted, StartedAt: &t0})},
			[]swarm.Task{task("a", running, running, "")}, false, false, "waiting for swarm"},
		{"our roll completed", []swarm.Service{replicated("a", 1, rollFrom(t0.Format(time.RFC3339Nano)), &swarm.UpdateStatus{State: swarm.UpdateStateCompleted, StartedAt: &t1})},
			[]swarm.Task{task("a", running, running, "")}, true, false, ""},
		{"stale rollback from before this attempt is not ours", []swarm.Service{replicated("a", 1, nil, &swarm.UpdateStatus{State: swarm.UpdateStateRollbackCompleted, StartedAt: &t0})},
			[]swarm.Task{task("a", running, running, "")}, true, false, ""},
		{"rollback restored labels without roll-from", []swarm.Service{replicated("a", 1, nil, &swarm.UpdateStatus{State: swarm.UpdateStateRollbackCompleted, StartedAt: &t1, Message: "rollback completed"})},
			[]swarm.Task{task("a", running, running, "")}, false, true, "rollback_completed"},
		{"our roll rolled back", []swarm.Service{replicated("a", 1, rollFrom(t0.Format(time.RFC3339Nano)), &swarm.UpdateStatus{State: swarm.UpdateStateRollbackCompleted, StartedAt: &t1, Message: "rollback completed"})},
			[]swarm.Task{task("a", running, running, "")}, false, true, "rollback_completed"},
		{"our roll paused", []swarm.Service{replicated("a", 1, rollFrom(""), &swarm.UpdateStatus{State: swarm.UpdateStatePaused, StartedAt: &t1, Message: "update paused due to failure"})},
			[]swarm.Task{task("a", running, running, "")}, false, true, "paused"},
		{"one of two services waiting", []swarm.Service{replicated("a", 1, nil, nil), replicated("b", 2, nil, nil)},
			[]swarm.Task{task("a", running, running, ""), task("b", running, running, "")}, false, false, "1/2 services converged; b: 1/2 tasks running"},
		{"no services is not converged", nil, nil, false, false, "no services"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Converged(tt.services, tt.tasks, t0.Add(time.Second))
			if v.Converged != tt.converged || v.RolledBack != tt.rolledBack {
				t.Fatalf("converged=%v rolledBack=%v, want %v %v (message %q)", v.Converged, v.RolledBack, tt.converged, tt.rolledBack, v.Message)
			}
			if !strings.Contains(v.Message, tt.reason) {
				t.Errorf("message %q does not contain %q", v.Message, tt.reason)
			}
		})
	}
}

func TestRolloutFailure(t *testing.T) {
	t1 := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	failed := swarm.Task{ServiceID: "a", DesiredState: swarm.TaskStateShutdown, Status: swarm.TaskStatus{
		State: swarm.TaskStateFailed, Err: "task: non-zero exit (3)", Timestamp: t1,
		ContainerStatus: &swarm.ContainerStatus{ExitCode: 3}}}
	for state, want := range map[swarm.UpdateState]string{
		swarm.UpdateStateRollbackCompleted: "a rolled back: the running spec is the previous one; task failed: task: non-zero exit (3) (exit code 3)",
		swarm.UpdateStatePaused:            "a update paused: the new spec is in place but its tasks failed",
	} {
		v := Converged([]swarm.Service{replicated("a", 1, nil, &swarm.UpdateStatus{State: state, StartedAt: &t1})}, []swarm.Task{failed}, t1.Add(-time.Second))
		if !v.RolledBack || !strings.Contains(v.RolloutFailure(), want) {
			t.Errorf("%s: %q, want %q", state, v.RolloutFailure(), want)
		}
	}
	// CI: the rollback's task of the old spec waits for the host-mode port the crash held; the
	// message still names the crash, not the scheduler's note.
	waiting := swarm.Task{ServiceID: "a", DesiredState: swarm.TaskStateRunning, Status: swarm.TaskStatus{
		State: swarm.TaskStatePending, Err: "no suitable node (host-mode port already in use on 1 node)", Timestamp: t1.Add(time.Second)}}
	v := Converged([]swarm.Service{replicated("a", 1, nil, &swarm.UpdateStatus{State: swarm.UpdateStateRollbackCompleted, StartedAt: &t1})},
		[]swarm.Task{waiting, failed}, t1.Add(-time.Second))
	if want := "task failed: task: non-zero exit (3) (exit code 3)"; !strings.Contains(v.RolloutFailure(), want) {
		t.Errorf("a task waiting for its port before the crash: %q, want %q", v.RolloutFailure(), want)
	}
}

// TestFailedTaskOutlivesNewerTasks: the task whose failure explains a rollback stays in the
// diagnostics (and the message) when swarm started newer tasks after it.
func TestFailedTaskOutlivesNewerTasks(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	task := func(sec int, state swarm.TaskState, err string, exit int) swarm.Task {
		return swarm.Task{ID: fmt.Sprint(sec), ServiceID: "a", DesiredState: swarm.TaskStateShutdown, Status: swarm.TaskStatus{
			State: state, Err: err, Timestamp: t0.Add(time.Duration(sec) * time.Second),
			ContainerStatus: &swarm.ContainerStatus{ExitCode: exit}}}
	}
	crashed := task(1, swarm.TaskStateFailed, "task: non-zero exit (3)", 3)
	for _, tc := range []struct {
		name    string
		tasks   []swarm.Task
		wantIDs []string
	}{
		{"none failed", []swarm.Task{task(1, swarm.TaskStateShutdown, "", 0), task(2, swarm.TaskStateRunning, "", 0)}, []string{"2", "1"}},
		{"failed among the newest", []swarm.Task{crashed, task(2, swarm.TaskStateShutdown, "", 0)}, []string{"2", "1"}},
		{"failed behind three newer", []swarm.Task{crashed, task(2, swarm.TaskStateShutdown, "", 0), task(3, swarm.TaskStateShutdown, "", 0),
			task(4, swarm.TaskStateShutdown, "", 0), task(5, swarm.TaskStateRunning, "", 0)}, []string{"5", "4", "3", "1"}},
		{"newest failure kept", []swarm.Task{crashed, task(2, swarm.TaskStateRejected, "no suitable node", 0), task(3, swarm.TaskStateShutdown, "", 0),
			task(4, swarm.TaskStateShutdown, "", 0), task(5, swarm.TaskStateRunning, "", 0)}, []string{"5", "4", "3", "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ids []string
			for _, task := range diagnostic(tc.tasks, 3) {
				ids = append(ids, task.ID)
			}
			if !slices.Equal(ids, tc.wantIDs) {
				t.Errorf("diagnostic tasks %v, want %v", ids, tc.wantIDs)
			}
		})
	}
	t1 := t0.Add(time.Second)
	tasks := []swarm.Task{crashed, task(2, swarm.TaskStateShutdown, "", 0), task(3, swarm.TaskStateShutdown, "", 0), task(4, swarm.TaskStateRunning, "", 0)}
	for i := range tasks {
		tasks[i].DesiredState = swarm.TaskStateShutdown
	}
	tasks[3].DesiredState = swarm.TaskStateRunning
	v := Converged([]swarm.Service{replicated("a", 1, nil, &swarm.UpdateStatus{State: swarm.UpdateStateRollbackCompleted, StartedAt: &t1})}, tasks, t0)
	if want := "(exit code 3)"; !strings.Contains(v.RolloutFailure(), want) {
		t.Errorf("rollout failure %q does not carry the crash's %s", v.RolloutFailure(), want)
	}
}

// TestRestartsAndGivingUp: the tasks that ended in this attempt are counted with the last exit
// code; a restart policy that ran out, with no task left to run, is GaveUp; a replacement
// waiting out its restart delay (desired "ready") is not.
func TestRestartsAndGivingUp(t *testing.T) {
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return since.Add(time.Duration(s) * time.Second) }
	failed := func(s, code int) swarm.Task {
		return swarm.Task{ServiceID: "a", DesiredState: swarm.TaskStateShutdown, Status: swarm.TaskStatus{
			State: swarm.TaskStateFailed, Err: fmt.Sprintf("task: non-zero exit (%d)", code), Timestamp: at(s),
			ContainerStatus: &swarm.ContainerStatus{ExitCode: code}}}
	}
	run := func(s int) swarm.Task {
		return swarm.Task{ServiceID: "a", DesiredState: swarm.TaskStateRunning, Status: swarm.TaskStatus{State: swarm.TaskStateRunning, Timestamp: at(s)}}
	}
	waiting := swarm.Task{ServiceID: "a", DesiredState: swarm.TaskStateReady, Status: swarm.TaskStatus{State: swarm.TaskStateReady, Timestamp: at(9)}}
	two := uint64(2)
	limited := func(cond swarm.RestartPolicyCondition, max *uint64) swarm.Service {
		s := replicated("a", 1, nil, nil)
		s.Spec.TaskTemplate.RestartPolicy = &swarm.RestartPolicy{Condition: cond, MaxAttempts: max}
		return s
	}
	for _, tc := range []struct {
		name     string
		svc      swarm.Service
		tasks    []swarm.Task
		restarts int
		exit     int
		gaveUp   bool
		reason   string
	}{
		{"crash loop under the default policy", replicated("a", 1, nil, nil), []swarm.Task{failed(1, 3), failed(2, 4), waiting},
			2, 4, false, "0/1 tasks running: task failed: task: non-zero exit (4) (2 restarts, last exit code 4)"},
		{"max_attempts reached", limited(swarm.RestartPolicyConditionOnFailure, &two), []swarm.Task{failed(1, 3), failed(2, 3), failed(3, 3)},
			3, 3, true, "0/1 tasks running: the restart policy gave up (condition on-failure, max_attempts 2) and swarm will start no task again; last task failed: task: non-zero exit (3) (exit code 3)"},
		{"max_attempts not reached: a replacement waits", limited(swarm.RestartPolicyConditionOnFailure, &two), []swarm.Task{failed(1, 3), waiting},
			1, 3, false, "(1 restart, last exit code 3)"},
		{"condition none", limited(swarm.RestartPolicyConditionNone, nil), []swarm.Task{failed(1, 3)},
			1, 3, true, "condition none"},
		{"one of three replicas gave up", func() swarm.Service {
			s := limited(swarm.RestartPolicyConditionNone, nil)
			three := uint64(3)
			s.Spec.Mode.Replicated.Replicas = &three
			return s
		}(), []swarm.Task{failed(1, 3), run(2), run(3)}, 1, 3, true, "2/3 tasks running: the restart policy gave up (condition none)"},
		{"tasks of an earlier attempt do not count", limited(swarm.RestartPolicyConditionNone, nil), []swarm.Task{failed(-1, 3)},
			0, -1, false, "0/1 tasks running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Converged([]swarm.Service{tc.svc}, tc.tasks, since)
			s := v.Services[0]
			if s.Restarts != tc.restarts || v.GaveUp != tc.gaveUp || s.GaveUp != tc.gaveUp {
				t.Errorf("restarts %d gaveUp %v/%v, want %d %v", s.Restarts, v.GaveUp, s.GaveUp, tc.restarts, tc.gaveUp)
			}
			if tc.exit >= 0 && (s.LastExit == nil || *s.LastExit != tc.exit) {
				t.Errorf("last exit %v, want %d", s.LastExit, tc.exit)
			}
			if !strings.Contains(v.Message, tc.reason) {
				t.Errorf("message %q lacks %q", v.Message, tc.reason)
			}
		})
	}
}

// TestUnstable: a converged service whose youngest running task has not run its window is
// waited for until the window's end; 0 turns the window off.
func TestUnstable(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	run := func(svc string, s int) swarm.Task {
		return swarm.Task{ServiceID: svc, DesiredState: swarm.TaskStateRunning, Status: swarm.TaskStatus{State: swarm.TaskStateRunning, Timestamp: t0.Add(time.Duration(s) * time.Second)}}
	}
	services := []swarm.Service{replicated("a", 2, nil, nil), replicated("b", 1, nil, nil)}
	v := Converged(services, []swarm.Task{run("a", 0), run("a", 3), run("b", 1)}, t0)
	five := func(ServiceState) time.Duration { return 5 * time.Second }
	until, waiting := v.Unstable(t0.Add(4*time.Second), five)
	if !until.Equal(t0.Add(8*time.Second)) || len(waiting) != 2 || waiting[0] != "a: up since 00:00:03.000Z, stable at 00:00:08.000Z if it stays up (5s window)" {
		t.Errorf("at 4s: until %s, waiting %q", until.Sub(t0), waiting)
	}
	if until, waiting = v.Unstable(t0.Add(8*time.Second), five); !until.IsZero() || waiting != nil {
		t.Errorf("at 8s: until %v, waiting %q; want stable", until, waiting)
	}
	// A clock set back (or a node's ahead): the wait is as long as the clocks say, and says why.
	if _, waiting = v.Unstable(t0.Add(-time.Hour), five); len(waiting) != 2 || !strings.Contains(waiting[0], "up since 00:00:03.000Z (after this host's clock: a node's clock ahead, or this one set back)") {
		t.Errorf("clock an hour back: waiting %q", waiting)
	}
	if until, _ = v.Unstable(t0.Add(4*time.Second), func(ServiceState) time.Duration { return 0 }); !until.IsZero() {
		t.Errorf("window 0: until %v", until)
	}
}

func TestConvergedOnNodes(t *testing.T) {
	on := func(tk swarm.Task, node string) swarm.Task { tk.NodeID = node; return tk }
	nodes := Nodes{Self: "n1", ByID: map[string]swarm.Node{
		"n1": {ID: "n1", Description: swarm.NodeDescription{Hostname: "h1"}, Status: swarm.NodeStatus{State: swarm.NodeStateReady}},
		"n2": {ID: "n2", Description: swarm.NodeDescription{Hostname: "h2"}, Status: swarm.NodeStatus{State: swarm.NodeStateDown}},
		"n4": {ID: "n4", Description: swarm.NodeDescription{Hostname: "h4"}, Status: swarm.NodeStatus{State: swarm.NodeStateReady}},
		"n5": {ID: "n5", Description: swarm.NodeDescription{Hostname: "h5"}, Status: swarm.NodeStatus{State: swarm.NodeStateReady},
			Spec: swarm.NodeSpec{Availability: swarm.NodeAvailabilityDrain}},
	}}
	running, shutdown := swarm.TaskStateRunning, swarm.TaskStateShutdown
	a := []swarm.Service{replicated("a", 1, nil, nil)}
	tests := []struct {
		name     string
		tasks    []swarm.Task
		nodes    Nodes
		reason   string
		imageErr string
	}{
		{"image missing on another node: named, and an image error",
			[]swarm.Task{on(task("a", shutdown, swarm.TaskStateRejected, "No such image: x:1"), "n4")}, nodes,
			"task rejected on node h4: No such image: x:1", "image img could not be found or pulled on node h4 (No such image: x:1)"},
		{"image missing on this node: not named",
			[]swarm.Task{on(task("a", shutdown, swarm.TaskStateRejected, "No such image: x:1"), "n1")}, nodes,
			"task rejected: No such image: x:1", "on this node"},
		{"the node of the running task is down",
			[]swarm.Task{on(task("a", shutdown, running, ""), "n2"), on(task("a", running, swarm.TaskStatePending, ""), "n4")}, nodes,
			"0/1 tasks running (node h2 is down: swarm replaces its tasks on other nodes)", ""},
		{"drained", []swarm.Task{on(task("a", shutdown, running, ""), "n5")}, nodes, "node h5 is drained", ""},
		{"placement reason kept", []swarm.Task{task("a", running, swarm.TaskStatePending, "no suitable node (scheduling constraints not satisfied on 4 nodes)")}, nodes,
			"task pending: no suitable node (scheduling constraints not satisfied on 4 nodes)", ""},
		{"nodes unknown: as on one node", []swarm.Task{on(task("a", shutdown, swarm.TaskStateRejected, "No such image: x:1"), "n4")}, Nodes{},
			"task rejected: No such image: x:1", "on this node"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := ConvergedOn(a, tc.tasks, time.Unix(0, 0), tc.nodes)
			if v.Converged || !strings.Contains(v.Message, tc.reason) {
				t.Fatalf("message %q, want it to contain %q", v.Message, tc.reason)
			}
			if tc.imageErr == "" && v.ImageErr != "" || !strings.Contains(v.ImageErr, tc.imageErr) {
				t.Fatalf("image error %q, want %q", v.ImageErr, tc.imageErr)
			}
		})
	}
}

// TestRollbackOwed: swarm owes a rollback when it ended this attempt's roll as completed,
// the service's update_config says rollback on failure, and a previous spec is there.
func TestRollbackOwed(t *testing.T) {
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	before, after := since.Add(-time.Second), since.Add(time.Second)
	for _, tc := range []struct {
		name     string
		action   string
		previous bool
		state    swarm.UpdateState
		started  *time.Time
		owed     bool
	}{
		{"completed roll of this attempt", swarm.UpdateFailureActionRollback, true, swarm.UpdateStateCompleted, &after, true},
		{"failure_action pause", swarm.UpdateFailureActionPause, true, swarm.UpdateStateCompleted, &after, false},
		{"failure_action continue", swarm.UpdateFailureActionContinue, true, swarm.UpdateStateCompleted, &after, false},
		{"no previous spec", swarm.UpdateFailureActionRollback, false, swarm.UpdateStateCompleted, &after, false},
		{"completed before this attempt", swarm.UpdateFailureActionRollback, true, swarm.UpdateStateCompleted, &before, false},
		{"still updating: swarm's monitor watches", swarm.UpdateFailureActionRollback, true, swarm.UpdateStateUpdating, &after, false},
		{"swarm rolled back itself", swarm.UpdateFailureActionRollback, true, swarm.UpdateStateRollbackCompleted, &after, false},
		{"no start time", swarm.UpdateFailureActionRollback, true, swarm.UpdateStateCompleted, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := replicated("a", 1, nil, &swarm.UpdateStatus{State: tc.state, StartedAt: tc.started})
			svc.Spec.UpdateConfig = &swarm.UpdateConfig{FailureAction: tc.action}
			if tc.previous {
				prev := svc.Spec
				svc.PreviousSpec = &prev
			}
			v := Converged([]swarm.Service{svc}, []swarm.Task{task("a", swarm.TaskStateShutdown, swarm.TaskStateFailed, "task: non-zero exit (3)")}, since)
			if got := v.Services[0].RollbackOwed; got != tc.owed {
				t.Errorf("RollbackOwed %v, want %v", got, tc.owed)
			}
		})
	}
	// EndedSinceRoll: a task that failed after the owed roll started, not one before it.
	roll := since.Add(10 * time.Second)
	for _, ended := range []time.Time{roll.Add(-time.Second), roll.Add(time.Second)} {
		svc := replicated("a", 1, nil, &swarm.UpdateStatus{State: swarm.UpdateStateCompleted, StartedAt: &roll})
		svc.Spec.UpdateConfig = &swarm.UpdateConfig{FailureAction: swarm.UpdateFailureActionRollback}
		prev := svc.Spec
		svc.PreviousSpec = &prev
		failed := task("a", swarm.TaskStateShutdown, swarm.TaskStateFailed, "task: non-zero exit (3)")
		failed.Status.Timestamp = ended
		st := Converged([]swarm.Service{svc}, []swarm.Task{failed}, since).Services[0]
		if want := ended.After(roll); st.EndedSinceRoll != want || st.Restarts != 1 {
			t.Errorf("a task failed %s after the roll: EndedSinceRoll %v (want %v), restarts %d (want 1)", ended.Sub(roll), st.EndedSinceRoll, want, st.Restarts)
		}
	}
}

// TestAwaitingRoll: after an update that changed the template, a roll is waited for until
// swarm starts one; after one that left the template as the tasks run it, none is, as swarm
// starts none (it rolls only a task whose spec is not the template's).
func TestAwaitingRoll(t *testing.T) {
	started := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
	later := started.Add(time.Minute)
	from := started.Format(time.RFC3339Nano)
	tmpl := swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "echo:1.1.0"}, Runtime: swarm.RuntimeContainer,
		Placement: &swarm.Placement{Constraints: []string{"node.role==manager"}}}
	task := func(image string, force uint64, desired swarm.TaskState) swarm.Task {
		// As the engine shows a task's spec: no Runtime; here, placement as it was before.
		return swarm.Task{DesiredState: desired, NodeID: "n1", Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: image}, ForceUpdate: force}}
	}
	on := func(node string, t swarm.Task) swarm.Task { t.NodeID = node; return t }
	manager := swarm.Node{ID: "n1", Spec: swarm.NodeSpec{Role: swarm.NodeRoleManager}, Description: swarm.NodeDescription{Hostname: "h1"}}
	worker := swarm.Node{ID: "n2", Spec: swarm.NodeSpec{Role: swarm.NodeRoleWorker}, Description: swarm.NodeDescription{Hostname: "h2"}}
	known := Nodes{ByID: map[string]swarm.Node{"n1": manager, "n2": worker}, Self: "n1"}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		us     *swarm.UpdateStatus
		tasks  []swarm.Task
		want   bool
		nodes  Nodes
	}{
		{"no update of ours expects a roll", nil, nil, []swarm.Task{task("echo:1.0.0", 0, swarm.TaskStateRunning)}, false, Nodes{}},
		{"template changed, swarm not started yet", map[string]string{LabelRollFrom: ""}, nil, []swarm.Task{task("echo:1.0.0", 0, swarm.TaskStateRunning)}, true, Nodes{}},
		{"template changed, only the old roll shown", map[string]string{LabelRollFrom: from}, &swarm.UpdateStatus{State: swarm.UpdateStateCompleted, StartedAt: &started},
			[]swarm.Task{task("echo:1.0.0", 0, swarm.TaskStateRunning)}, true, Nodes{}},
		{"a roll started since", map[string]string{LabelRollFrom: from}, &swarm.UpdateStatus{State: swarm.UpdateStateUpdating, StartedAt: &later},
			[]swarm.Task{task("echo:1.0.0", 0, swarm.TaskStateRunning)}, false, Nodes{}},
		{"the tasks run the template already (runtime aside), nodes unknown", map[string]string{LabelRollFrom: ""}, nil,
			[]swarm.Task{task("echo:1.1.0", 0, swarm.TaskStateRunning)}, false, Nodes{}},
		{"new constraints its node meets", map[string]string{LabelRollFrom: ""}, nil,
			[]swarm.Task{task("echo:1.1.0", 0, swarm.TaskStateRunning)}, false, known},
		{"new constraints its node does not meet", map[string]string{LabelRollFrom: ""}, nil,
			[]swarm.Task{on("n2", task("echo:1.1.0", 0, swarm.TaskStateRunning))}, true, known},
		{"new constraints, its node not known", map[string]string{LabelRollFrom: ""}, nil,
			[]swarm.Task{on("n9", task("echo:1.1.0", 0, swarm.TaskStateRunning))}, true, known},
		{"a forced restart is a change", map[string]string{LabelRollFrom: ""}, nil, []swarm.Task{task("echo:1.1.0", 1, swarm.TaskStateRunning)}, true, Nodes{}},
		{"only a task being shut down differs", map[string]string{LabelRollFrom: ""}, nil,
			[]swarm.Task{task("echo:1.0.0", 0, swarm.TaskStateShutdown), task("echo:1.1.0", 0, swarm.TaskStateRunning)}, false, Nodes{}},
	} {
		svc := swarm.Service{Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Labels: tc.labels}, TaskTemplate: tmpl}, UpdateStatus: tc.us}
		if got := awaitingRoll(svc, tc.tasks, tc.nodes); got != tc.want {
			t.Errorf("%s: awaitingRoll = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAwaitingRollPlacementOtherThanConstraints: swarmkit's IsTaskDirty takes a task as clean
// when its spec differs from the template in Placement alone (the whole Placement: preferences,
// max replicas per node, platforms, not only constraints) and its node meets the constraints
// (IsTaskDirtyPlacementConstraintsOnly swaps the whole Placement). Such an update starts no
// roll, so none may be waited for: waiting would last until the deadline (Failed) or for ever.
func TestAwaitingRollPlacementOtherThanConstraints(t *testing.T) {
	manager := swarm.Node{ID: "n1", Spec: swarm.NodeSpec{Role: swarm.NodeRoleManager}, Description: swarm.NodeDescription{Hostname: "h1"}}
	known := Nodes{ByID: map[string]swarm.Node{"n1": manager}, Self: "n1"}
	spread := []swarm.PlacementPreference{{Spread: &swarm.SpreadOver{SpreadDescriptor: "node.labels.zone"}}}
	for _, tc := range []struct {
		name  string
		p     *swarm.Placement
		nodes Nodes
	}{
		{"preferences added, nodes known", &swarm.Placement{Preferences: spread}, known},
		{"preferences added, one node", &swarm.Placement{Preferences: spread}, Nodes{}},
		{"max replicas per node set, nodes known", &swarm.Placement{MaxReplicas: 2}, known},
		{"preferences and constraints its node meets", &swarm.Placement{Preferences: spread, Constraints: []string{"node.role==manager"}}, known},
	} {
		tmpl := swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "echo:1.1.0"}, Placement: tc.p}
		task := swarm.Task{DesiredState: swarm.TaskStateRunning, NodeID: "n1", Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "echo:1.1.0"}}}
		svc := swarm.Service{Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Labels: map[string]string{LabelRollFrom: ""}}, TaskTemplate: tmpl}}
		if awaitingRoll(svc, []swarm.Task{task}, tc.nodes) {
			t.Errorf("%s: awaitingRoll = true; swarm starts no roll for it", tc.name)
		}
	}
}

func globalSvc(id string, rp *swarm.RestartPolicy) swarm.Service {
	return swarm.Service{
		ID: id,
		Spec: swarm.ServiceSpec{
			Annotations:  swarm.Annotations{Name: id},
			Mode:         swarm.ServiceMode{Global: &swarm.GlobalService{}},
			TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "img"}, RestartPolicy: rp},
		},
	}
}

func nodeTask(svc, node string, desired, state swarm.TaskState, at time.Time, err string) swarm.Task {
	return swarm.Task{ID: svc + "-" + node + "-" + string(state) + "-" + at.Format("150405.000"), ServiceID: svc, NodeID: node,
		DesiredState: desired, Status: swarm.TaskStatus{State: state, Err: err, Timestamp: at}}
}

// TestGlobalDesiredCount: a global service's desired count is the nodes swarm means to run
// it on. Swarm's restart supervisor creates a failed task's replacement with desired state
// "ready" (restart.go: restartTask.DesiredState = api.TaskStateReady) for the restart delay (5 s
// by default), and a restart policy that gave up leaves only desired "shutdown" tasks on the node:
// neither node may drop out of the count, or a crash loop reads as converged.
func TestGlobalDesiredCount(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	since := t0
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	R, S, Ready := swarm.TaskStateRunning, swarm.TaskStateShutdown, swarm.TaskStateReady
	two := uint64(2)
	limited := &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, MaxAttempts: &two}
	tests := []struct {
		name      string
		svc       swarm.Service
		tasks     []swarm.Task
		converged bool
		gaveUp    bool
	}{
		{"one node: the task crashed, its replacement waits out the restart delay", globalSvc("g", nil), []swarm.Task{
			nodeTask("g", "n1", S, swarm.TaskStateFailed, at(10), "task: non-zero exit (1)"),
			nodeTask("g", "n1", Ready, swarm.TaskStateNew, at(10), ""),
		}, false, false},
		{"two nodes: n1 runs, n2's task crashed and waits out the restart delay", globalSvc("g", nil), []swarm.Task{
			nodeTask("g", "n1", R, R, at(1), ""),
			nodeTask("g", "n2", S, swarm.TaskStateFailed, at(10), "task: non-zero exit (1)"),
			nodeTask("g", "n2", Ready, swarm.TaskStateNew, at(10), ""),
		}, false, false},
		{"max_attempts reached: swarm starts no task again on the node", globalSvc("g", limited), []swarm.Task{
			nodeTask("g", "n1", S, swarm.TaskStateFailed, at(2), "task: non-zero exit (1)"),
			nodeTask("g", "n1", S, swarm.TaskStateFailed, at(8), "task: non-zero exit (1)"),
		}, false, true},
		{"just created: swarm has not made its tasks yet", globalSvc("g", nil), nil, false, false},
		// Controls: these converge today and must still converge.
		{"control: two nodes running", globalSvc("g", nil), []swarm.Task{
			nodeTask("g", "n1", R, R, at(1), ""), nodeTask("g", "n2", R, R, at(1), "")}, true, false},
		{"control: n2 drained, its task shut down", globalSvc("g", nil), []swarm.Task{
			nodeTask("g", "n1", R, R, at(1), ""), nodeTask("g", "n2", S, S, at(5), "")}, true, false},
		{"control: n2 down, its task shut down by the orchestrator", globalSvc("g", nil), []swarm.Task{
			nodeTask("g", "n1", R, R, at(1), ""), nodeTask("g", "n2", S, R, at(1), "")}, true, false},
		{"control: restart delay, but an older failure under a limited policy", globalSvc("g", limited), []swarm.Task{
			nodeTask("g", "n1", S, swarm.TaskStateFailed, at(2), "task: non-zero exit (1)"),
			nodeTask("g", "n1", R, R, at(8), "")}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Converged([]swarm.Service{tt.svc}, tt.tasks, since)
			if v.Converged != tt.converged || v.GaveUp != tt.gaveUp {
				t.Errorf("converged=%v gaveUp=%v, want %v %v (message %q)", v.Converged, v.GaveUp, tt.converged, tt.gaveUp, v.Message)
			}
		})
	}
}

func jobSvc(id string, global bool, iteration uint64) swarm.Service {
	one := uint64(1)
	mode := swarm.ServiceMode{ReplicatedJob: &swarm.ReplicatedJob{MaxConcurrent: &one, TotalCompletions: &one}}
	if global {
		mode = swarm.ServiceMode{GlobalJob: &swarm.GlobalJob{}}
	}
	return swarm.Service{
		ID: id,
		Spec: swarm.ServiceSpec{
			Annotations:  swarm.Annotations{Name: id},
			Mode:         mode,
			TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "img"}},
		},
		JobStatus: &swarm.JobStatus{JobIteration: swarm.Version{Index: iteration}},
	}
}

func jobTask(node string, iteration uint64, desired, state swarm.TaskState, err string) swarm.Task {
	t := nodeTask("j", node, desired, state, time.Date(2026, 1, 1, 0, 0, int(iteration), 0, time.UTC), err)
	t.JobIteration = &swarm.Version{Index: iteration}
	return t
}

// TestJobRunCounts: every update of a job service starts a new iteration (swarmkit
// controlapi UpdateService: JobIteration.Index++); the jobs orchestrator counts only the
// tasks of the current iteration and leaves the old iteration's completed tasks in the store
// with desired state "complete" (jobs/replicated/reconciler.go). A run that has not completed
// is not a job that ran.
func TestJobRunCounts(t *testing.T) {
	C, S, Ready := swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateReady
	tests := []struct {
		name      string
		svc       swarm.Service
		tasks     []swarm.Task
		converged bool
	}{
		{"replicated-job updated: the old run's completed task, the new run still pending", jobSvc("j", false, 20), []swarm.Task{
			jobTask("n1", 10, C, C, ""), jobTask("", 20, C, swarm.TaskStatePending, "")}, false},
		{"replicated-job updated: the new run failed, its retry waits the restart delay", jobSvc("j", false, 20), []swarm.Task{
			jobTask("n1", 10, C, C, ""), jobTask("n1", 20, S, swarm.TaskStateFailed, "task: non-zero exit (1)"), jobTask("", 20, Ready, swarm.TaskStateNew, "")}, false},
		{"global-job updated: the old run completed, the new one runs", jobSvc("j", true, 20), []swarm.Task{
			jobTask("n1", 10, C, C, ""), jobTask("n1", 20, C, swarm.TaskStateRunning, "")}, false},
		{"replicated-job: its only run is still running (a migration)", jobSvc("j", false, 10), []swarm.Task{
			jobTask("n1", 10, C, swarm.TaskStateRunning, "")}, false},
		{"control: the current run completed", jobSvc("j", false, 20), []swarm.Task{
			jobTask("n1", 10, C, C, ""), jobTask("n1", 20, C, C, "")}, true},
		{"control: global-job, the current run completed", jobSvc("j", true, 20), []swarm.Task{
			jobTask("n1", 10, C, C, ""), jobTask("n1", 20, C, C, "")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Converged([]swarm.Service{tt.svc}, tt.tasks, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			if v.Converged != tt.converged {
				t.Errorf("converged=%v, want %v (message %q)", v.Converged, tt.converged, v.Message)
			}
		})
	}
}

// TestStalePausedWithTasksOnAnotherSpec: a roll that paused before this attempt leaves the slots it
// had not reached on the previous spec, and swarm never resumes it (updater.Run returns at once
// on PAUSED). A stale "paused" is harmless only when every task already runs the service's spec.
func TestStalePausedWithTasksOnAnotherSpec(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	since := t0.Add(time.Hour) // a later attempt: e.g. the spec's timeout edited after "update paused"
	tmpl := swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "img:2"}}
	old := swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "img:1"}}
	svc := func() swarm.Service {
		s := replicated("a", 2, nil, &swarm.UpdateStatus{State: swarm.UpdateStatePaused, StartedAt: &t0, Message: "update paused due to failure or early termination of task x"})
		s.Spec.TaskTemplate = tmpl
		return s
	}
	run := func(id string, spec swarm.TaskSpec) swarm.Task {
		return swarm.Task{ID: id, ServiceID: "a", Spec: spec, DesiredState: swarm.TaskStateRunning,
			Status: swarm.TaskStatus{State: swarm.TaskStateRunning, Timestamp: t0}}
	}
	for _, tt := range []struct {
		name      string
		tasks     []swarm.Task
		converged bool
		reason    string
	}{
		{"one slot on the new spec, one still on the previous", []swarm.Task{run("new", tmpl), run("old", old)}, false, "paused"},
		{"control: every slot on the new spec (the flicker)", []swarm.Task{run("new1", tmpl), run("new2", tmpl)}, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := Converged([]swarm.Service{svc()}, tt.tasks, since)
			if v.Converged != tt.converged || !strings.Contains(v.Message, tt.reason) {
				t.Errorf("converged=%v (message %q), want %v with %q", v.Converged, v.Message, tt.converged, tt.reason)
			}
		})
	}
}
