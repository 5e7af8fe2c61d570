package swarmstate

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// LabelRollFrom is a service label the controller stamps when its update changes the task
// template or the endpoint: the UpdateStatus.StartedAt the service had before (RFC 3339, ""
// for none). Swarm resets UpdateStatus on every update and starts a roll only when a task's
// template or endpoint is not the service's, so a roll is ours when its StartedAt differs
// from this value, and a stale "completed" from the previous deploy is never taken for
// success. (An endpoint change comes with a raised ForceUpdate, so that the tasks it rolls
// show here as not running the template: the API shows no task's endpoint.)
const LabelRollFrom = "swarm-reconciler.roll-from"

// ServiceState is the observed state of one service, as the status file reports it.
type ServiceState struct {
	Name        string
	Image       string
	Running     int
	Desired     int
	UpdateState string
	Converged   bool
	// Reason says why the service is not converged, in words a person can act on.
	Reason string
	// Tasks are the newest tasks (newest first, at most three), for diagnostics, and the
	// newest failed task when none of those failed: a rollback or restarts start tasks after
	// the one whose failure explains the verdict.
	Tasks []swarm.Task
	// RunningSince is when the youngest running task reported running (healthy, where the
	// service has a healthcheck: swarm reports such a task running only once it is); zero
	// when none runs. The stability window counts from it.
	RunningSince time.Time
	// Monitor is the service's update_config.monitor, 0 when the recipe sets none.
	Monitor time.Duration
	// Restarts counts the tasks that ended (exited, failed, rejected) since the attempt
	// began: each is a restart swarm made or was asked to make.
	Restarts int
	// LastExit is the exit code of the newest of those tasks that has one.
	LastExit *int
	// GaveUp says the restart policy will start no task again: none is left to run, and the
	// policy's condition or max_attempts stops it. Only an update of the service changes that.
	GaveUp bool
	// ImageErr says a task of this attempt was refused because its node has no such image and
	// cannot pull it, naming the image and the node: no retry on that node will find it.
	ImageErr string
	// ImageRefusedOn are the nodes (IDs) that refused a task of this attempt for want of its
	// image: swarm may place the next one elsewhere.
	ImageRefusedOn []string
	// RollbackOwed says swarm ended this attempt's roll as completed although the service's
	// update_config asks that a failed update be rolled back, and a previous spec is there to
	// go back to. Swarm judges a roll only while its monitor watches: a task that fails after
	// the monitor period, or a dockerd restart in the middle of the roll (the monitor is lost
	// and the update marked completed), leaves the new spec failing for good. When the
	// controller's verdict on the attempt is Failed, it owes the service that rollback.
	RollbackOwed bool
	// EndedSinceRoll says a task of the service ended on its own after the roll RollbackOwed
	// speaks of started: the new spec's tasks fail where swarm's monitor did not look.
	EndedSinceRoll bool
}

// Nodes are the swarm's nodes by ID and the ID of the engine the reconciler talks to, for the
// verdicts' messages: a task on another node is named with its node's hostname, and a task on
// a node that is down is said to be lost with it. The zero value names no node.
type Nodes struct {
	ByID map[string]swarm.Node
	Self string
}

// on says where task t is, for a message: " on node <hostname>", or "" for this engine's node
// and for unknown nodes.
func (n Nodes) on(t swarm.Task) string {
	if t.NodeID == "" || t.NodeID == n.Self || n.ByID == nil {
		return ""
	}
	if h := n.ByID[t.NodeID].Description.Hostname; h != "" {
		return " on node " + h
	}
	return " on node " + t.NodeID
}

// Name is the hostname of task t's node, or "" for this engine's node and unknown nodes.
func (n Nodes) Name(t swarm.Task) string {
	return strings.TrimPrefix(n.on(t), " on node ")
}

// down says why the node of task t cannot run it ("node x is down"), or "".
func (n Nodes) down(t swarm.Task) string {
	node, ok := n.ByID[t.NodeID]
	if !ok || t.NodeID == "" {
		return ""
	}
	name := node.Description.Hostname
	if name == "" {
		name = node.ID
	}
	switch {
	case node.Status.State == swarm.NodeStateDown || node.Status.State == swarm.NodeStateDisconnected:
		return fmt.Sprintf("node %s is %s", name, node.Status.State)
	case node.Spec.Availability == swarm.NodeAvailabilityDrain:
		return fmt.Sprintf("node %s is drained", name)
	}
	return ""
}

