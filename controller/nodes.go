package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// Volumes are node-local: a task on another node creates the app's named volumes there, where
// the engine the reconciler talks to cannot list or remove them. A teardown removes them with
// a swarm job per node (LabelJob), a task of the reconciler's own image that runs
// `reconciler node-clean` against that node's socket; the app is Deleted only once every node
// that ran a task of the app has answered that nothing of it is left (status.nodes).

// LabelJob marks a service the reconciler runs for itself, not for the recipe: the value says
// what for ("volumes"). Such a service is never planned as the app's and is removed only once
// its work is done.
const LabelJob = swarmstate.LabelJob

// LabelJobNode is the node a volume job serves.
const LabelJobNode = "swarm-reconciler.node"

const jobVolumes = "volumes"

// LabelJobScope marks a volume job that removes the volumes of one stack only
// (scopeLeftStack): a move's, on a node that ran a task of the stack the app left, while the
// app's new stack may run there. A job without it is a teardown's: every volume of the app.
const LabelJobScope = "swarm-reconciler.job-scope"

const scopeLeftStack = "left-stack"

// jobRetry is how long a failed volume job is kept (its error in the app's message) before it
// is tried again: a job that cannot start (its image missing on the node) would otherwise start
// a container twice a second.
const jobRetry = 10 * time.Second

// NodeJobs is what the volume jobs run: Image must hold the reconciler binary as its entrypoint
// on every node (the nodes' engines use a local copy, or pull it), and Socket is the path of the
// Docker socket on every node's host, bind-mounted into the job.
type NodeJobs struct {
	Image  string
	Socket string
	// Wait bounds how long one job waits for the app's volumes to be released by containers
	// still stopping on its node.
	Wait time.Duration
}

// DefaultNodeJobs are the defaults of --node-image and --node-socket.
var DefaultNodeJobs = NodeJobs{Image: "swarm-reconciler:dev", Socket: "/var/run/docker.sock", Wait: 2 * time.Minute}

// nodeName is how a message names a node: its hostname, else its ID.
func nodeName(n spec.NodeVolumes) string {
	if n.Hostname != "" {
		return n.Hostname
	}
	return n.ID
}

// answeredEntry is what st.Removed records of node n once its job answered.
func answeredEntry(n spec.NodeVolumes) string {
	return fmt.Sprintf("volumes on node %s: %s", nodeName(n), nodeHolds(n))
}

// nodeAnswered reports whether st.Removed, the teardown's, records the answer of node n.
func nodeAnswered(st *spec.Status, n spec.NodeVolumes) bool {
	prefix := fmt.Sprintf("volumes on node %s: ", nodeName(n))
	return slices.ContainsFunc(st.Removed, func(r string) bool { return strings.HasPrefix(r, prefix) })
}

// leftEntry is what st.Removed records of node n once it left the swarm, its volumes with it.
// It names the node's ID too: a later look finds a task there by the node's ID alone, the
// swarm no longer listing the node to give its hostname.
func leftEntry(n spec.NodeVolumes) string {
	if n.Hostname != "" {
		return fmt.Sprintf("volumes on node %s (node ID %s, left the swarm): %s", n.Hostname, n.ID, nodeHolds(n))
	}
	return fmt.Sprintf("volumes on node %s (left the swarm): %s", n.ID, nodeHolds(n))
}

// nodeLeft reports whether st.Removed, the teardown's, records that node id left the swarm.
func nodeLeft(st *spec.Status, id string) bool {
	return slices.ContainsFunc(st.Removed, func(r string) bool {
		return strings.Contains(r, "(node ID "+id+", left the swarm): ") || strings.HasPrefix(r, "volumes on node "+id+" (left the swarm): ")
	})
}

// sharedHostname reports whether another node of nodes has node's hostname (a node joined
// again under a new ID): an answer recorded by hostname does not say which of them gave it.
func sharedHostname(nodes map[string]swarm.Node, node string) bool {
	h := nodes[node].Description.Hostname
	for id, n := range nodes {
		if id != node && h != "" && n.Description.Hostname == h {
			return true
		}
	}
	return false
}

