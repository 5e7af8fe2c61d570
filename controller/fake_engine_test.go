package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// fakeEngine is an in-memory swarm that records every call. Services it creates run their
// tasks at once; an update that changes the task template or the endpoint completes a roll at
// once, or after rollLists service lists (starting rollStartLists lists after the update). It
// says no as an engine does: a name already taken (whoever owns it) is a conflict, an update
// with a stale version is out of sequence, and fail injects an error into the next calls of a
// kind.
type fakeEngine struct {
	mu       sync.Mutex
	now      time.Time
	seq      int
	calls    []string
	services map[string]*swarm.Service
	tasks    []swarm.Task
	networks map[string]network.Summary
	secrets  map[string]swarm.Secret
	configs  map[string]swarm.Config
	volumes  map[string]*volume.Volume
	images   map[string]bool
	// failTasks makes created tasks fail with this error instead of running.
	failTasks string
	// networkLinger is how many more lists show a removed network, as a swarm node lists an
	// overlay network until its last local container detaches; a second removal of it
	// answers "not found", untyped, as engine 20.10 does.
	networkLinger int
	lingering     map[string]int
	// taskLinger is how many more task lists show the tasks of a removed service (desired
	// state "remove"), as swarm lists them until their containers are gone.
	taskLinger int
	// removed holds the labels of removed services whose tasks still linger (by service ID),
	// and how many more task lists show them: a task's label filter matches its service's.
	removed map[string]lingeringService
	// taskNow, when set, stamps the tasks it starts (their running time): the fixture's clock,
	// so that the stability window counts as the reconciler's clock moves.
	taskNow func() time.Time
	// crashAfter, when set, ends every task that has run that long with exit code 3 at the
	// next task list, and starts a replacement, as the service's restart policy says: none
	// once max_attempts restarts were made.
	crashAfter time.Duration
	// taskLog, when set, is what a task's log says; with taskLogTTY, as a task with a terminal
	// sends it (no stdcopy frames).
	taskLog    func(id string) string
	taskLogTTY bool
	// rollLists is how many service lists an update's roll stays "updating" for.
	rollLists int
	rolling   map[string]int
	// rollStartLists is how many service lists pass between an update and the start of the roll
	// it implies, as swarm's updater starts a moment after the update is answered: until then
	// the update status is unset and the old tasks run.
	rollStartLists int
	rollStarting   map[string]int
	// endpoints is the service endpoint each task was made with, as swarmkit copies it into the
	// task (the API does not show it): a task whose endpoint is not its service's is replaced
	// by a roll, as one whose spec is not the template is.
	endpoints map[string]*swarm.EndpointSpec
	// fail makes the next fail[call] calls whose record starts with call fail with a 500.
	fail map[string]int
	// pulls answer the next image pulls in turn: nil pulls the image, a pullStreamError fails
	// in the progress stream, another error is the API's answer. Past them, a pull is denied.
	pulls []error

	// nodes are the swarm's other nodes (fakeNode is always there and is the engine's own),
	// with place choosing the node of a service's i-th task (nil: fakeNode). Volumes a task
	// makes on another node live in remote[node], which VolumeList never shows; a volume job
	// (controller.volumeJob) placed on an up node removes the app's volumes there and
	// completes, and on a node that is down waits, pending, until it is up.
	nodes  map[string]*swarm.Node
	place  func(s *swarm.Service, i int) string
	remote map[string]map[string]*volume.Volume
	// jobFail, when set, makes volume jobs on up nodes rejected with this error.
	jobFail string
	// jobsRepeat is a volume job that swarm runs again once it completed, and whose removal
	// leaves a task on no node, new, listed for good: what swarm does to a replicated-job when a
	// manager that once led keeps its jobs orchestrator (moby/moby#53632), to the volume jobs an
	// earlier version of the reconciler made in that mode.
	jobsRepeat bool
	// containersHold models what swarm does to a removed service's task on the engine's node:
	// its container stops at once (the task is shutdown) but stays, holding the volumes it
	// mounts (a removal answers "in use"), as long as the task is listed (taskLinger), unless
	// removed by ContainerRemove. Containers are the tasks' ContainerStatus IDs.
	containersHold bool
	// exitedLocally are containers the engine's node saw exit while the managers still list
	// their task running (an agent reporting late).
	exitedLocally  map[string]bool
	containersGone map[string]bool
	// lateTask, with containersHold, is a restart that crossed the service's removal: a task
	// of the removed service on the engine's node, preparing for two task lists, then stopped,
	// its container having made the volumes it mounts again where they were removed.
	lateTask  bool
	lateLists map[string]int
}