// imageError reports whether a task error says the node has no such image and could not pull
// it.
func imageError(err string) bool {
	for _, s := range []string{"No such image", "pull access denied", "manifest unknown", "repository does not exist"} {
		if strings.Contains(err, s) {
			return true
		}
	}
	return false
}

// Verdict is the converged verdict of a stack.
type Verdict struct {
	Converged bool
	// RolledBack is set when swarm rolled back or paused the update the controller requested:
	// the running spec is the old one, and waiting longer will not help.
	RolledBack bool
	// RollingBack names the services swarm is rolling back from a roll of the current
	// attempt: their old spec is back in place and the rollback has not ended. Applying the
	// new spec now would start the roll over (to roll back again); the rollback's end decides.
	RollingBack []string
	// GaveUp is set when a service's restart policy gave up (ServiceState.GaveUp).
	GaveUp bool
	// ImageErr is the first service's ServiceState.ImageErr, prefixed with its name.
	ImageErr string
	Message  string
	Services []ServiceState
}

// Converged computes DESIGN.md's converged verdict: every service runs its desired number of
// tasks (0/0 included; tasks that completed count for one-shot jobs), and no update is in
// flight. A service whose LabelRollFrom is set must also show a roll that started after the
// controller's update and reached "completed". A roll that started after since (the start of
// the controller's current attempt) and ended rolled back or paused is a RolledBack verdict:
// swarm restores the old spec and labels then, so the labels alone cannot tell.
func Converged(services []swarm.Service, tasks []swarm.Task, since time.Time) Verdict {
	return ConvergedOn(services, tasks, since, Nodes{})
}

// ConvergedOn is Converged with the nodes known: its messages name the node of a task that
// failed elsewhere than on this engine's node, and nodes that are down or drained.
func ConvergedOn(services []swarm.Service, tasks []swarm.Task, since time.Time, nodes Nodes) Verdict {
	byService := map[string][]swarm.Task{}
	for _, t := range tasks {
		byService[t.ServiceID] = append(byService[t.ServiceID], t)
	}
	v := Verdict{Converged: true}
	var waiting []string
	for _, svc := range services {
		st := serviceState(svc, byService[svc.ID], since, nodes)
		v.Services = append(v.Services, st)
		if !st.Converged {
			v.Converged = false
			waiting = append(waiting, st.Name+": "+st.Reason)
		}
		if rolledBack(svc, since) {
			v.RolledBack = true
		}
		if us := svc.UpdateStatus; us != nil && us.State == swarm.UpdateStateRollbackStarted && us.StartedAt != nil && !us.StartedAt.Before(since) {
			v.RollingBack = append(v.RollingBack, svc.Spec.Name)
		}
		v.GaveUp = v.GaveUp || st.GaveUp
		if st.ImageErr != "" && v.ImageErr == "" {
			v.ImageErr = st.Name + ": " + st.ImageErr
		}
	}
	ok := len(services) - len(waiting)
	switch {
	case len(services) == 0:
		v.Converged = false
		v.Message = "no services"
	case v.Converged:
		v.Message = fmt.Sprintf("%d/%d services converged", ok, len(services))
	default:
		v.Message = fmt.Sprintf("%d/%d services converged; %s", ok, len(services), strings.Join(waiting, "; "))
	}
	return v
}