// recordNodes adds to st.Nodes every node other than self on which a task of the app was
// placed, with the named volumes of ours the task mounts: the volumes a teardown must remove
// there; and, for a task of one of jobs (the recipe's job services), that service, whose
// finished containers there the teardown removes too. Hostnames come from nodes when known.
// A task of a removed service (not in live) that has ended on a node whose job answered in
// this teardown is not recorded again: the answer covered it (planNodeJobs takes none before
// every such task there has ended, covered), and swarm lists it until the managers reap it,
// seconds after a job that removes a stopped container itself has answered.
// answered says st.Removed is the last teardown's (a pass after its first): an answer it records
// was given in that teardown.
func recordNodes(st *spec.Status, tasks []swarm.Task, jobs map[string]bool, live map[string]bool, answered bool, nodes map[string]swarm.Node, self string) {
	for _, t := range tasks {
		if t.NodeID == "" || t.NodeID == self || t.ServiceID == "" {
			continue
		}
		if answered && !live[t.ServiceID] && terminalTask(t) && !sharedHostname(nodes, t.NodeID) &&
			nodeAnswered(st, spec.NodeVolumes{ID: t.NodeID, Hostname: nodes[t.NodeID].Description.Hostname}) {
			continue
		}
		if _, known := nodes[t.NodeID]; answered && nodes != nil && !known && nodeLeft(st, t.NodeID) {
			// What the app had there left with the node, as this teardown recorded: swarm lists
			// the task until it orphans and reaps it (a node's ID is never reused).
			continue
		}
		job := jobs[t.ServiceID]
		vols := appVolumes(t)
		if len(vols) == 0 && !job {
			continue
		}
		i := slices.IndexFunc(st.Nodes, func(n spec.NodeVolumes) bool { return n.ID == t.NodeID })
		if i < 0 {
			st.Nodes = append(st.Nodes, spec.NodeVolumes{ID: t.NodeID})
			i = len(st.Nodes) - 1
		}
		n := &st.Nodes[i]
		if h := nodes[t.NodeID].Description.Hostname; h != "" {
			n.Hostname = h
		}
		for _, v := range vols {
			if !slices.Contains(n.Volumes, v) {
				n.Volumes = append(n.Volumes, v)
			}
		}
		sort.Strings(n.Volumes)
		if job && !slices.Contains(n.Jobs, t.ServiceID) {
			n.Jobs = append(n.Jobs, t.ServiceID)
			sort.Strings(n.Jobs)
		}
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return nodeName(st.Nodes[i]) < nodeName(st.Nodes[j]) })
}

// recipeJobs are the IDs of the recipe's job services (replicated-job, global-job) own owns
// among services: not the reconciler's own jobs (isJob).
func recipeJobs(own swarmstate.Owner, services []swarm.Service) map[string]bool {
	jobs := map[string]bool{}
	for _, s := range services {
		if (s.Spec.Mode.ReplicatedJob != nil || s.Spec.Mode.GlobalJob != nil) && !isJob(s) && own.Owns(s.Spec.Labels) {
			jobs[s.ID] = true
		}
	}
	return jobs
}

// nodeHolds says what of the app the teardown removes on node n.
func nodeHolds(n spec.NodeVolumes) string {
	s := strings.Join(n.Volumes, ", ")
	if len(n.Jobs) > 0 {
		if s != "" {
			s += "; "
		}
		s += fmt.Sprintf("the finished containers of %d of the recipe's jobs", len(n.Jobs))
	}
	return s
}

// isJob reports whether a service is one the reconciler runs for itself (LabelJob).
func isJob(s swarm.Service) bool {
	return s.Spec.Labels[LabelJob] == jobVolumes && s.Spec.Labels[LabelJobNode] != ""
}

// onlyJobs reports whether all that snap holds is jobs (and their tasks).
func onlyJobs(snap *swarmstate.Snapshot) bool {
	return len(snap.Services) > 0 && len(snap.Networks)+len(snap.Configs)+len(snap.Secrets)+len(snap.Volumes) == 0 &&
		!slices.ContainsFunc(snap.Services, func(s swarm.Service) bool { return !isJob(s) })
}

// nodeCleanup is the part of a teardown on other nodes, decided from the status's nodes, the
// volume jobs the snapshot shows and the swarm's nodes: the jobs to create or remove, the
// nodes found clean (dropped from st.Nodes and recorded in st.Removed), and what is waited for.
type nodeCleanup struct {
	Actions []Action
	Waiting []string
	// Away says every node still pending is down or drained: nothing will move until a node
	// event says it is back.
	Away bool
	// Answered are the nodes whose job completed: nothing of the app is left on them.
	Answered []string
	// Left counts the nodes still pending that the janitor asks nothing, not knowing which
	// stack's volumes there are the app's: no later look of this process moves them.
	Left int
}