// addNode adds a node to the fake swarm, up and active.
func (f *fakeEngine) addNode(id, hostname string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nodes == nil {
		f.nodes = map[string]*swarm.Node{}
		f.remote = map[string]map[string]*volume.Volume{}
	}
	f.nodes[id] = &swarm.Node{ID: id, Description: swarm.NodeDescription{Hostname: hostname},
		Status: swarm.NodeStatus{State: swarm.NodeStateReady}, Spec: swarm.NodeSpec{Availability: swarm.NodeAvailabilityActive}}
	f.remote[id] = map[string]*volume.Volume{}
}

// removeNode removes a node from the swarm as `docker node rm --force` does: swarm orphans
// the node's tasks that had not ended (swarmkit's controlapi, orphanNodeTasks), since the
// node will never report their end.
func (f *fakeEngine) removeNode(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.nodes, id)
	for i := range f.tasks {
		if t := &f.tasks[i]; t.NodeID == id && !terminalTask(*t) {
			t.Status = swarm.TaskStatus{State: swarm.TaskStateOrphaned, Message: "Task belonged to a node that has been deleted", Timestamp: f.taskTime()}
		}
	}
}

// setNodeState marks a node up (ready) or down; a pending volume job on a node that is up
// again runs at the next task list.
func (f *fakeEngine) setNodeState(id string, state swarm.NodeState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes[id].Status.State = state
}

// remoteVolumes lists the volumes on node id.
func (f *fakeEngine) remoteVolumes(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for name := range f.remote[id] {
		out = append(out, name)
	}
	return out
}

func (f *fakeEngine) Info(context.Context) (system.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("inspect info"); err != nil {
		return system.Info{}, err
	}
	return system.Info{Swarm: swarm.Info{NodeID: fakeNode, Nodes: 1 + len(f.nodes)}}, nil
}

func (f *fakeEngine) NodeList(context.Context, swarm.NodeListOptions) ([]swarm.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("list nodes"); err != nil {
		return nil, err
	}
	out := []swarm.Node{{ID: fakeNode, Description: swarm.NodeDescription{Hostname: "self"}, Status: swarm.NodeStatus{State: swarm.NodeStateReady}}}
	for _, n := range f.nodes {
		out = append(out, *n)
	}
	return out, nil
}

// runJobs carries out the volume jobs whose node is up: the app's volumes there are removed
// and the task completes.
func (f *fakeEngine) runJobs() {
	for i := range f.tasks {
		t := &f.tasks[i]
		svc := f.services[t.ServiceID]
		if svc == nil || !isJob(*svc) || t.Status.State != swarm.TaskStatePending {
			continue
		}
		node := strings.TrimPrefix(svc.Spec.TaskTemplate.Placement.Constraints[0], "node.id==")
		if n := f.nodes[node]; n == nil || n.Status.State != swarm.NodeStateReady {
			continue
		}
		if f.jobFail != "" {
			t.NodeID, t.DesiredState = node, swarm.TaskStateShutdown
			t.Status = swarm.TaskStatus{State: swarm.TaskStateRejected, Err: f.jobFail, Timestamp: f.taskTime()}
			continue
		}
		// node-clean: the app's volumes; with --only-stack, the job's stack's only.
		only := slices.Contains(svc.Spec.TaskTemplate.ContainerSpec.Args, "--only-stack")
		for name, v := range f.remote[node] {
			if v.Labels[swarmstate.LabelApp] == svc.Spec.Labels[swarmstate.LabelApp] &&
				(!only || v.Labels[swarmstate.LabelNamespace] == svc.Spec.Labels[swarmstate.LabelNamespace]) {
				delete(f.remote[node], name)
			}
		}
		t.NodeID, t.DesiredState = node, swarm.TaskStateComplete
		t.Status = swarm.TaskStatus{State: swarm.TaskStateComplete, Timestamp: f.taskTime(), ContainerStatus: &swarm.ContainerStatus{}}
		if f.jobsRepeat {
			f.tasks = append(f.tasks, swarm.Task{ID: f.id(), ServiceID: svc.ID, NodeID: node, DesiredState: swarm.TaskStateComplete,
				Status: swarm.TaskStatus{State: swarm.TaskStateRunning, Timestamp: f.taskTime().Add(time.Millisecond)}}) // the newer run
		}
	}
}

// failing reports whether the call recorded as c is due to fail, and counts it down.
func (f *fakeEngine) failing(c string) error {
	for prefix, n := range f.fail {
		if n > 0 && strings.HasPrefix(c, prefix) {
			f.fail[prefix] = n - 1
			return fmt.Errorf("Error response from daemon: %s: injected failure", c)
		}
	}
	return nil
}

// named reports whether the name filters of args (any of them, exact) admit name.
func named(args filters.Args, name string) bool {
	names := args.Get("name")
	return len(names) == 0 || contains(names, name)
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{
		now:      time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		services: map[string]*swarm.Service{}, networks: map[string]network.Summary{},
		secrets: map[string]swarm.Secret{}, configs: map[string]swarm.Config{},
		volumes: map[string]*volume.Volume{}, images: map[string]bool{},
	}
}

