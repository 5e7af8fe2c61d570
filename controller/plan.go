package controller

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// LabelWritten is a service label stamped with a fresh value on every create and update the
// controller makes. A hand-made `docker service update` keeps labels and moves the spec it
// replaced to PreviousSpec, so a PreviousSpec with the same stamp but a different spec is a
// change by hand (drift); after the controller's own update the stamps differ.
const LabelWritten = "swarm-reconciler.written"

// LabelTaskHash is a service label holding the hash of the desired task template alone. Swarm
// rolls tasks only when the task template changes, so comparing it tells whether an update
// will start a roll that the verdict must then wait for.
const LabelTaskHash = "swarm-reconciler.task-hash"

// Kind is what an action does.
type Kind string

// The kinds of action, in the order a deploy or a teardown applies them.
const (
	CreateNetwork Kind = "create network"
	CreateSecret  Kind = "create secret"
	CreateConfig  Kind = "create config"
	CreateService Kind = "create service"
	UpdateService Kind = "update service"
	RemoveService Kind = "remove service"
	RemoveNetwork Kind = "remove network"
	RemoveConfig  Kind = "remove config"
	RemoveSecret  Kind = "remove secret"
	RemoveVolume  Kind = "remove volume"
	// RemoveContainer removes, on the reconciler's own node, the stopped container of a task of
	// a removed service (PlanTeardown says why).
	RemoveContainer Kind = "remove container"
	// RollbackService puts a service's previous spec back, as `docker service rollback` does:
	// the rollback that a Failed upgrade's recipe asks for and swarm did not make
	// (swarmstate.ServiceState.RollbackOwed).
	RollbackService Kind = "roll back service"

	// Checks that change nothing in the swarm but must hold before services are created or
	// updated, so their failure is the app's, at once, in the engine's words.
	RequireNetwork Kind = "require network" // an external network exists
	RequireImage   Kind = "require image"   // an image is present on this node, or pulled
	// BackupStep is no action of a plan: it names a step of a backup or restore (a hook run,
	// a volume moved) for Reconciler.Step.
	BackupStep Kind = "backup step"
)

// Action is one change to the swarm, computed from (desired, observed) and applied elsewhere.
type Action struct {
	// Kind says what to do.
	Kind Kind
	// Name is the swarm object's name.
	Name string
	// ID is the live object's ID, set for updates and removals.
	ID string
	// Reason says why, in words a person can read in a log.
	Reason string
	// Labels are the live object's labels (updates and removals), checked for ownership
	// right before the call.
	Labels map[string]string
	// Version is the live service's version, passed on update for optimistic concurrency.
	Version swarm.Version

	// Exactly one payload is set for a create or update.
	Network   *network.CreateOptions
	Secret    *swarm.SecretSpec
	Generated *manifests.GeneratedSecret
	Config    *swarm.ConfigSpec
	Service   *swarm.ServiceSpec
}

func (a Action) String() string { return fmt.Sprintf("%s %s: %s", a.Kind, a.Name, a.Reason) }