// planNodeCleanup decides the next step of removing the app's volumes on other nodes. st is
// updated: a node whose job completed, or that left the swarm (its volumes went with it), is no
// longer pending. A job that failed is removed, to be created again, once jobRetry has passed.
func planNodeCleanup(w *world, st *spec.Status, jobs NodeJobs) nodeCleanup {
	return planNodeJobs(w, w.Snap, stackOf(w), false, st, jobs)
}

// planNodeJobs is planNodeCleanup for the volume jobs of stack that snap shows: with
// leftStack, a move's jobs, which remove that stack's volumes only (st then holds only those);
// without, a teardown's, which remove every volume of the app and replace a move's jobs.
func planNodeJobs(w *world, snap *swarmstate.Snapshot, stack string, leftStack bool, st *spec.Status, jobs NodeJobs) nodeCleanup {
	var out nodeCleanup
	remove := func(job swarm.Service, why string) {
		out.Actions = append(out.Actions, Action{Kind: RemoveService, Name: job.Spec.Name, ID: job.ID, Labels: job.Spec.Labels, Reason: why})
	}
	byNode := map[string]swarm.Service{}
	for _, s := range snap.Services {
		if s.Spec.Labels[LabelJob] != jobVolumes || !w.Owner.Owns(s.Spec.Labels) {
			continue
		}
		switch scoped := s.Spec.Labels[LabelJobScope] == scopeLeftStack; {
		case scoped == leftStack && (!leftStack || s.Spec.Labels[swarmstate.LabelNamespace] == stack):
			byNode[s.Spec.Labels[LabelJobNode]] = s
		case scoped && !leftStack:
			remove(s, "the app is torn down: its teardown's job removes every volume of the app on the node")
		}
	}
	tasks := map[string][]swarm.Task{}
	for _, t := range snap.Tasks {
		tasks[t.ServiceID] = append(tasks[t.ServiceID], t)
	}
	jobIDs := map[string]bool{}
	for _, s := range byNode {
		jobIDs[s.ID] = true
	}
	var pending []spec.NodeVolumes
	for _, n := range st.Nodes {
		job, running := byNode[n.ID]
		delete(byNode, n.ID)
		node, known := w.Nodes[n.ID]
		if !known && w.Nodes != nil {
			// The node left the swarm: its volumes (and its disk) are not the swarm's any more.
			st.Removed = append(st.Removed, leftEntry(n))
			if running {
				remove(job, "its node left the swarm")
			}
			continue
		}
		if !running && w.Owner.Dir == "" && stack == "" {
			// The janitor (any owner's) with no stack to name: the job would remove every
			// volume of an app of this name on the node, another owner's live one's too.
			out.Waiting = append(out.Waiting, fmt.Sprintf("node %s: which stack's volumes there are this app's is not known (no status records it), so the janitor leaves them (%s): remove them with `reconciler node-clean --app %s --owner OWNER` against that node, or run the janitor with the status directory of the reconciler that deployed the app",
				nodeName(n), nodeHolds(n), w.App))
			pending = append(pending, n)
			out.Left++
			continue
		}
		if !running {
			spec := volumeJob(w, n, jobs, stack, leftStack)
			out.Actions = append(out.Actions, Action{Kind: CreateService, Name: spec.Name, Service: &spec,
				Reason: fmt.Sprintf("remove the app's volumes on node %s: %s", nodeName(n), nodeHolds(n))})
			out.Waiting = append(out.Waiting, nodeWait(n, node, nil))
			pending = append(pending, n)
			continue
		}
		t := newestTask(tasks[job.ID])
		answered, done := lastComplete(tasks[job.ID])
		starting, endedAfter := lateTasks(snap.Tasks, jobIDs, n.ID, answered, w.stoppedBy(tasks[job.ID]), n.Jobs)
		switch {
		case done && starting:
			// A task of the app there had not ended when the node answered: a container it
			// makes would make the app's volumes again. Asked again once it has ended.
			out.Waiting = append(out.Waiting, fmt.Sprintf("node %s answered while a task of the app there had not ended: asking it again once that task has", nodeName(n)))
			pending = append(pending, n)
		case done && endedAfter:
			remove(job, "a task of the app there ended after the node answered; asked again")
			out.Waiting = append(out.Waiting, nodeWait(n, node, nil))
			pending = append(pending, n)
		case done:
			st.Removed = append(st.Removed, answeredEntry(n))
			out.Answered = append(out.Answered, n.ID)
			remove(job, "its node answered that nothing of the app is left there")
		case t != nil && terminalTask(*t):
			if w.Now.Sub(t.Status.Timestamp) >= jobRetry {
				// Removed now, created again by the next pass: a retry.
				remove(job, "failed; tried again")
			}
			out.Waiting = append(out.Waiting, nodeWait(n, node, t))
			pending = append(pending, n)
		default:
			out.Waiting = append(out.Waiting, nodeWait(n, node, t))
			pending = append(pending, n)
		}
	}
	// Jobs of nodes the status does not list: done (a pass that died after recording the node
	// clean), or the status was lost meanwhile: then the node is pending again.
	for node, job := range byNode {
		if _, done := lastComplete(tasks[job.ID]); done {
			remove(job, "its work is done")
			out.Answered = append(out.Answered, node)
			continue
		}
		if _, known := w.Nodes[node]; !known && w.Nodes != nil {
			// Its node left the swarm (recorded when the node was dropped from st.Nodes; a
			// removal of the job that failed then is tried again here): nothing to wait for.
			remove(job, "its node left the swarm")
			continue
		}
		n := spec.NodeVolumes{ID: node, Hostname: w.Nodes[node].Description.Hostname}
		out.Waiting = append(out.Waiting, nodeWait(n, w.Nodes[node], newestTask(tasks[job.ID])))
		pending = append(pending, n)
	}
	st.Nodes = pending
	out.Away = len(pending) > 0
	for _, n := range pending {
		out.Away = out.Away && nodeAway(w.Nodes[n.ID])
	}
	return out
}