func (f *fakeEngine) record(format string, args ...any) error {
	c := fmt.Sprintf(format, args...)
	f.calls = append(f.calls, c)
	return f.failing(c)
}

// writes returns the recorded calls that change something.
func (f *fakeEngine) writes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if !strings.HasPrefix(c, "list") && !strings.HasPrefix(c, "inspect") {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeEngine) resetCalls() { f.mu.Lock(); f.calls = nil; f.mu.Unlock() }

func (f *fakeEngine) id() string { f.seq++; return fmt.Sprintf("id%d", f.seq) }

func matches(args filters.Args, labels map[string]string) bool {
	for _, l := range args.Get("label") {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	return true
}

func (f *fakeEngine) ServiceList(_ context.Context, o swarm.ServiceListOptions) ([]swarm.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("list services"); err != nil {
		return nil, err
	}
	var out []swarm.Service
	for id, s := range f.services {
		if n, ok := f.rollStarting[id]; ok {
			if n--; n <= 0 {
				delete(f.rollStarting, id)
				f.startRoll(s) // counted down from this list on, as a roll started by the update
			} else {
				f.rollStarting[id] = n
			}
		}
		if n, ok := f.rolling[id]; ok {
			if n--; n <= 0 {
				delete(f.rolling, id)
				s.UpdateStatus.State = swarm.UpdateStateCompleted
				f.runTasks(s)
			} else {
				f.rolling[id] = n
			}
		}
		if matches(o.Filters, s.Spec.Labels) && named(o.Filters, s.Spec.Name) {
			out = append(out, *s)
		}
	}
	return out, nil
}

// endRolls ends every roll still updating now, whatever its rollLists: a test says at which
// time on its clock the roll's tasks come up.
func (f *fakeEngine) endRolls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.rolling {
		delete(f.rolling, id)
		s := f.services[id]
		s.UpdateStatus.State = swarm.UpdateStateCompleted
		f.runTasks(s)
	}
}

func (f *fakeEngine) TaskList(_ context.Context, o swarm.TaskListOptions) ([]swarm.Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("list tasks"); err != nil {
		return nil, err
	}
	f.crash()
	f.runJobs()
	f.startLate()
	ids := o.Filters.Get("service")
	var out, kept []swarm.Task
	for _, t := range f.tasks {
		var labels map[string]string
		if svc := f.services[t.ServiceID]; svc != nil {
			labels = svc.Spec.Labels
		} else if gone, ok := f.removed[t.ServiceID]; ok && gone.lists > 0 {
			labels = gone.labels
		} else {
			continue // the task of a removed service is gone from the list for good
		}
		kept = append(kept, t)
		if (len(ids) == 0 || contains(ids, t.ServiceID)) && matches(o.Filters, labels) {
			out = append(out, t)
		}
	}
	f.tasks = kept
	for id, gone := range f.removed {
		if gone.lists--; gone.lists <= 0 {
			delete(f.removed, id)
		} else {
			f.removed[id] = gone
		}
	}
	return out, nil
}