func serviceState(svc swarm.Service, tasks []swarm.Task, since time.Time, nodes Nodes) ServiceState {
	job := svc.Spec.Mode.ReplicatedJob != nil || svc.Spec.Mode.GlobalJob != nil
	if job && svc.JobStatus != nil {
		// Every update of a job starts a new run (JobIteration); swarm keeps the tasks of the
		// earlier runs, completed ones with desired state "complete". Only this run counts.
		it := svc.JobStatus.JobIteration.Index
		tasks = slices.DeleteFunc(slices.Clone(tasks), func(t swarm.Task) bool { return t.JobIteration == nil || t.JobIteration.Index != it })
	}
	st := ServiceState{Name: svc.Spec.Name, Desired: desiredCount(svc, tasks, nodes)}
	if cs := svc.Spec.TaskTemplate.ContainerSpec; cs != nil {
		st.Image = cs.Image
	}
	if svc.UpdateStatus != nil {
		st.UpdateState = string(svc.UpdateStatus.State)
	}
	if uc := svc.Spec.UpdateConfig; uc != nil {
		st.Monitor = uc.Monitor
		us := svc.UpdateStatus
		st.RollbackOwed = uc.FailureAction == swarm.UpdateFailureActionRollback && svc.PreviousSpec != nil &&
			us != nil && us.State == swarm.UpdateStateCompleted && us.StartedAt != nil && !us.StartedAt.Before(since)
	}
	completed, live := 0, 0
	var lastEnded time.Time
	var lost []string // why tasks swarm thinks running are not: their nodes are down
	for _, t := range tasks {
		if st.RollbackOwed && ended(t, svc) && !t.Status.Timestamp.Before(*svc.UpdateStatus.StartedAt) {
			st.EndedSinceRoll = true
		}
		if ended(t, svc) && !t.Status.Timestamp.Before(since) {
			st.Restarts++
			if cs := t.Status.ContainerStatus; cs != nil && t.Status.Timestamp.After(lastEnded) {
				code := cs.ExitCode
				st.LastExit, lastEnded = &code, t.Status.Timestamp
			}
		}
		if willRun(t) {
			live++
		}
		if imageError(t.Status.Err) && !t.Status.Timestamp.Before(since) && !slices.Contains(st.ImageRefusedOn, t.NodeID) {
			st.ImageRefusedOn = append(st.ImageRefusedOn, t.NodeID)
		}
		if st.ImageErr == "" && imageError(t.Status.Err) && !t.Status.Timestamp.Before(since) {
			where := nodes.on(t)
			if where == "" {
				where = " on this node"
			}
			st.ImageErr = fmt.Sprintf("image %s could not be found or pulled%s (%s): images are per node; load or build it on that node, or constrain the service to nodes that have it", st.Image, where, t.Status.Err)
		}
		if why := nodes.down(t); why != "" && t.Status.State == swarm.TaskStateRunning && !slices.Contains(lost, why) {
			lost = append(lost, why)
		}
		if t.DesiredState != swarm.TaskStateRunning && t.DesiredState != swarm.TaskStateComplete {
			continue
		}
		switch t.Status.State {
		case swarm.TaskStateRunning:
			st.Running++
			if t.Status.Timestamp.After(st.RunningSince) {
				st.RunningSince = t.Status.Timestamp
			}
		case swarm.TaskStateComplete:
			completed++
		}
	}
	completed += oneShotsDone(svc, tasks, nodes)
	st.Tasks = diagnostic(tasks, 3)
	updating := st.UpdateState == string(swarm.UpdateStateUpdating) || st.UpdateState == string(swarm.UpdateStateRollbackStarted)
	// Swarm shuts a failed task down and creates its replacement in one transaction, so a slot
	// without a task it means to run is one whose restart policy gave up.
	st.GaveUp = !updating && (svc.Spec.Mode.Replicated != nil || svc.Spec.Mode.Global != nil) && live < st.Desired && st.Restarts > 0 &&
		st.Running+completed < st.Desired && restartsLimited(svc)
	done := st.Running + completed
	if job {
		done = completed // a job converges when its run completed, not while it runs
	}
	globalMode := svc.Spec.Mode.Global != nil || svc.Spec.Mode.GlobalJob != nil
	stalePaused := svc.UpdateStatus != nil && (svc.UpdateStatus.State == swarm.UpdateStatePaused || svc.UpdateStatus.State == swarm.UpdateStateRollbackPaused)
	var previous int // with a roll paused: tasks swarm means to run on a spec other than the service's
	for _, t := range tasks {
		if stalePaused && t.DesiredState == swarm.TaskStateRunning && taskDirty(svc.Spec.TaskTemplate, t, nodes) {
			previous++
		}
	}

	switch {
	case updating:
		st.Reason = "update " + st.UpdateState
	case awaitingRoll(svc, tasks, nodes):
		st.Reason = "waiting for swarm to start the update"
	case rolledBack(svc, since):
		st.Reason = fmt.Sprintf("update %s: %s", st.UpdateState, svc.UpdateStatus.Message)
	case stalePaused && previous > 0:
		// Swarm never resumes a paused roll (its updater returns at once): the slots it had not
		// reached run the other spec for good, until the service is updated again.
		st.Reason = fmt.Sprintf("update %s (%s): %d tasks still run another spec than the service's", st.UpdateState, svc.UpdateStatus.Message, previous)
	case globalMode && len(tasks) == 0:
		st.Reason = "waiting for swarm to create its tasks (none yet: swarm is creating them, or no node meets its constraints)"
	case st.Running > st.Desired:
		st.Reason = fmt.Sprintf("%d/%d tasks running (old tasks still stopping)", st.Running, st.Desired)
	case st.GaveUp:
		st.Reason = fmt.Sprintf("%d/%d tasks running: the restart policy gave up (%s) and swarm will start no task again", st.Running, st.Desired, restartPolicy(svc))
		if e := failedTask(st.Tasks, nodes); e != "" {
			st.Reason += "; last " + e
		}
	case done < st.Desired:
		st.Reason = fmt.Sprintf("%d/%d tasks running", st.Running, st.Desired)
		if job {
			st.Reason = fmt.Sprintf("%d/%d tasks of the job's run completed, %d running", completed, st.Desired, st.Running)
		}
		if len(lost) > 0 {
			st.Reason += " (" + strings.Join(lost, ", ") + ": swarm replaces its tasks on other nodes)"
		}
		if e := taskError(st.Tasks, nodes); e != "" {
			st.Reason += ": " + e
		}
		st.Reason += st.restarts()
	default:
		st.Converged = true
	}
	return st
}