// liveServices are the IDs of the services snap lists: a task of another was removed with it.
func liveServices(snap *swarmstate.Snapshot) map[string]bool {
	live := make(map[string]bool, len(snap.Services))
	for _, s := range snap.Services {
		live[s.ID] = true
	}
	return live
}

// withoutSettledTasks is snap without the tasks a teardown does not wait for: those done (a
// stopped container holds no network; swarm keeps the finished tasks of a removed job for
// good), and those on nodes that are down or disconnected, whose tasks stay listed until the
// node reports, which a node gone for good never does (what such a node holds when it returns
// is the node cleanup's, st.Nodes), and those of a removed service that swarm will never place
// (neverPlaced). What is left are the tasks still starting or running, whose containers may
// yet attach the app's network. snap itself is not changed.
func withoutSettledTasks(snap *swarmstate.Snapshot, nodes map[string]swarm.Node) *swarmstate.Snapshot {
	live := liveServices(snap)
	settled := func(t swarm.Task) bool {
		n, ok := nodes[t.NodeID]
		return terminalTask(t) || ok && nodeLost(n) ||
			!live[t.ServiceID] && neverPlaced(t)
	}
	if !slices.ContainsFunc(snap.Tasks, settled) {
		return snap
	}
	out := *snap
	out.Tasks = slices.DeleteFunc(slices.Clone(snap.Tasks), settled)
	return &out
}

// neverPlaced reports whether a task of a removed service stays where it is for good, on no
// node: swarm's allocator drops a new task whose service is gone, and its scheduler skips an
// unassigned one whose desired state is past completion. A jobs orchestrator left running on a
// manager that was once swarm's leader (moby/moby#53632) creates tasks in the very moment a
// job is removed, and those stay listed, new, for good (seen on the multi-node swarm: two of a
// removed volume job kept a teardown waiting). Nor is a task of a job the teardown made to
// run nowhere (jobStopped) ever placed: swarm keeps it, pending, after the job's removal.
func neverPlaced(t swarm.Task) bool {
	return t.NodeID == "" && (t.Status.State == swarm.TaskStateNew ||
		t.DesiredState == swarm.TaskStateShutdown || t.DesiredState == swarm.TaskStateRemove ||
		t.Spec.Placement != nil && slices.Contains(t.Spec.Placement.Constraints, jobStopped))
}

// nodeLost reports a node that is down or disconnected: its tasks report no end until it is back.
func nodeLost(n swarm.Node) bool {
	return n.Status.State == swarm.NodeStateDown || n.Status.State == swarm.NodeStateDisconnected
}