// lingeringService is a removed service whose tasks are still listed.
type lingeringService struct {
	labels map[string]string
	lists  int
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (f *fakeEngine) NetworkList(_ context.Context, o network.ListOptions) ([]network.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("list networks"); err != nil {
		return nil, err
	}
	var out []network.Summary
	for id, n := range f.networks {
		if left, ok := f.lingering[id]; ok {
			if left == 0 {
				delete(f.lingering, id)
				delete(f.networks, id)
				continue
			}
			f.lingering[id] = left - 1
		}
		if matches(o.Filters, n.Labels) && named(o.Filters, n.Name) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (f *fakeEngine) SecretList(_ context.Context, o swarm.SecretListOptions) ([]swarm.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("list secrets"); err != nil {
		return nil, err
	}
	var out []swarm.Secret
	for _, s := range f.secrets {
		if matches(o.Filters, s.Spec.Labels) && named(o.Filters, s.Spec.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeEngine) ConfigList(_ context.Context, o swarm.ConfigListOptions) ([]swarm.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("list configs"); err != nil {
		return nil, err
	}
	var out []swarm.Config
	for _, c := range f.configs {
		if matches(o.Filters, c.Spec.Labels) && named(o.Filters, c.Spec.Name) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeEngine) VolumeList(_ context.Context, o volume.ListOptions) (volume.ListResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("list volumes"); err != nil {
		return volume.ListResponse{}, err
	}
	var out volume.ListResponse
	for _, v := range f.volumes {
		if matches(o.Filters, v.Labels) && named(o.Filters, v.Name) {
			out.Volumes = append(out.Volumes, v)
		}
	}
	return out, nil
}

func (f *fakeEngine) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	errs := make(chan error, 1)
	go func() { <-ctx.Done(); errs <- ctx.Err() }()
	return make(chan events.Message), errs
}

func (f *fakeEngine) taskTime() time.Time {
	if f.taskNow != nil {
		return f.taskNow()
	}
	return f.now
}

// crash ends the running tasks that have run crashAfter and starts their replacements.
func (f *fakeEngine) crash() {
	if f.crashAfter <= 0 {
		return
	}
	now := f.taskTime()
	for i := 0; i < len(f.tasks); i++ { // replacements join the list and may crash too
		t := f.tasks[i]
		if t.DesiredState != swarm.TaskStateRunning || t.Status.State != swarm.TaskStateRunning || now.Sub(t.Status.Timestamp) < f.crashAfter {
			continue
		}
		end := t.Status.Timestamp.Add(f.crashAfter)
		f.tasks[i].DesiredState = swarm.TaskStateShutdown
		f.tasks[i].Status = swarm.TaskStatus{State: swarm.TaskStateFailed, Err: "task: non-zero exit (3)", Timestamp: end,
			ContainerStatus: &swarm.ContainerStatus{ExitCode: 3}}
		if f.gaveUp(t.ServiceID) {
			continue
		}
		// The replacement runs the service's spec as it is now, endpoint included (NewTask).
		id, svc := f.id(), f.services[t.ServiceID]
		next := swarm.Task{ID: id, ServiceID: t.ServiceID, DesiredState: swarm.TaskStateRunning,
			Status: swarm.TaskStatus{State: swarm.TaskStateRunning, Timestamp: end}}
		if svc != nil {
			if f.endpoints == nil {
				f.endpoints = map[string]*swarm.EndpointSpec{}
			}
			next.Spec, f.endpoints[id] = svc.Spec.TaskTemplate, svc.Spec.EndpointSpec
		}
		f.tasks = append(f.tasks, next)
	}
}

// TaskLogs answers a task's log lines as the engine does for a task without a TTY: in
// stdcopy frames, the lines of taskLog (stdout) or "<id> exiting" (stderr) by default.
func (f *fakeEngine) TaskLogs(_ context.Context, id string, o container.LogsOptions) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("logs %s", id); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if f.taskLog != nil && f.taskLogTTY {
		b.WriteString(f.taskLog(id)) // a terminal's stream: no frames
	} else if f.taskLog != nil {
		w := stdcopy.NewStdWriter(&b, stdcopy.Stdout)
		for l := range strings.Lines(f.taskLog(id)) { // a frame a line, as the engine sends them
			w.Write([]byte(l))
		}
	} else {
		stdcopy.NewStdWriter(&b, stdcopy.Stderr).Write([]byte(id + " exiting\n"))
	}
	return io.NopCloser(&b), nil
}

// gaveUp reports whether service id's restart policy allows no more restarts.
func (f *fakeEngine) gaveUp(id string) bool {
	var rp *swarm.RestartPolicy
	for _, s := range f.services {
		if s.ID == id {
			rp = s.Spec.TaskTemplate.RestartPolicy
		}
	}
	if rp == nil || rp.MaxAttempts == nil || *rp.MaxAttempts == 0 {
		return false
	}
	failed := 0
	for _, t := range f.tasks {
		if t.ServiceID == id && t.Status.State == swarm.TaskStateFailed {
			failed++
		}
	}
	return uint64(failed) > *rp.MaxAttempts
}

func (f *fakeEngine) runTasks(s *swarm.Service) {
	var kept []swarm.Task
	for _, t := range f.tasks {
		if t.ServiceID != s.ID {
			kept = append(kept, t)
		}
	}
	f.tasks = kept
	n := 1
	if r := s.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
		n = int(*r.Replicas)
	}
	if s.Spec.Labels[LabelJob] == jobInventory {
		// The inventory: one task a node other than the engine's own that is up, done at once (twice
		// with jobsRepeat, as swarm's jobs orchestrator did to it as a global-job); what each
		// says is taskLog's.
		runs := 1
		if f.jobsRepeat {
			runs = 2
		}
		for _, node := range slices.Sorted(maps.Keys(f.nodes)) {
			if f.nodes[node].Status.State == swarm.NodeStateDown {
				continue // a global service places no task on a node that is down
			}
			for range runs {
				f.tasks = append(f.tasks, swarm.Task{ID: f.id(), ServiceID: s.ID, NodeID: node, DesiredState: swarm.TaskStateComplete,
					Status: swarm.TaskStatus{State: swarm.TaskStateComplete, Timestamp: f.taskTime(), ContainerStatus: &swarm.ContainerStatus{}}})
			}
		}
		return
	}
	if isJob(*s) {
		// A volume job waits for its node (runJobs).
		f.tasks = append(f.tasks, swarm.Task{ID: f.id(), ServiceID: s.ID, DesiredState: swarm.TaskStateComplete,
			Status: swarm.TaskStatus{State: swarm.TaskStatePending, Timestamp: f.taskTime(),
				Err: "no suitable node (1 node not available for new tasks)"}})
		f.runJobs()
		return
	}
	for i := 0; i < n; i++ {
		id := f.id()
		node := fakeNode
		if f.place != nil {
			node = f.place(s, i)
		}
		t := swarm.Task{ID: id, ServiceID: s.ID, NodeID: node, DesiredState: swarm.TaskStateRunning, Spec: s.Spec.TaskTemplate,
			Status: swarm.TaskStatus{State: swarm.TaskStateRunning, Timestamp: f.taskTime(),
				ContainerStatus: &swarm.ContainerStatus{ContainerID: "c-" + id}}}
		if f.endpoints == nil {
			f.endpoints = map[string]*swarm.EndpointSpec{}
		}
		f.endpoints[id] = s.Spec.EndpointSpec
		if f.failTasks != "" {
			t.DesiredState = swarm.TaskStateShutdown
			t.Status.State, t.Status.Err = swarm.TaskStateRejected, f.failTasks
		}
		f.tasks = append(f.tasks, t)
		// Named volumes come into being with the first task on a node, labelled as the mount asks.
		vols := f.volumes
		if node != fakeNode {
			vols = f.remote[node]
		}
		for _, m := range s.Spec.TaskTemplate.ContainerSpec.Mounts {
			if _, exists := vols[m.Source]; !exists && m.Type == "volume" && m.Source != "" && m.VolumeOptions != nil {
				vols[m.Source] = &volume.Volume{Name: m.Source, Labels: m.VolumeOptions.Labels}
			}
		}
	}
}

func (f *fakeEngine) ServiceCreate(_ context.Context, s swarm.ServiceSpec, _ swarm.ServiceCreateOptions) (swarm.ServiceCreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("create service %s", s.Name); err != nil {
		return swarm.ServiceCreateResponse{}, err
	}
	for _, cur := range f.services {
		if cur.Spec.Name == s.Name {
			return swarm.ServiceCreateResponse{}, errdefs.Conflict(fmt.Errorf("service %s exists", s.Name))
		}
	}
	s.EndpointSpec = storedEndpoint(s.EndpointSpec)
	svc := &swarm.Service{ID: f.id(), Spec: s, Meta: swarm.Meta{Version: swarm.Version{Index: uint64(f.seq)}, CreatedAt: f.now}}
	f.services[svc.ID] = svc
	f.runTasks(svc)
	return swarm.ServiceCreateResponse{ID: svc.ID}, nil
}

func (f *fakeEngine) ServiceUpdate(_ context.Context, id string, v swarm.Version, s swarm.ServiceSpec, o swarm.ServiceUpdateOptions) (swarm.ServiceUpdateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	what := "update"
	if o.Rollback == "previous" {
		what = "rollback"
	}
	if err := f.record("%s service %s", what, s.Name); err != nil {
		return swarm.ServiceUpdateResponse{}, err
	}
	svc, ok := f.services[id]
	if !ok {
		return swarm.ServiceUpdateResponse{}, errdefs.NotFound(fmt.Errorf("service %s", id))
	}
	if svc.Version != v {
		return swarm.ServiceUpdateResponse{}, errdefs.InvalidParameter(fmt.Errorf("update out of sequence"))
	}
	if o.Rollback == "previous" {
		// As the engine does: s is ignored, the previous spec comes back and this one becomes
		// the previous; the roll back is over at once.
		if svc.PreviousSpec == nil {
			return swarm.ServiceUpdateResponse{}, errdefs.InvalidParameter(fmt.Errorf("service %s does not have a previous spec", id))
		}
		cur := svc.Spec
		svc.Spec, svc.PreviousSpec = *svc.PreviousSpec, &cur
		delete(f.rollStarting, svc.ID) // the roll back ends any roll to come or under way
		delete(f.rolling, svc.ID)
		f.seq++
		svc.Version.Index = uint64(f.seq)
		f.now = f.now.Add(time.Second)
		started := f.now
		svc.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateRollbackCompleted, StartedAt: &started, Message: "manually requested rollback completed"}
		f.runTasks(svc)
		return swarm.ServiceUpdateResponse{}, nil
	}
	s.EndpointSpec = storedEndpoint(s.EndpointSpec)
	old, _ := json.Marshal(svc.Spec.TaskTemplate)
	next, _ := json.Marshal(s.TaskTemplate)
	prev := svc.Spec
	svc.PreviousSpec = &prev
	svc.Spec = s
	f.seq++
	svc.Version.Index = uint64(f.seq)
	svc.UpdateStatus = nil
	// A roll waiting to start or under way starts over with the new spec, as swarm's updater
	// does: its tasks still do not run the service's spec.
	_, starting := f.rollStarting[svc.ID]
	_, rolling := f.rolling[svc.ID]
	delete(f.rollStarting, svc.ID)
	delete(f.rolling, svc.ID)
	switch {
	case string(old) != string(next) || !reflect.DeepEqual(prev.EndpointSpec, s.EndpointSpec) || starting || rolling:
		if f.rollStartLists > 0 {
			if f.rollStarting == nil {
				f.rollStarting = map[string]int{}
			}
			f.rollStarting[svc.ID] = f.rollStartLists
			break
		}
		f.startRoll(svc)
	case !reflect.DeepEqual(prev.Mode, s.Mode):
		f.runTasks(svc) // scaled
	}
	return swarm.ServiceUpdateResponse{}, nil
}

// storedEndpoint is e as dockerd stores it and gives it back (daemon/cluster/convert,
// ServiceSpecToGRPC then ServiceFromGRPC): each enum looked up by its upper-case name in the
// API's values (an unknown name is 0), and given back by its value's name in lower case. Made
// apart from the controller's endpointAsStored, so that the flows check that one.
func storedEndpoint(e *swarm.EndpointSpec) *swarm.EndpointSpec {
	if e == nil {
		return nil
	}
	roundTrip := func(v string, byValue []string) string {
		return strings.ToLower(byValue[max(slices.Index(byValue, strings.ToUpper(v)), 0)])
	}
	out := &swarm.EndpointSpec{Mode: swarm.ResolutionMode(roundTrip(string(e.Mode), []string{"VIP", "DNSRR"}))}
	for _, p := range e.Ports {
		out.Ports = append(out.Ports, swarm.PortConfig{Name: p.Name, TargetPort: p.TargetPort, PublishedPort: p.PublishedPort,
			Protocol:    swarm.PortConfigProtocol(roundTrip(string(p.Protocol), []string{"TCP", "UDP", "SCTP"})),
			PublishMode: swarm.PortConfigPublishMode(roundTrip(string(p.PublishMode), []string{"INGRESS", "HOST"}))})
	}
	return out
}

// startRoll starts the roll an update of svc implies: done at once, or updating for rollLists
// service lists.
func (f *fakeEngine) startRoll(svc *swarm.Service) {
	f.now = f.now.Add(time.Second)
	started := f.now
	svc.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateCompleted, StartedAt: &started}
	if f.rollLists > 0 {
		// The roll takes time: updating until rollLists more service lists.
		svc.UpdateStatus.State = swarm.UpdateStateUpdating
		if f.rolling == nil {
			f.rolling = map[string]int{}
		}
		f.rolling[svc.ID] = f.rollLists
		return
	}
	f.runTasks(svc)
}

// staleEndpoints lists the tasks that run, or are to, with an endpoint that is not their
// service's: what a roll has yet to replace.
func (f *fakeEngine) staleEndpoints() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var stale []string
	for _, t := range f.tasks {
		if svc, ok := f.services[t.ServiceID]; ok && t.DesiredState == swarm.TaskStateRunning &&
			!reflect.DeepEqual(f.endpoints[t.ID], svc.Spec.EndpointSpec) {
			stale = append(stale, t.ID)
		}
	}
	return stale
}