// restarts says how often the service's tasks ended in this attempt, for a message.
func (st ServiceState) restarts() string {
	n := fmt.Sprintf("%d restarts", st.Restarts)
	switch {
	case st.Restarts == 0:
		return ""
	case st.Restarts == 1:
		n = "1 restart"
	}
	if st.LastExit != nil {
		return fmt.Sprintf(" (%s, last exit code %d)", n, *st.LastExit)
	}
	return " (" + n + ")"
}

// ended reports a task whose container stopped on its own or never started: a failure, a
// rejection, or an exit of a service that is meant to keep running. A task shut down by swarm
// (an update, a scale-down) did not end on its own.
func ended(t swarm.Task, svc swarm.Service) bool {
	switch t.Status.State {
	case swarm.TaskStateFailed, swarm.TaskStateRejected:
		return true
	case swarm.TaskStateComplete:
		return svc.Spec.Mode.Replicated != nil || svc.Spec.Mode.Global != nil
	}
	return false
}

// oneShotsDone counts the slots (nodes, for a global service) of a service under restart
// condition none whose newest task completed: swarm's restart supervisor sets such a task's
// desired state to shutdown and starts no replacement (restart.Supervisor.Restart), so its
// work is done for good, as a job's is. A slot that swarm means to run a task in, or whose
// newest task ended otherwise, or that a scale-down removed (desired "remove"), is not done;
// nor is a node swarm no longer runs a global service on (Nodes.globalRunsOn).
func oneShotsDone(svc swarm.Service, tasks []swarm.Task, nodes Nodes) int {
	rp := svc.Spec.TaskTemplate.RestartPolicy
	if rp == nil || rp.Condition != swarm.RestartPolicyConditionNone || svc.Spec.Mode.Replicated == nil && svc.Spec.Mode.Global == nil {
		return 0
	}
	type slot struct {
		n    int
		node string
	}
	key := func(t swarm.Task) slot {
		if svc.Spec.Mode.Global != nil {
			return slot{node: t.NodeID}
		}
		return slot{n: t.Slot}
	}
	newest, busy := map[slot]swarm.Task{}, map[slot]bool{}
	for _, t := range tasks {
		k := key(t)
		busy[k] = busy[k] || willRun(t)
		if n, ok := newest[k]; !ok || t.Status.Timestamp.After(n.Status.Timestamp) {
			newest[k] = t
		}
	}
	done := 0
	for k, t := range newest {
		if !busy[k] && t.DesiredState == swarm.TaskStateShutdown && t.Status.State == swarm.TaskStateComplete &&
			(svc.Spec.Mode.Global == nil || nodes.globalRunsOn(svc, k.node)) {
			done++
		}
	}
	return done
}