// PlanSupport plans the networks, secrets and configs a rendered app needs that do not exist
// yet. They come before services, which refer to them by ID. Existing objects are never
// replaced: swarm cannot update a config's or secret's data, so a changed config under an
// unchanged name is an error that tells the user to bump the config's version. A secret marked
// generate=false that does not exist is awaited, not planned: someone inserts its value.
func PlanSupport(r *manifests.Rendered, snap *swarmstate.Snapshot) (plan []Action, awaited []*manifests.GeneratedSecret, err error) {
	nets := map[string]bool{}
	for _, n := range snap.Networks {
		nets[n.Name] = true
	}
	for _, name := range sortedKeys(r.Networks) {
		if !nets[name] {
			opts := r.Networks[name]
			plan = append(plan, Action{Kind: CreateNetwork, Name: name, Reason: "missing", Network: &opts})
		}
	}
	secrets := map[string]bool{}
	for _, s := range snap.Secrets {
		secrets[s.Spec.Name] = true
	}
	for i := range r.Secrets {
		if s := &r.Secrets[i]; !secrets[s.Name] {
			plan = append(plan, Action{Kind: CreateSecret, Name: s.Name, Reason: "missing", Secret: s})
		}
	}
	for i := range r.GeneratedSecrets {
		g := &r.GeneratedSecrets[i]
		if secrets[g.Name] {
			continue
		}
		if !g.Generate {
			awaited = append(awaited, g)
			continue
		}
		plan = append(plan, Action{Kind: CreateSecret, Name: g.Name, Reason: "missing, generated once", Generated: g})
	}
	configs := map[string]swarm.Config{}
	for _, c := range snap.Configs {
		configs[c.Spec.Name] = c
	}
	for i := range r.Configs {
		c := &r.Configs[i]
		live, ok := configs[c.Name]
		if !ok {
			plan = append(plan, Action{Kind: CreateConfig, Name: c.Name, Reason: "missing", Config: c})
			continue
		}
		if !bytes.Equal(live.Spec.Data, c.Data) {
			return nil, nil, fmt.Errorf("config %s: content changed but its name did not; swarm cannot update a config's data: bump the config's version in the recipe (e.g. its *_VERSION env var)", c.Name)
		}
	}
	return plan, awaited, nil
}

// PlanServices plans the service creates, updates and removals that make the live services of
// app match desired. A service whose spec-hash label equals the desired one is left alone
// (no update, no task restart, no Version.Index move) unless it was changed by hand, when it
// is set back. stamp is the value of LabelWritten for this pass's writes.
func PlanServices(own swarmstate.Owner, desired map[string]swarm.ServiceSpec, live []swarm.Service, stamp string) ([]Action, error) {
	byName := map[string]swarm.Service{}
	for _, s := range live {
		byName[s.Spec.Name] = s
	}
	var plan []Action
	for _, name := range sortedKeys(desired) {
		want := desired[name]
		taskHash := manifests.SpecHash(swarm.ServiceSpec{TaskTemplate: want.TaskTemplate})
		cur, exists := byName[name]
		if !exists {
			spec := withLabels(want, map[string]string{LabelTaskHash: taskHash, LabelWritten: stamp})
			plan = append(plan, Action{Kind: CreateService, Name: name, Reason: "missing", Service: &spec})
			continue
		}
		if !own.Owns(cur.Spec.Labels) {
			// Unreachable through Take, which lists only own's objects; a plan is safe on its own.
			return nil, fmt.Errorf("service %s exists but is not owned by this reconciler (app %s, owner %s): remove it or choose another domain", name, own.App, own.Dir)
		}
		reason, rolls := "spec changed", cur.Spec.Labels[LabelTaskHash] != taskHash
		if cur.Spec.Labels[manifests.LabelSpecHash] == want.Labels[manifests.LabelSpecHash] {
			byHand, tasksChanged := drift(cur)
			if !byHand {
				continue
			}
			reason, rolls = "changed by hand: set back to the desired spec", tasksChanged
			if setBackRolledBack(cur, cur.Spec.Labels[manifests.LabelSpecHash]) {
				reason = reasonSetBackAgain
			}
		} else if setBackRolledBack(cur, want.Labels[manifests.LabelSpecHash]) {
			// Swarm rolled back our write of this very spec to an older one (a hand-made
			// `docker service rollback`, repaired, then rolled back by swarm's monitor): made
			// again, it backs off as a set-back does, or every pass would roll it out again.
			reason = reasonSetBackAgain
		}
		endpointMoves := endpointChanged(cur.Spec.EndpointSpec, want.EndpointSpec)
		extra := map[string]string{LabelTaskHash: taskHash, LabelWritten: stamp}
		if rolls || endpointMoves {
			// The update will roll tasks: remember which roll was there before, so the verdict
			// waits for a new one instead of trusting a stale UpdateStatus.
			extra[swarmstate.LabelRollFrom] = rollStamp(cur.UpdateStatus)
		}
		spec := withLabels(want, extra)
		// Keep a ForceUpdate counter someone raised by hand: lowering it would roll again.
		spec.TaskTemplate.ForceUpdate = cur.Spec.TaskTemplate.ForceUpdate
		if endpointMoves {
			// Swarm replaces every task whose endpoint is not the service's, but the API shows
			// neither a task's endpoint nor the roll until swarm's updater starts it: a pass in
			// between would take the old tasks for the new spec. Raising the counter puts the
			// change where the verdict sees it, in the template the old tasks do not run, and
			// replaces no task the endpoint does not, but one: swarm does not look at the
			// endpoint of a task whose template differs in placement alone on a node that meets
			// it (IsTaskDirtyPlacementConstraintsOnly), and would leave it on the old port. It
			// is raised when the template changes too: the labels cannot tell whether the
			// template written differs from the one the tasks run (a hot fix the spec caught up
			// with, a hand --force set back, kept).
			spec.TaskTemplate.ForceUpdate++
		}
		plan = append(plan, Action{Kind: UpdateService, Name: name, ID: cur.ID, Version: cur.Version,
			Labels: cur.Spec.Labels, Reason: reason, Service: &spec})
	}
	for _, s := range live {
		if _, ok := desired[s.Spec.Name]; !ok && own.Owns(s.Spec.Labels) && !isJob(s) { // a teardown's job: staleJobs
			plan = append(plan, Action{Kind: RemoveService, Name: s.Spec.Name, ID: s.ID, Labels: s.Spec.Labels,
				Reason: "no longer in the recipe"})
		}
	}
	return plan, nil
}