func (f *fakeEngine) ServiceRemove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("remove service %s", id); err != nil {
		return err
	}
	svc, ok := f.services[id]
	if !ok {
		return errdefs.NotFound(fmt.Errorf("service %s", id))
	}
	delete(f.services, id)
	if f.jobsRepeat && isJob(*svc) {
		if f.removed == nil {
			f.removed = map[string]lingeringService{}
		}
		f.removed[id] = lingeringService{labels: svc.Spec.Labels, lists: math.MaxInt}
		for i := range f.tasks {
			if t := &f.tasks[i]; t.ServiceID == id && !terminalTask(*t) {
				t.DesiredState, t.Status.State = swarm.TaskStateRemove, swarm.TaskStateComplete // the run was done
			}
		}
		f.tasks = append(f.tasks, swarm.Task{ID: f.id(), ServiceID: id, DesiredState: swarm.TaskStateComplete,
			Status: swarm.TaskStatus{State: swarm.TaskStateNew, Timestamp: f.taskTime()}})
		return nil
	}
	if f.taskLinger > 0 {
		if f.removed == nil {
			f.removed = map[string]lingeringService{}
		}
		f.removed[id] = lingeringService{labels: svc.Spec.Labels, lists: f.taskLinger}
		for i := range f.tasks {
			if f.tasks[i].ServiceID == id {
				f.tasks[i].DesiredState = swarm.TaskStateRemove
				if f.containersHold {
					f.tasks[i].Status.State = swarm.TaskStateShutdown
				}
			}
		}
		if f.lateTask {
			late := f.id()
			f.tasks = append(f.tasks, swarm.Task{ID: late, ServiceID: id, NodeID: fakeNode, DesiredState: swarm.TaskStateRunning,
				Spec: svc.Spec.TaskTemplate, Status: swarm.TaskStatus{State: swarm.TaskStatePreparing, Timestamp: f.taskTime()}})
			f.lateLists = map[string]int{late: 2}
		}
		return nil
	}
	var kept []swarm.Task
	for _, t := range f.tasks {
		if t.ServiceID != id {
			kept = append(kept, t)
		}
	}
	f.tasks = kept
	return nil
}