// willRun reports a task swarm still means to run: a replacement waiting out the restart
// delay is desired "ready", one running or about to is desired "running".
func willRun(t swarm.Task) bool {
	switch t.DesiredState {
	case swarm.TaskStateNew, swarm.TaskStateAllocated, swarm.TaskStatePending, swarm.TaskStateAssigned,
		swarm.TaskStateAccepted, swarm.TaskStatePreparing, swarm.TaskStateReady, swarm.TaskStateStarting,
		swarm.TaskStateRunning:
		return true
	}
	return false
}

// restartsLimited reports a restart policy that can stop restarting: a condition other than
// "any", or a max_attempts. Under the default policy swarm always starts a replacement.
func restartsLimited(svc swarm.Service) bool {
	rp := svc.Spec.TaskTemplate.RestartPolicy
	return rp != nil && (rp.Condition == swarm.RestartPolicyConditionNone ||
		rp.Condition == swarm.RestartPolicyConditionOnFailure ||
		rp.MaxAttempts != nil && *rp.MaxAttempts > 0)
}

// restartPolicy is the service's restart policy as a compose file writes it.
func restartPolicy(svc swarm.Service) string {
	rp := svc.Spec.TaskTemplate.RestartPolicy
	parts := []string{"condition " + string(rp.Condition)}
	if rp.Condition == "" {
		parts[0] = "condition any"
	}
	if rp.MaxAttempts != nil && *rp.MaxAttempts > 0 {
		parts = append(parts, fmt.Sprintf("max_attempts %d", *rp.MaxAttempts))
	}
	return strings.Join(parts, ", ")
}

// Unstable says, at now, which converged services have a task that has not yet run for the
// service's stability window (window(st)) without a restart, and when the last of them will
// have; a zero time when every one has. A task that ends inside its window is replaced by a
// younger one, so the wait starts again.
func (v Verdict) Unstable(now time.Time, window func(ServiceState) time.Duration) (until time.Time, waiting []string) {
	for _, s := range v.Services {
		w := window(s)
		end := s.StableAt(w)
		if !end.After(now) {
			continue
		}
		if end.After(until) {
			until = end
		}
		// Times, not how long so far: the message stays the same over the passes of one window.
		const clock = "15:04:05.000Z07:00"
		skew := ""
		if s.RunningSince.After(now) {
			// Swarm's time of a task, which this clock has not reached: the wait lasts until it
			// does, as Kubernetes' minReadySeconds does; say why it is long.
			// No "how far": the message stays the same over the passes of the window.
			skew = " (after this host's clock: a node's clock ahead, or this one set back)"
		}
		waiting = append(waiting, fmt.Sprintf("%s: up since %s%s, stable at %s if it stays up (%s window)%s",
			s.Name, s.RunningSince.UTC().Format(clock), skew, end.UTC().Format(clock), w, s.restarts()))
	}
	return until, waiting
}

// StableAt is when s's youngest running task will have run the stability window w without a
// restart: the zero time when s is not converged, has no window, or runs no task.
func (s ServiceState) StableAt(w time.Duration) time.Time {
	if !s.Converged || w <= 0 || s.RunningSince.IsZero() {
		return time.Time{}
	}
	return s.RunningSince.Add(w)
}