// PlanTeardown plans the next step of removing everything app owns: services first (their
// tasks hold networks and volumes), then, once no service is left, networks, configs, secrets
// and volumes. Objects not labelled with app are never in the plan, nor objects this teardown
// already removed ("<kind> <name>" in removed) that the engine still lists: a swarm network
// stays listed on the node until the app's last container there detaches, and asking again
// only gets "not found"; the teardown waits for it to leave the list.
//
// A stopped container of a removed service's task on the reconciler's own node (self) is
// removed too, while the app has volumes: swarm's agent removes a task's container only once
// the managers have reaped the task, seconds after it stopped (2.7 s on an idle single-node
// swarm, 7 to 10 s on a busy one), and until then the container holds the volumes. The agent
// takes a container already gone as removed. Its ID is the one swarm recorded for a task the
// owned listing returned (a task is listed by its service's labels), so it is ours; a
// container still running is never in the plan, nor any while a task of a removed service is
// still starting or stopping on this node. Other nodes' volumes are their volume jobs'
// (node-clean), which wait for swarm to remove the containers there: a job cannot see a task
// still starting on its node.
//
// A recipe job (replicated-job, global-job) whose task still runs is not removed: swarm would
// leave that task's container running for good (engine 20.10). It is given a constraint no node
// meets (jobStopped), which shuts its tasks down, and removed once none runs, on any node.
func PlanTeardown(own swarmstate.Owner, snap *swarmstate.Snapshot, removed []string, self string, nodes map[string]swarm.Node) []Action {
	var plan []Action
	add := func(a Action) {
		if a.Reason == "" {
			a.Reason = "app deleted"
		}
		if own.Owns(a.Labels) && !slices.Contains(removed, a.object()) {
			plan = append(plan, a)
		}
	}
	jobs, held := recipeJobs(own, snap.Services), false
	for _, s := range snap.Services {
		if isJob(s) {
			continue // a job removes itself once its work is done (planNodeCleanup)
		}
		if jobs[s.ID] && jobRunning(s, snap.Tasks, nodes) {
			// Swarm leaves a removed job's running task running, for good, its container with
			// no service: the job is first made to run nowhere, which shuts its tasks down.
			held = true
			if stop := stopJob(s); stop != nil {
				add(*stop)
			}
			continue
		}
		add(Action{Kind: RemoveService, Name: s.Spec.Name, ID: s.ID, Labels: s.Spec.Labels})
	}
	if len(plan) > 0 || held {
		return append(finishedJobContainers(own, snap, removed, self), plan...)
	}
	for _, n := range snap.Networks {
		add(Action{Kind: RemoveNetwork, Name: n.Name, ID: n.ID, Labels: n.Labels})
	}
	for _, c := range snap.Configs {
		add(Action{Kind: RemoveConfig, Name: c.Spec.Name, ID: c.ID, Labels: c.Spec.Labels})
	}
	for _, s := range snap.Secrets {
		add(Action{Kind: RemoveSecret, Name: s.Spec.Name, ID: s.ID, Labels: s.Spec.Labels})
	}
	live := map[string]bool{}
	for _, s := range snap.Services {
		live[s.ID] = true
	}
	if slices.ContainsFunc(snap.Tasks, func(t swarm.Task) bool {
		return !live[t.ServiceID] && !terminalTask(t) && !neverPlaced(t) && (self == "" || t.NodeID == self || t.NodeID == "")
	}) {
		// A task of a removed service is still starting or stopping here (a restart that crossed
		// the removal): a container it creates would make a removed volume again.
		return plan
	}
	for _, t := range snap.Tasks {
		// Before the volumes they hold: actions are applied in order. The ID comes from a task
		// of the owned listing (no labels of its own to check). A removed job's task is kept by
		// swarm, and its container by the node's agent, for good: removed whatever it holds.
		if cs := t.Status.ContainerStatus; (len(snap.Volumes) > 0 || t.JobIteration != nil) && self != "" && !live[t.ServiceID] && t.NodeID == self &&
			terminalTask(t) && cs != nil && cs.ContainerID != "" {
			why := "its container holds the app's volumes until swarm removes it"
			if t.JobIteration != nil {
				why = "a removed job's container stays until removed"
			}
			a := Action{Kind: RemoveContainer, Name: cs.ContainerID[:min(12, len(cs.ContainerID))], ID: cs.ContainerID,
				Reason: fmt.Sprintf("task %s of a removed service stopped; %s", t.ID, why)}
			if !slices.Contains(removed, a.object()) {
				plan = append(plan, a)
			}
		}
	}
	for _, v := range snap.Volumes {
		// Asked again when listed after its removal: a container of a task that was still
		// starting made it again. A network, by contrast, stays listed until its last
		// container on the node detaches, and is not asked twice.
		if own.Owns(v.Labels) {
			plan = append(plan, Action{Kind: RemoveVolume, Name: v.Name, ID: v.Name, Labels: v.Labels, Reason: "app deleted"})
		}
	}
	return plan
}