func (f *fakeEngine) NetworkCreate(_ context.Context, name string, o network.CreateOptions) (network.CreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("create network %s", name); err != nil {
		return network.CreateResponse{}, err
	}
	for _, n := range f.networks {
		if n.Name == name {
			return network.CreateResponse{}, errdefs.Conflict(fmt.Errorf("network with name %s already exists", name))
		}
	}
	id := f.id()
	f.networks[id] = network.Summary{ID: id, Name: name, Labels: o.Labels}
	return network.CreateResponse{ID: id}, nil
}

func (f *fakeEngine) NetworkRemove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("remove network %s", id); err != nil {
		return err
	}
	if _, gone := f.lingering[id]; gone {
		// Engine 20.10's words and status (500, untyped) for a network that lingers.
		return fmt.Errorf("Error response from daemon: network %s not found", id)
	}
	if _, ok := f.networks[id]; !ok {
		return errdefs.NotFound(fmt.Errorf("network %s not found", id))
	}
	if f.networkLinger > 0 {
		if f.lingering == nil {
			f.lingering = map[string]int{}
		}
		f.lingering[id] = f.networkLinger
		return nil
	}
	delete(f.networks, id)
	return nil
}

func (f *fakeEngine) SecretCreate(_ context.Context, s swarm.SecretSpec) (swarm.SecretCreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("create secret %s", s.Name); err != nil {
		return swarm.SecretCreateResponse{}, err
	}
	for _, cur := range f.secrets {
		if cur.Spec.Name == s.Name {
			return swarm.SecretCreateResponse{}, errdefs.Conflict(fmt.Errorf("secret %s already exists", s.Name))
		}
	}
	id := f.id()
	f.secrets[id] = swarm.Secret{ID: id, Spec: swarm.SecretSpec{Annotations: s.Annotations}}
	return swarm.SecretCreateResponse{ID: id}, nil
}