// nodeAway reports whether a node cannot run a job now: down, disconnected, drained or paused.
// A node event says when that changes.
func nodeAway(n swarm.Node) bool {
	return nodeLost(n) || n.Spec.Availability == swarm.NodeAvailabilityDrain || n.Spec.Availability == swarm.NodeAvailabilityPause
}

// nodeWait says what the teardown waits for on node n: the node to come back, or its job.
func nodeWait(n spec.NodeVolumes, node swarm.Node, t *swarm.Task) string {
	vols := nodeHolds(n)
	if vols == "" {
		vols = "those labelled with the app"
	}
	switch {
	case nodeLost(node):
		return fmt.Sprintf("node %s is %s: the app's volumes there (%s) are removed when it is back", nodeName(n), node.Status.State, vols)
	case node.Spec.Availability == swarm.NodeAvailabilityDrain || node.Spec.Availability == swarm.NodeAvailabilityPause:
		return fmt.Sprintf("node %s is %s: the app's volumes there (%s) are removed when it is active again", nodeName(n), node.Spec.Availability, vols)
	case t == nil:
		return fmt.Sprintf("removing the app's volumes on node %s (%s)", nodeName(n), vols)
	case strings.Contains(t.Status.Err, "No such image") || strings.Contains(t.Status.Err, "pull access denied"):
		return fmt.Sprintf("the reconciler's image, which removes the app's volumes on node %s (%s), is not there and cannot be pulled: load or build it on that node (--node-image names it); trying again: %s",
			nodeName(n), vols, t.Status.Err)
	case t.Status.State == swarm.TaskStateFailed || t.Status.State == swarm.TaskStateRejected:
		msg := fmt.Sprintf("removing the app's volumes on node %s (%s) failed, trying again: %s", nodeName(n), vols, t.Status.Err)
		if cs := t.Status.ContainerStatus; cs != nil && cs.ExitCode != 0 {
			msg += fmt.Sprintf(" (exit code %d; `docker service logs` of the job says more)", cs.ExitCode)
		}
		return msg
	case t.Status.Err != "":
		return fmt.Sprintf("removing the app's volumes on node %s (%s): job %s: %s", nodeName(n), vols, t.Status.State, t.Status.Err)
	}
	return fmt.Sprintf("removing the app's volumes on node %s (%s): job %s", nodeName(n), vols, t.Status.State)
}

// lastComplete is when a volume job last answered that nothing of the app is left on its node
// (its newest completed task), and whether it has; that stays true, the app's services being
// gone. Any completed task counts, not only the newest task: swarm may run a job again and
// again (a manager that once was swarm's leader keeps running its jobs orchestrator,
// moby/moby#53632), so the newest may be a later run. The newest answer covers whatever ended
// before it.
func lastComplete(tasks []swarm.Task) (at time.Time, done bool) {
	for _, t := range tasks {
		if t.Status.State == swarm.TaskStateComplete && (!done || t.Status.Timestamp.After(at)) {
			at, done = t.Status.Timestamp, true
		}
	}
	return at, done
}

// lateTasks looks at the tasks of the app's removed services on node for what a volume job
// that answered at could not have seen: a task that has not ended (one still being prepared
// has no container yet for the job to wait for), or one whose container ended after the
// answer. Both timestamps are the node's own agent's. A job's own tasks are not the app's, and
// a task whose stopped container the job removed (covered) ended before the answer, whenever
// its agent reports it: a task's container is never started again. Only a task that mounts a
// volume of the app, or one of recipeJobs (whose containers the job removes), can leave
// anything of the app there: a stateless task of the app ending after the answer (the job
// answers as soon as the app's stopped containers are gone) asks nothing.
func lateTasks(tasks []swarm.Task, jobs map[string]bool, node string, answered time.Time, covered map[string]bool, recipeJobs []string) (starting, endedAfter bool) {
	for _, t := range tasks {
		if t.NodeID != node || jobs[t.ServiceID] {
			continue
		}
		mounts := len(appVolumes(t)) > 0
		if !mounts && !slices.Contains(recipeJobs, t.ServiceID) {
			continue
		}
		switch {
		case !terminalTask(t):
			starting = true
		case t.Status.Timestamp.After(answered) && !covered[t.ID] &&
			(mounts || t.Status.ContainerStatus != nil && t.Status.ContainerStatus.ContainerID != ""):
			// Also without a container: swarm's agent makes a volume that has a driver or
			// driver options (DriverConfig) before the task's container, as it prepares it.
			endedAfter = true
		}
	}
	return starting, endedAfter
}