// jobStopped is the placement constraint that no node meets, which a job is given before its
// removal: swarm then shuts down its tasks (those of the run before the update) and places
// none of the new run.
const jobStopped = "node.labels.swarm-reconciler.job-stopped==true"

// jobRunning reports whether a task of job service s is placed on a node and not done: its
// container runs, or is about to. A task on a node that is down, disconnected or gone from
// nodes (when known) never reports its end (withoutSettledTasks): not waited for.
func jobRunning(s swarm.Service, tasks []swarm.Task, nodes map[string]swarm.Node) bool {
	return slices.ContainsFunc(tasks, func(t swarm.Task) bool {
		if t.ServiceID != s.ID || t.NodeID == "" || terminalTask(t) {
			return false
		}
		if nodes == nil {
			return true
		}
		n, ok := nodes[t.NodeID]
		return ok && !nodeLost(n)
	})
}

// stopJob is the update that makes job service s run nowhere, or nil when it was made (its
// tasks are shutting down).
func stopJob(s swarm.Service) *Action {
	spec := s.Spec
	var p swarm.Placement
	if cur := spec.TaskTemplate.Placement; cur != nil {
		if slices.Contains(cur.Constraints, jobStopped) {
			return nil
		}
		p = *cur
	}
	p.Constraints = append(slices.Clone(p.Constraints), jobStopped)
	spec.TaskTemplate.Placement = &p
	return &Action{Kind: UpdateService, Name: s.Spec.Name, ID: s.ID, Labels: s.Spec.Labels, Version: s.Version, Service: &spec,
		Reason: "app deleted: its job's running tasks are shut down before the job is removed (swarm leaves them running)"}
}