func (f *fakeEngine) SecretRemove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("remove secret %s", id); err != nil {
		return err
	}
	if _, ok := f.secrets[id]; !ok {
		return errdefs.NotFound(fmt.Errorf("secret %s not found", id))
	}
	delete(f.secrets, id)
	return nil
}

func (f *fakeEngine) ConfigCreate(_ context.Context, c swarm.ConfigSpec) (swarm.ConfigCreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("create config %s", c.Name); err != nil {
		return swarm.ConfigCreateResponse{}, err
	}
	for _, cur := range f.configs {
		if cur.Spec.Name == c.Name {
			return swarm.ConfigCreateResponse{}, errdefs.Conflict(fmt.Errorf("config %s already exists", c.Name))
		}
	}
	id := f.id()
	f.configs[id] = swarm.Config{ID: id, Spec: c}
	return swarm.ConfigCreateResponse{ID: id}, nil
}

func (f *fakeEngine) ConfigRemove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("remove config %s", id); err != nil {
		return err
	}
	if _, ok := f.configs[id]; !ok {
		return errdefs.NotFound(fmt.Errorf("config %s not found", id))
	}
	delete(f.configs, id)
	return nil
}

func (f *fakeEngine) VolumeRemove(_ context.Context, id string, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("remove volume %s", id); err != nil {
		return err
	}
	if _, ok := f.volumes[id]; !ok {
		return errdefs.NotFound(fmt.Errorf("volume %s not found", id))
	}
	if c := f.holder(id); c != "" {
		return errdefs.Conflict(fmt.Errorf("remove %s: volume is in use - [%s]", id, c))
	}
	delete(f.volumes, id)
	return nil
}

// startLate moves a late task (lateTask) on: after its lists, it stops, and the volumes its
// container mounted exist again.
func (f *fakeEngine) startLate() {
	for i := range f.tasks {
		t := &f.tasks[i]
		n, late := f.lateLists[t.ID]
		if !late {
			continue
		}
		if f.lateLists[t.ID] = n - 1; n > 0 {
			continue
		}
		delete(f.lateLists, t.ID)
		t.Status.State, t.Status.ContainerStatus = swarm.TaskStateShutdown, &swarm.ContainerStatus{ContainerID: "c-" + t.ID}
		for _, m := range t.Spec.ContainerSpec.Mounts {
			if _, exists := f.volumes[m.Source]; !exists && m.Type == "volume" && m.VolumeOptions != nil {
				f.volumes[m.Source] = &volume.Volume{Name: m.Source, Labels: m.VolumeOptions.Labels}
			}
		}
	}
}