// appVolumes are the named volumes of the app that t's container mounts.
func appVolumes(t swarm.Task) []string {
	var vols []string
	if cs := t.Spec.ContainerSpec; cs != nil {
		for _, m := range cs.Mounts {
			if m.Type == mount.TypeVolume && m.Source != "" && m.VolumeOptions != nil && m.VolumeOptions.Labels[swarmstate.LabelApp] != "" {
				vols = append(vols, m.Source)
			}
		}
	}
	return vols
}

// StoppedRemoved leads the line of a volume job's output that names the tasks whose stopped
// containers it removed (`reconciler node-clean`), separated by spaces.
const StoppedRemoved = "removed the stopped containers of tasks:"

// stoppedBy is the set of the app's tasks whose stopped containers the completed tasks among
// jobTasks removed, as their output said (w.JobStopped).
func (w *world) stoppedBy(jobTasks []swarm.Task) map[string]bool {
	var out map[string]bool
	for _, t := range jobTasks {
		for _, id := range w.JobStopped[t.ID] {
			if out == nil {
				out = map[string]bool{}
			}
			out[id] = true
		}
	}
	return out
}

// jobStoppedWanted are the completed volume job tasks in snap whose answer a task of the app
// on their node seems to postdate (its agent reported its end after the answer): their output
// says whether the job removed that task's stopped container itself, which would cover it.
func jobStoppedWanted(snap *swarmstate.Snapshot) []swarm.Task {
	jobIDs := map[string]bool{}
	for _, s := range snap.Services {
		if s.Spec.Labels[LabelJob] == jobVolumes {
			jobIDs[s.ID] = true
		}
	}
	var out []swarm.Task
	for _, t := range snap.Tasks {
		if !jobIDs[t.ServiceID] || t.Status.State != swarm.TaskStateComplete {
			continue
		}
		if _, after := lateTasks(snap.Tasks, jobIDs, t.NodeID, t.Status.Timestamp, nil, nil); after {
			out = append(out, t)
		}
	}
	return out
}

// jobStopped reads the output of the tasks jobStoppedWanted names: by job task, the app's
// tasks whose stopped containers it removed. A task whose output cannot be read is left out:
// its node is asked again, which is slower but never wrong.
func (r *Reconciler) jobStopped(ctx context.Context, snap *swarmstate.Snapshot) map[string][]string {
	var out map[string][]string
	for _, t := range jobStoppedWanted(snap) {
		lines, err := jobOutput(ctx, r, t.ID)
		if err != nil {
			r.Log.V(1).Info("could not read a volume job's output; its node is asked again", "task", t.ID, "error", err.Error())
			continue
		}
		for _, l := range lines {
			if ids, ok := strings.CutPrefix(l, StoppedRemoved); ok {
				if out == nil {
					out = map[string][]string{}
				}
				out[t.ID] = append(out[t.ID], strings.Fields(ids)...)
			}
		}
	}
	return out
}

func newestTask(tasks []swarm.Task) *swarm.Task {
	var newest *swarm.Task
	for i := range tasks {
		if newest == nil || tasks[i].Meta.CreatedAt.After(newest.Meta.CreatedAt) ||
			tasks[i].Meta.CreatedAt.Equal(newest.Meta.CreatedAt) && tasks[i].Status.Timestamp.After(newest.Status.Timestamp) {
			newest = &tasks[i]
		}
	}
	return newest
}