// jobsLeaving makes the removals in plan of the recipe's jobs that a release no longer has
// (PlanServices) as safe as a teardown's (PlanTeardown): a job whose task runs is first made to
// run nowhere instead, and the finished containers on this node (self) of a job removed go
// before it.
func jobsLeaving(own swarmstate.Owner, plan []Action, snap *swarmstate.Snapshot, self string, nodes map[string]swarm.Node) []Action {
	jobs := recipeJobs(own, snap.Services)
	leaving := map[string]bool{}
	var out []Action
	for _, a := range plan {
		if a.Kind != RemoveService || !jobs[a.ID] {
			out = append(out, a)
			continue
		}
		i := slices.IndexFunc(snap.Services, func(s swarm.Service) bool { return s.ID == a.ID })
		if !jobRunning(snap.Services[i], snap.Tasks, nodes) {
			leaving[a.ID] = true
			out = append(out, a)
		} else if stop := stopJob(snap.Services[i]); stop != nil {
			stop.Reason = "no longer in the recipe: its running tasks are shut down before the job is removed (swarm leaves them running)"
			out = append(out, *stop)
		}
	}
	if len(leaving) == 0 {
		return out
	}
	leavingOnly := &swarmstate.Snapshot{Services: snap.Services}
	for _, t := range snap.Tasks {
		if leaving[t.ServiceID] {
			leavingOnly.Tasks = append(leavingOnly.Tasks, t)
		}
	}
	return append(finishedJobContainers(own, leavingOnly, nil, self), out...)
}

// finishedJobContainers are the removals of the containers on this node of the finished tasks
// of the app's recipe jobs (replicated-job, global-job), to come before their services': once
// a service is removed, swarm may reap its finished tasks at once, and then nothing names such
// a container (it carries no label of ours), which the node's agent keeps for good.
func finishedJobContainers(own swarmstate.Owner, snap *swarmstate.Snapshot, removed []string, self string) []Action {
	if self == "" {
		return nil
	}
	jobs := recipeJobs(own, snap.Services)
	var plan []Action
	for _, t := range snap.Tasks {
		cs := t.Status.ContainerStatus
		if !jobs[t.ServiceID] || t.NodeID != self || !terminalTask(t) || cs == nil || cs.ContainerID == "" {
			continue
		}
		a := Action{Kind: RemoveContainer, Name: cs.ContainerID[:min(12, len(cs.ContainerID))], ID: cs.ContainerID,
			Reason: fmt.Sprintf("task %s of the app's job finished; its container outlives the service otherwise", t.ID)}
		if !slices.Contains(removed, a.object()) {
			plan = append(plan, a)
		}
	}
	return plan
}

// recordJobContainers adds to recorded the containers on this node (self) of the tasks that
// snap lists of the recipe jobs leaving (by service ID). A job is removed only once none of
// its tasks runs, but the update that stops them begins a new run of the job, and swarm
// deletes a task of an earlier run a moment after it ends: a pass that comes later finds no
// task naming the container, which the node's agent keeps for good (seen in e2e on a busy
// host). Recorded while its task is listed, the container is removed with its job
// (withJobContainers).
func recordJobContainers(recorded []spec.JobContainer, snap *swarmstate.Snapshot, self string, leaving map[string]bool) []spec.JobContainer {
	if self == "" {
		return recorded
	}
	for _, t := range snap.Tasks {
		cs := t.Status.ContainerStatus
		if !leaving[t.ServiceID] || t.NodeID != self || cs == nil || cs.ContainerID == "" {
			continue
		}
		c := spec.JobContainer{Service: t.ServiceID, Container: cs.ContainerID}
		if !slices.Contains(recorded, c) {
			recorded = append(recorded, c)
		}
	}
	return recorded
}