// holder is the container on the engine's node that still holds volume (containersHold).
func (f *fakeEngine) holder(volume string) string {
	if !f.containersHold {
		return ""
	}
	for _, t := range f.tasks {
		cs := t.Status.ContainerStatus
		if t.NodeID != fakeNode || cs == nil || f.containersGone[cs.ContainerID] || t.Spec.ContainerSpec == nil {
			continue
		}
		if _, listed := f.removed[t.ServiceID]; f.services[t.ServiceID] == nil && !listed {
			continue // reaped: swarm removed its container
		}
		for _, m := range t.Spec.ContainerSpec.Mounts {
			if m.Source == volume {
				return cs.ContainerID
			}
		}
	}
	return ""
}

// ContainerInspect is a container of a task on the engine's node: running while its task is,
// unless exitedLocally says the node saw it exit before the managers list it.
func (f *fakeEngine) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("inspect container %s", id); err != nil {
		return container.InspectResponse{}, err
	}
	for _, t := range f.tasks {
		cs := t.Status.ContainerStatus
		if cs == nil || cs.ContainerID != id || f.containersGone[id] || t.NodeID != fakeNode && t.NodeID != "" {
			continue
		}
		st := &container.State{Status: container.StateRunning, Running: true, StartedAt: t.Status.Timestamp.Format(time.RFC3339Nano)}
		if terminalTask(t) || f.exitedLocally[id] {
			st = &container.State{Status: container.StateExited, ExitCode: 3, StartedAt: st.StartedAt, FinishedAt: f.taskTime().Format(time.RFC3339Nano)}
		}
		return container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{ID: id, State: st}}, nil
	}
	return container.InspectResponse{}, errdefs.NotFound(fmt.Errorf("No such container: %s", id))
}

func (f *fakeEngine) ContainerRemove(_ context.Context, id string, _ container.RemoveOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("remove container %s", id); err != nil {
		return err
	}
	for _, t := range f.tasks {
		cs := t.Status.ContainerStatus
		if cs == nil || cs.ContainerID != id || f.containersGone[id] {
			continue
		}
		if !terminalTask(t) {
			return errdefs.Conflict(fmt.Errorf("cannot remove container %s: container is running: stop the container before removing or force remove", id))
		}
		if f.containersGone == nil {
			f.containersGone = map[string]bool{}
		}
		f.containersGone[id] = true
		return nil
	}
	return errdefs.NotFound(fmt.Errorf("No such container: %s", id))
}

func (f *fakeEngine) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("inspect image %s", ref); err != nil {
		return image.InspectResponse{}, err
	}
	if !f.images[ref] {
		return image.InspectResponse{}, errdefs.NotFound(fmt.Errorf("No such image: %s", ref))
	}
	return image.InspectResponse{ID: ref}, nil
}

func (f *fakeEngine) ImagePull(_ context.Context, ref string, _ image.PullOptions) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = f.record("pull image %s", ref)
	if len(f.pulls) == 0 {
		return nil, errdefs.NotFound(fmt.Errorf("pull access denied for %s, repository does not exist or may require 'docker login'", ref))
	}
	answer := f.pulls[0]
	f.pulls = f.pulls[1:]
	var stream pullStreamError
	switch {
	case answer == nil:
		f.images[ref] = true
		return io.NopCloser(strings.NewReader(`{"status":"Status: Downloaded newer image for ` + ref + `"}` + "\n")), nil
	case errors.As(answer, &stream):
		line, _ := json.Marshal(map[string]string{"error": string(stream)})
		return io.NopCloser(strings.NewReader(`{"status":"Pulling from ` + ref + `"}` + "\n" + string(line) + "\n")), nil
	}
	return nil, answer
}

// pullStreamError is a pull's answer that fails in the progress stream, after the engine
// answered 200, as a registry error met while pulling layers does.
type pullStreamError string

func (e pullStreamError) Error() string { return string(e) }

var _ Engine = (*fakeEngine)(nil)

// byHand changes a service as `docker service update` or `scale` does: the labels stay, the
// replaced spec becomes PreviousSpec, the version moves.
func (f *fakeEngine) byHand(name string, change func(*swarm.ServiceSpec)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, svc := range f.services {
		if svc.Spec.Name != name {
			continue
		}
		prev := svc.Spec
		next := svc.Spec
		if cs := prev.TaskTemplate.ContainerSpec; cs != nil {
			c := *cs
			c.Env = slices.Clone(cs.Env)
			next.TaskTemplate.ContainerSpec = &c
		}
		change(&next)
		next.EndpointSpec = storedEndpoint(next.EndpointSpec)
		svc.PreviousSpec, svc.Spec = &prev, next
		f.seq++
		svc.Version.Index = uint64(f.seq)
		f.runTasks(svc)
		return
	}
	panic("no service " + name)
}

// removeByHand removes a service as `docker service rm` does.
func (f *fakeEngine) removeByHand(name string) {
	f.mu.Lock()
	var id string
	for _, svc := range f.services {
		if svc.Spec.Name == name {
			id = svc.ID
		}
	}
	f.mu.Unlock()
	if err := f.ServiceRemove(context.Background(), id); err != nil {
		panic(err)
	}
}