// volumeJob is the one-shot job that removes the app's volumes on node n: the reconciler's
// image running `reconciler node-clean` against the node's own Docker socket, placed on n by
// its ID, never restarted (a failure is seen and retried by the teardown). It is a replicated
// service of one task with no restart, not a swarm `replicated-job`: swarm keeps a removed
// job's tasks in its store for good (one record more for every node of every teardown, on a
// swarm that lives for years), and a manager that once led swarm's Raft keeps running its jobs
// orchestrator, which runs a job again and again (moby/moby#53632). A replicated service's
// tasks are reaped with it, and a slot whose task ended without a restart policy stays as it is.
func volumeJob(w *world, n spec.NodeVolumes, jobs NodeJobs, stack string, leftStack bool) swarm.ServiceSpec {
	one := uint64(1)
	labels := map[string]string{
		swarmstate.LabelApp: w.App, LabelJob: jobVolumes, LabelJobNode: n.ID,
	}
	labels[swarmstate.LabelOwner] = w.Owner.Dir
	if w.Owner.Dir == "" {
		labels[swarmstate.LabelOwner] = swarmstate.JanitorOwner
	}
	if stack != "" {
		labels[swarmstate.LabelNamespace] = stack
	}
	args := []string{"node-clean", "--app", w.App, "--wait", jobs.Wait.String()}
	if stack != "" {
		args = append(args, "--stack", stack)
	}
	if w.Owner.Dir != "" {
		args = append(args, "--owner", w.Owner.Dir)
	}
	if leftStack {
		labels[LabelJobScope] = scopeLeftStack
		args = append(args, "--only-stack")
	} else {
		for _, id := range n.Jobs {
			args = append(args, "--job-service", id)
		}
		for _, id := range appServices(w, n.ID) {
			args = append(args, "--task-service", id)
		}
	}
	return swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: jobName(stack, w.App, n.ID), Labels: labels},
		Mode:        swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:  jobs.Image,
				Args:   args,
				Labels: map[string]string{LabelJob: jobVolumes},
				Mounts: []mount.Mount{{Type: mount.TypeBind, Source: jobs.Socket, Target: "/var/run/docker.sock"}},
			},
			Placement:     &swarm.Placement{Constraints: []string{"node.id==" + n.ID}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionNone},
			// The job talks to its node's socket only: on the host network its container starts
			// without a network namespace, a veth and iptables rules, the work that makes a
			// container start slow on a node busy stopping the app's containers.
			Networks: []swarm.NetworkAttachmentConfig{{Target: "host"}},
		},
	}
}