// leavingJobs are the recipe jobs of snap that plan stops or removes, or that an earlier pass
// made run nowhere (jobStopped) to remove them.
func leavingJobs(own swarmstate.Owner, snap *swarmstate.Snapshot, plan []Action) map[string]bool {
	jobs := recipeJobs(own, snap.Services)
	leaving := map[string]bool{}
	for _, s := range snap.Services {
		if p := s.Spec.TaskTemplate.Placement; jobs[s.ID] && p != nil && slices.Contains(p.Constraints, jobStopped) {
			leaving[s.ID] = true
		}
	}
	for _, a := range plan {
		if jobs[a.ID] && (a.Kind == RemoveService || a.Kind == UpdateService && a.Service != nil &&
			a.Service.TaskTemplate.Placement != nil && slices.Contains(a.Service.TaskTemplate.Placement.Constraints, jobStopped)) {
			leaving[a.ID] = true
		}
	}
	return leaving
}

// withJobContainers records in st the containers on this node of the tasks snap lists of the
// recipe jobs plan stops or removes (recordJobContainers), and puts before plan the removal of
// each recorded container of a job that plan removes, unless plan or an earlier pass
// (st.Removed) removes it already. A container swarm removed itself is not found, which is the
// removal's goal.
func withJobContainers(st *spec.Status, own swarmstate.Owner, snap *swarmstate.Snapshot, self string, plan []Action) []Action {
	st.JobContainers = recordJobContainers(st.JobContainers, snap, self, leavingJobs(own, snap, plan))
	var first []Action
	for _, c := range st.JobContainers {
		if !slices.ContainsFunc(plan, func(a Action) bool { return a.Kind == RemoveService && a.ID == c.Service }) {
			continue
		}
		a := Action{Kind: RemoveContainer, Name: c.Container[:min(12, len(c.Container))], ID: c.Container,
			Reason: fmt.Sprintf("a container of job service %s, recorded while its task was listed; it outlives the service otherwise", c.Service)}
		if slices.Contains(st.Removed, a.object()) || slices.ContainsFunc(plan, func(p Action) bool { return p.Kind == RemoveContainer && p.ID == a.ID }) {
			continue
		}
		first = append(first, a)
	}
	return append(first, plan...)
}

// PlanPrune plans the removal of the configs of a converged app that its recipe no longer
// names (a version bump left the old one behind) and that no live service uses, in its spec or
// in its previous spec: swarm rolls back to the previous spec, which must still find its
// configs. Secrets are kept, as abra keeps them: a generated or inserted value cannot be made
// again, and a spec that sets a secret's version back must find the value its data was made
// with. Only what own owns is planned.
func PlanPrune(own swarmstate.Owner, r *manifests.Rendered, cur *swarmstate.Snapshot) []Action {
	wanted := map[string]bool{}
	for _, c := range r.Configs {
		wanted[c.Name] = true
	}
	used := map[string]bool{}
	for _, svc := range cur.Services {
		for _, sp := range []*swarm.ServiceSpec{&svc.Spec, svc.PreviousSpec} {
			if sp == nil || sp.TaskTemplate.ContainerSpec == nil {
				continue
			}
			for _, c := range sp.TaskTemplate.ContainerSpec.Configs {
				used[c.ConfigID] = true
			}
		}
	}
	var plan []Action
	for _, c := range cur.Configs {
		if !wanted[c.Spec.Name] && !used[c.ID] && own.Owns(c.Spec.Labels) {
			plan = append(plan, Action{Kind: RemoveConfig, Name: c.Spec.Name, ID: c.ID, Labels: c.Spec.Labels,
				Reason: "no longer in the recipe, and neither the services nor their rollback specs use it"})
		}
	}
	return plan
}

// requirements are the checks before services of r are created or updated: its external
// networks exist (as docker stack deploy checks) and its images are here or pullable.
func requirements(r *manifests.Rendered) []Action {
	var out []Action
	for _, n := range r.ExternalNetworks {
		out = append(out, Action{Kind: RequireNetwork, Name: n, Reason: "declared external"})
	}
	for _, ref := range r.Images {
		out = append(out, Action{Kind: RequireImage, Name: ref, Reason: "used by a service"})
	}
	return out
}

// object names what a removal removes, as the status's removed list says it: "network x".
func (a Action) object() string {
	return strings.TrimPrefix(string(a.Kind), "remove ") + " " + a.Name
}