// awaitingRoll reports whether the controller's last update changed the task template (or
// the endpoint, with the template's ForceUpdate) and swarm has not yet started the roll it
// implies. Swarm rolls only the tasks whose spec is not the template (swarmkit's IsTaskDirty),
// and an update clears UpdateStatus: an update that
// left the template as the tasks run it (a `--force` raised by hand and kept, a hand change
// undone by hand, a hand update swarm rolled back, a hot fix the spec caught up with) starts
// no roll, and none is waited for. Runtime is not compared: the engine shows it on a service's
// template and never on a task's. Nor is placement alone, for a task whose node meets the new
// constraints (swarmkit's IsTaskDirtyPlacementConstraintsOnly), or whose node is not known (a
// swarm of one node, where the verdict is given no nodes).
func awaitingRoll(svc swarm.Service, tasks []swarm.Task, nodes Nodes) bool {
	from, ok := svc.Spec.Labels[LabelRollFrom]
	if !ok {
		return false
	}
	if us := svc.UpdateStatus; us != nil && us.StartedAt != nil && us.StartedAt.UTC().Format(time.RFC3339Nano) != from {
		return false // a roll started since
	}
	return slices.ContainsFunc(tasks, func(t swarm.Task) bool {
		return t.DesiredState == swarm.TaskStateRunning && taskDirty(svc.Spec.TaskTemplate, t, nodes)
	})
}

// taskDirty reports whether swarm replaces task t to run template.
func taskDirty(template swarm.TaskSpec, t swarm.Task, nodes Nodes) bool {
	want, got := template, t.Spec
	want.Runtime, got.Runtime = "", ""
	if reflect.DeepEqual(want, got) {
		return false
	}
	want.Placement, got.Placement = nil, nil
	if !reflect.DeepEqual(want, got) {
		return true
	}
	// Placement alone changed: swarm moves the task only off a node that does not meet the
	// new constraints.
	node, known := nodes.ByID[t.NodeID]
	if !known {
		return nodes.ByID != nil // nodes known, this one not: swarm may well move the task
	}
	var exprs []string
	if template.Placement != nil {
		exprs = template.Placement.Constraints
	}
	ok, err := NodeMatches(exprs, node)
	return err != nil || !ok
}

// rolledBack reports a roll of the current attempt that ended without the new spec running.
// Older terminal states do not count: swarm leaves "paused" set forever after one flicker.
func rolledBack(svc swarm.Service, since time.Time) bool {
	us := svc.UpdateStatus
	if us == nil || us.StartedAt == nil || us.StartedAt.Before(since) {
		return false
	}
	switch us.State {
	case swarm.UpdateStateRollbackCompleted, swarm.UpdateStateRollbackPaused, swarm.UpdateStatePaused:
		return true
	}
	return false
}

func desiredCount(svc swarm.Service, tasks []swarm.Task, nodes Nodes) int {
	switch {
	case svc.Spec.Mode.Replicated != nil:
		if r := svc.Spec.Mode.Replicated.Replicas; r != nil {
			return int(*r)
		}
		return 1 // the engine's default when a spec leaves replicas out
	case svc.Spec.Mode.ReplicatedJob != nil:
		if c := svc.Spec.Mode.ReplicatedJob.TotalCompletions; c != nil {
			return int(*c)
		}
		return 1
	default:
		// Global services run one task per eligible node: count the nodes swarm means to run it
		// on. A node whose task failed has its replacement desired "ready" while the restart
		// delay runs; one whose restart policy gave up keeps its newest, ended task, and swarm
		// starts none there until the service changes (restart.UpdatableTasksInSlot). Nodes
		// down, drained or no longer meeting the constraints have only tasks swarm shut down,
		// and a newest task that ended there does not count: swarm starts none there, whatever
		// the service does.
		on := map[string]bool{}
		newest := map[string]swarm.Task{}
		for _, t := range tasks {
			if willRun(t) || t.DesiredState == swarm.TaskStateComplete {
				on[t.NodeID] = true
			}
			if n, ok := newest[t.NodeID]; !ok || t.Status.Timestamp.After(n.Status.Timestamp) {
				newest[t.NodeID] = t
			}
		}
		if restartsLimited(svc) {
			for node, t := range newest {
				if ended(t, svc) && nodes.globalRunsOn(svc, node) {
					on[node] = true
				}
			}
		}
		return len(on)
	}
}