// appServices are the IDs of the app's own services that a volume job on node may meet
// stopped task containers of: those the snapshot lists (a job is created as they are removed),
// and those of the tasks listed on node (a job made again once they are gone). node-clean
// removes a stopped task container of these only, never one of a stack of the same name
// someone else deployed on the node since, which it waits for as before.
func appServices(w *world, node string) []string {
	if w.Snap == nil {
		return nil
	}
	var ids []string
	for _, s := range w.Snap.Services {
		if !isJob(s) && w.Owner.Owns(s.Spec.Labels) && s.Spec.Labels[swarmstate.LabelApp] == w.App {
			ids = append(ids, s.ID)
		}
	}
	jobs := map[string]bool{}
	for _, s := range w.Snap.Services {
		if isJob(s) {
			jobs[s.ID] = true
		}
	}
	for _, t := range w.Snap.Tasks {
		// Tasks come from the owned listing: a removed service's are the app's.
		if t.NodeID == node && t.ServiceID != "" && !jobs[t.ServiceID] {
			ids = append(ids, t.ServiceID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// stackOf is the stack the app's objects are in, for naming its jobs.
func stackOf(w *world) string {
	if w.Stack != "" {
		return w.Stack
	}
	if w.Prev != nil && w.Prev.Stack != "" {
		return w.Prev.Stack
	}
	for ns := range w.Snap.ByStack() {
		if ns != "" {
			return ns
		}
	}
	return ""
}

// jobName names the volume job of node: under the app's stack, so `docker stack ps` shows it.
func jobName(stack, app, node string) string {
	prefix := stack
	if prefix == "" {
		prefix = app
	}
	name := prefix + "_volumes-" + node[:min(len(node), 12)]
	if len(name) > maxServiceName {
		// Swarm refuses longer names; the labels still say whose job it is.
		sum := sha256.Sum256([]byte(prefix + "\x00" + node))
		name = "swarm-reconciler-volumes-" + hex.EncodeToString(sum[:])[:20]
	}
	return name
}

// maxServiceName is the longest service name swarm accepts.
const maxServiceName = 63

// nodeCache keeps the swarm's node list for a short while: many passes in a row (a teardown,
// apps waiting on tasks on other nodes) share one list call. self is asked once.
type nodeCache struct {
	at    time.Time
	nodes map[string]swarm.Node
	self  string
	count int // nodes in the swarm, as docker info said when self was asked
}

// nodeCacheFor is how long a node list is reused; a node event drops it at once.
const nodeCacheFor = time.Second

// selfNode is the swarm node ID of the engine the reconciler talks to, and whether the swarm
// has other nodes; asked once, and again after a node event.
func (r *Reconciler) selfNode(ctx context.Context) (self string, several bool, err error) {
	r.mu.Lock()
	c := r.nodeList
	r.mu.Unlock()
	if c.self != "" {
		return c.self, c.count > 1, nil
	}
	info, err := r.Engine.Info(ctx)
	if err != nil {
		return "", false, fmt.Errorf("docker info: %w", err)
	}
	r.mu.Lock()
	r.nodeList.self, r.nodeList.count = info.Swarm.NodeID, info.Swarm.Nodes
	r.mu.Unlock()
	return info.Swarm.NodeID, info.Swarm.Nodes > 1, nil
}

// swarmNodes returns the swarm's nodes by ID, read at most once per nodeCacheFor.
func (r *Reconciler) swarmNodes(ctx context.Context) (map[string]swarm.Node, error) {
	r.mu.Lock()
	c := r.nodeList
	r.mu.Unlock()
	now := time.Now()
	if c.nodes != nil && now.Sub(c.at) < nodeCacheFor {
		return c.nodes, nil
	}
	list, err := r.Engine.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	nodes := make(map[string]swarm.Node, len(list))
	for _, n := range list {
		nodes[n.ID] = n
	}
	r.mu.Lock()
	r.nodeList.at, r.nodeList.nodes = now, nodes
	r.mu.Unlock()
	return nodes, nil
}

// NodesChanged drops what is known of the nodes: a node event says it is stale (a node went
// down or came back, joined or left).
func (r *Reconciler) NodesChanged() {
	r.mu.Lock()
	r.nodeList = nodeCache{}
	r.mu.Unlock()
}

// remoteTasks reports whether any task of snap was placed on a node other than self, or st
// still records such a node: only then does a pass need the node list.
func remoteTasks(snap *swarmstate.Snapshot, st *spec.Status, self string) bool {
	if st != nil && len(st.Nodes) > 0 {
		return true
	}
	return slices.ContainsFunc(snap.Tasks, func(t swarm.Task) bool { return t.NodeID != "" && t.NodeID != self })
}

// localTruth corrects, in w's snapshot, the tasks on this engine's node that the managers
// still list as running while their container has exited: an agent on a loaded node reports a
// task's end seconds late, and a crash-looping task that exits after 3 s then looks up for 5 s
// and passes a stability window (seen on CI). The node's own engine knows first. Only while
// the app's attempt has not converged: that is where a task wrongly up makes a wrong Ready;
// a converged app sees the end when the managers do. One inspect a local running task; it
// reports whether it corrected any task.
//
// An inspect, not a container list: dockerd handles an exit under the container's lock
// (containerd's task deleted, up to 2 s for its log streams) and only then updates the view a
// list reads, and tells its agent; an inspect waits for that lock, so it sees an exit that
// dockerd has begun to handle, where a list still says running (seen on CI: a list before the
// Ready said running, 2 s after the process had exited).
func (r *Reconciler) localTruth(ctx context.Context, w *world) (bool, error) {
	if prev := w.Prev; prev != nil && (prev.Phase == spec.PhaseReady || prev.Phase == spec.PhaseDegraded || prev.Phase.Final()) &&
		w.Desired != nil && prev.ObservedGeneration == w.Desired.Generation {
		return false, nil
	}
	corrected := false
	for i := range w.Snap.Tasks {
		t := &w.Snap.Tasks[i]
		if t.Status.State != swarm.TaskStateRunning || (t.NodeID != w.Self && w.Self != "") ||
			t.Status.ContainerStatus == nil || t.Status.ContainerStatus.ContainerID == "" {
			continue
		}
		c, err := r.Engine.ContainerInspect(ctx, t.Status.ContainerStatus.ContainerID)
		if cerrdefs.IsNotFound(err) {
			continue // removed since: the managers will say how the task ended
		}
		if err != nil {
			return false, fmt.Errorf("inspect container %s of task %s on this node: %w", t.Status.ContainerStatus.ContainerID, t.ID, err)
		}
		if c.State == nil || c.State.Running || c.State.Restarting || c.State.Status == container.StateCreated {
			continue
		}
		status := t.Status
		cst := *status.ContainerStatus
		cst.ExitCode = c.State.ExitCode
		status.State, status.ContainerStatus = swarm.TaskStateFailed, &cst
		status.Err = fmt.Sprintf("its container %s (exit code %d at %s), which the managers did not list yet", c.State.Status, c.State.ExitCode, c.State.FinishedAt)
		t.Status = status
		corrected = true
	}
	return corrected, nil
}