// drift reports whether a live service was changed by hand since the controller last wrote
// it, and whether that change touched the task template (so setting it back rolls tasks).
// A set-back that swarm rolled back (its monitor saw a new task fail: a port still held, a
// node short of memory) left the hand-made spec running: that is drift still.
func drift(svc swarm.Service) (byHand, tasksChanged bool) {
	prev := svc.PreviousSpec
	if setBackRolledBack(svc, svc.Spec.Labels[manifests.LabelSpecHash]) {
		return true, !reflect.DeepEqual(prev.TaskTemplate, svc.Spec.TaskTemplate)
	}
	if prev == nil || prev.Labels[LabelWritten] != svc.Spec.Labels[LabelWritten] ||
		prev.Labels[manifests.LabelSpecHash] != svc.Spec.Labels[manifests.LabelSpecHash] {
		return false, false
	}
	if reflect.DeepEqual(*prev, svc.Spec) {
		return false, false
	}
	return true, !reflect.DeepEqual(prev.TaskTemplate, svc.Spec.TaskTemplate)
}

// reasonSetBackAgain is the reason of a set-back made again after swarm rolled one back: these
// back off (holdSetBacks), as the desired spec may not start on the node any more.
const reasonSetBackAgain = "swarm rolled back the set-back of a hand change: set back again"

// setBackRolledBack reports a service whose last write of ours, of the spec whose hash is
// hash, swarm rolled back to an older spec: for the hash of the spec it runs, what a write of
// ours replaced, which for one spec is a change made by hand.
func setBackRolledBack(svc swarm.Service, hash string) bool {
	prev, us := svc.PreviousSpec, svc.UpdateStatus
	if prev == nil || us == nil || us.State != swarm.UpdateStateRollbackCompleted ||
		prev.Labels[manifests.LabelSpecHash] != hash || reflect.DeepEqual(*prev, svc.Spec) {
		return false
	}
	ours, err1 := time.Parse(time.RFC3339Nano, prev.Labels[LabelWritten])
	live, err2 := time.Parse(time.RFC3339Nano, svc.Spec.Labels[LabelWritten])
	return err1 == nil && err2 == nil && ours.After(live)
}

// endpointChanged reports whether writing want over the live endpoint cur makes swarm replace
// the service's tasks: swarmkit's IsTaskDirty compares the endpoint each task was made with
// to the service's, published ports and resolution mode alike. Both are compared as the engine
// stores them (endpointAsStored): cur has been through it, want not yet.
func endpointChanged(cur, want *swarm.EndpointSpec) bool {
	return !reflect.DeepEqual(endpointAsStored(cur), endpointAsStored(want))
}

// endpointAsStored is e as the engine gives it back once stored (daemon/cluster/convert): the
// names of the resolution mode, protocol and publish mode in lower case, each unset or unknown
// one its enum's first value, and no ports as none.
func endpointAsStored(e *swarm.EndpointSpec) *swarm.EndpointSpec {
	if e == nil {
		return nil
	}
	enum := func(v string, names ...string) string {
		if v = strings.ToLower(v); slices.Contains(names, v) {
			return v
		}
		return names[0]
	}
	out := &swarm.EndpointSpec{Mode: swarm.ResolutionMode(enum(string(e.Mode), "vip", "dnsrr"))}
	for _, p := range e.Ports {
		p.Protocol = swarm.PortConfigProtocol(enum(string(p.Protocol), "tcp", "udp", "sctp"))
		p.PublishMode = swarm.PortConfigPublishMode(enum(string(p.PublishMode), "ingress", "host"))
		out.Ports = append(out.Ports, p)
	}
	return out
}

func rollStamp(us *swarm.UpdateStatus) string {
	if us == nil || us.StartedAt == nil {
		return ""
	}
	return us.StartedAt.UTC().Format(time.RFC3339Nano)
}

func withLabels(s swarm.ServiceSpec, extra map[string]string) swarm.ServiceSpec {
	labels := make(map[string]string, len(s.Labels)+len(extra))
	for k, v := range s.Labels {
		labels[k] = v
	}
	for k, v := range extra {
		labels[k] = v
	}
	s.Labels = labels
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