// globalRunsOn reports whether swarm's global orchestrator runs a task of svc on the node with
// this ID: not on a node that is down, drained or paused, nor on one that does not meet the
// service's constraints (swarmkit orchestrator.InvalidNode, global.reconcileServices). A node
// not known (the verdict given no nodes, or a node not listed) counts.
func (n Nodes) globalRunsOn(svc swarm.Service, id string) bool {
	node, ok := n.ByID[id]
	if !ok || id == "" {
		return true
	}
	if node.Status.State == swarm.NodeStateDown || node.Spec.Availability == swarm.NodeAvailabilityDrain ||
		node.Spec.Availability == swarm.NodeAvailabilityPause {
		return false
	}
	var exprs []string
	if p := svc.Spec.TaskTemplate.Placement; p != nil {
		exprs = p.Constraints
	}
	matches, err := NodeMatches(exprs, node)
	return err != nil || matches
}

// diagnostic is the n newest tasks, newest first, plus the newest failed task if none of
// those failed.
func diagnostic(tasks []swarm.Task, n int) []swarm.Task {
	all := slices.Clone(tasks)
	sort.SliceStable(all, func(i, j int) bool { return all[i].Status.Timestamp.After(all[j].Status.Timestamp) })
	out := slices.Clip(all[:min(n, len(all))])
	if slices.ContainsFunc(out, Failed) {
		return out
	}
	if i := slices.IndexFunc(all, Failed); i >= 0 {
		out = append(out, all[i])
	}
	return out
}

// Failed reports a task that failed: swarm gave an error, or its state is failed.
func Failed(t swarm.Task) bool {
	return t.Status.Err != "" || t.Status.State == swarm.TaskStateFailed
}

// taskError is the newest task error swarm reported, e.g. "No such image: x" or
// "starting container failed: ...".
func taskError(newestFirst []swarm.Task, nodes Nodes) string {
	for _, t := range newestFirst {
		if t.Status.Err != "" {
			return fmt.Sprintf("task %s%s: %s", t.Status.State, nodes.on(t), t.Status.Err)
		}
	}
	return ""
}

// RolloutFailure says, for a RolledBack verdict, what swarm did to each service whose roll
// failed and why: the newest failed task's error and exit code, and which spec now runs.
func (v Verdict) RolloutFailure() string {
	var parts []string
	for _, s := range v.Services {
		var what string
		switch swarm.UpdateState(s.UpdateState) {
		case swarm.UpdateStateRollbackCompleted:
			what = "rolled back: the running spec is the previous one"
		case swarm.UpdateStateRollbackPaused:
			what = "rollback paused: some tasks may run the new spec, some the previous one"
		case swarm.UpdateStatePaused:
			what = "update paused: the new spec is in place but its tasks failed, so the service is not serving; fix the release or set version back"
		default:
			continue
		}
		if why := failedTask(s.Tasks, Nodes{}); why != "" {
			what += "; " + why
		}
		parts = append(parts, s.Name+" "+what)
	}
	return strings.Join(parts, "; ")
}

// failedTask describes the newest task that failed: swarm's error and the exit code. A task
// that ended (failed or rejected) comes before a newer one still waiting with a scheduler's note:
// after a rollback the old spec's task can wait for a host-mode port the crashed task held
// ("no suitable node (host-mode port already in use ...)"), which says nothing of why the roll
// failed.
func failedTask(newestFirst []swarm.Task, nodes Nodes) string {
	i := slices.IndexFunc(newestFirst, func(t swarm.Task) bool {
		return t.Status.State == swarm.TaskStateFailed || t.Status.State == swarm.TaskStateRejected
	})
	if i < 0 {
		i = slices.IndexFunc(newestFirst, Failed)
	}
	if i < 0 {
		return ""
	}
	t := newestFirst[i]
	msg := fmt.Sprintf("task %s%s: %s", t.Status.State, nodes.on(t), t.Status.Err)
	if cs := t.Status.ContainerStatus; cs != nil && cs.ExitCode != 0 {
		msg += fmt.Sprintf(" (exit code %d)", cs.ExitCode)
	}
	return msg
}
