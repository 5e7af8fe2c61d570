package controller

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// NodeVolume is one line of `reconciler node-clean --list`: a volume of an app on the node the
// job ran on.
type NodeVolume struct {
	App    string `json:"app"`
	Owner  string `json:"owner,omitempty"`
	Domain string `json:"domain,omitempty"`
	Volume string `json:"volume"`
}

const jobInventory = "inventory"

// inventoryWait bounds how long the start-up sweep waits for the other nodes to answer; a node
// that is down answers at the next start, or its apps' teardowns reach it.
const inventoryWait = 20 * time.Second

// sweepNodes finds the volumes of this reconciler's apps on the other nodes of the swarm, which
// no list on this engine shows, by a global service of `node-clean --list` (inventoryJob). For
// every app without a spec it keeps what it found (nodeFinding) and returns the app: the app's
// next pass records those nodes in its status (status.nodes) and tears their volumes down, as
// every teardown does, with a volume job on each. It writes no status itself, so it may run beside the
// workers. A swarm of one node has nothing to find.
func (r *Reconciler) sweepNodes(ctx context.Context, desired map[string]*spec.Desired) ([]string, error) {
	self, several, err := r.selfNode(ctx)
	if err != nil || !several {
		return nil, err
	}
	nodes, err := r.swarmNodes(ctx)
	if err != nil || len(nodes) <= 1 {
		return nil, err
	}
	// A volume job that answers while the inventory runs may answer after the inventory looked
	// at its node: from now on the answers are noted, and what the inventory found on a node
	// whose job answered since is older than that answer (a teardown is not started again).
	r.mu.Lock()
	r.asking = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.asking = false
		if len(r.found) == 0 {
			r.answered = nil
		}
		r.mu.Unlock()
	}()
	found, domains, read, err := r.inventory(ctx, self)
	if err != nil {
		return nil, err
	}
	// The nodes not asked, by name: an app found elsewhere may have volumes on them too, and
	// its teardown must not claim that nothing of it is left.
	var notAsked []string
	for id, n := range nodes {
		if id != self && !read[id] {
			notAsked = append(notAsked, nodeName(spec.NodeVolumes{ID: id, Hostname: n.Description.Hostname}))
		}
	}
	slices.Sort(notAsked)
	r.Log.Info("volumes on the other nodes", "nodes", len(read), "volumes", len(found), "notAsked", notAsked)
	var apps []string
	r.mu.Lock()
	defer r.mu.Unlock()
	for app, byNode := range found {
		if desired[app] != nil {
			continue // a live app: its own passes record its nodes
		}
		var tasks []swarm.Task
		for node, vols := range byNode {
			if r.answered[app][node] {
				continue
			}
			for _, v := range vols {
				tasks = append(tasks, swarm.Task{ServiceID: "found", NodeID: node, Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{
					Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: v, VolumeOptions: &mount.VolumeOptions{Labels: map[string]string{swarmstate.LabelApp: app}}}}}}})
			}
		}
		if len(tasks) == 0 {
			continue
		}
		if r.found == nil {
			r.found = map[string]nodeFinding{}
		}
		r.found[app] = nodeFinding{tasks: tasks, nodes: nodes, self: self, domains: domains[app], notAsked: notAsked}
		apps = append(apps, app)
	}
	slices.Sort(apps)
	if len(apps) > 0 {
		r.Log.Info("found volumes of apps without a spec on other nodes; the sweep removes them", "apps", apps)
	}
	return apps, nil
}

// nodeFinding is what the inventory found of one app without a spec on the other nodes: its
// volumes there, as the tasks that made them would have mounted them (for recordNodes), and
// the domain each volume's labels name (the janitor's inventory has every owner's, and an app
// that changed domain left volumes under each).
type nodeFinding struct {
	tasks   []swarm.Task
	nodes   map[string]swarm.Node
	self    string
	domains map[string]string // volume -> domain
	// notAsked are the other nodes whose inventory was not read (down, or their answer
	// unreadable), by name.
	notAsked []string
}

// teardownDomain is the domain whose volumes a teardown of the finding removes: the status's
// when volumes of it were found, else, for an app whose teardown is over or never began, the
// first found in name order; the volumes of the others wait for a later sweep (the janitor's
// volume jobs remove one stack's volumes only).
func (f nodeFinding) teardownDomain(st *spec.Status) string {
	var found []string
	for _, d := range f.domains {
		if d != "" && !slices.Contains(found, d) {
			found = append(found, d)
		}
	}
	slices.Sort(found)
	switch {
	case st.Domain != "" && slices.Contains(found, st.Domain):
		return st.Domain
	case len(found) > 0 && (st.Domain == "" || st.Phase == spec.PhaseDeleted || st.Phase == spec.PhaseExpired):
		return found[0]
	}
	return st.Domain
}

// withFinding is prev (nil: a status never written) with what the inventory found of app on
// the other nodes, taken once: its nodes and their volumes, and the domain whose lock a
// teardown takes. An app that has a spec again keeps its status as it is.
func (r *Reconciler) withFinding(app string, prev *spec.Status, hasSpec bool) *spec.Status {
	r.mu.Lock()
	f, ok := r.found[app]
	delete(r.found, app)
	answered := r.answered[app]
	if len(r.found) == 0 && !r.asking {
		r.answered = nil // every finding is taken: no answer can be newer than one any more
	}
	r.mu.Unlock()
	f.tasks = slices.DeleteFunc(f.tasks, func(t swarm.Task) bool { return answered[t.NodeID] })
	if !ok || hasSpec || len(f.tasks) == 0 {
		return prev
	}
	st := &spec.Status{App: app}
	if prev != nil {
		st = cloneStatus(prev)
	}
	if d := f.teardownDomain(st); d != st.Domain {
		st.Domain, st.Stack = d, ""
	}
	if r.Owner == "" {
		// The janitor's jobs remove the stack's volumes only: the others are not recorded as
		// being removed (an owner's job removes every stack's volumes of its app).
		f.tasks = slices.DeleteFunc(f.tasks, func(t swarm.Task) bool {
			d := f.domains[t.Spec.ContainerSpec.Mounts[0].Source]
			return d != "" && d != st.Domain
		})
	}
	recordNodes(st, f.tasks, nil, nil, false, f.nodes, f.self)
	st.NodesNotAsked = f.notAsked
	if st.Stack == "" && st.Domain != "" {
		// The volume jobs remove the volumes of this stack only: the janitor's inventory has
		// every owner's, and an app of the same name in another stack may be live.
		st.Stack, _ = spec.StackName(st.Domain)
	}
	return st
}

// noteAnswered records that the volume jobs of app on nodes answered, while an inventory runs
// or its findings wait to be taken: what it found on those nodes may be older than the answer.
func (r *Reconciler) noteAnswered(app string, nodes []string) {
	if len(nodes) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.asking && len(r.found) == 0 {
		return
	}
	if r.answered == nil {
		r.answered = map[string]map[string]bool{}
	}
	if r.answered[app] == nil {
		r.answered[app] = map[string]bool{}
	}
	for _, n := range nodes {
		r.answered[app][n] = true
	}
}

// inventory runs the inventory service once on every other node and returns what each node
// that answered holds: app -> node ID -> volumes, app -> volume -> the domain it is of, and
// the nodes whose answer was read.
func (r *Reconciler) inventory(ctx context.Context, self string) (found map[string]map[string][]string, domains map[string]map[string]string, read map[string]bool, err error) {
	jobs := r.NodeJobs
	if jobs.Image == "" {
		jobs = DefaultNodeJobs
	}
	svc := inventoryJob(r.Owner, self, jobs)
	old, err := r.Engine.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelJob+"="+jobInventory))})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list services: %w", err)
	}
	for _, s := range old {
		if reason := inventoryLeft(s, svc.Name, r.Owner, r.Now()); reason != "" {
			if r.Engine.ServiceRemove(ctx, s.ID) == nil {
				r.Log.Info("applied", "action", "remove service", "object", s.Spec.Name, "reason", reason)
			}
		}
	}
	created, err := r.Engine.ServiceCreate(ctx, svc, swarm.ServiceCreateOptions{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create %s: %w", svc.Name, err)
	}
	r.Log.Info("applied", "action", "create service", "object", svc.Name, "reason", "inventory of the volumes on the other nodes")
	defer func() {
		if err := r.Engine.ServiceRemove(context.WithoutCancel(ctx), created.ID); err != nil {
			r.Log.Error(err, "remove the inventory job", "service", svc.Name)
		} else {
			r.Log.Info("applied", "action", "remove service", "object", svc.Name, "reason", "inventory done")
		}
	}()
	wait, cancel := context.WithTimeout(ctx, inventoryWait)
	defer cancel()
	var tasks []swarm.Task
	for {
		tasks, err = swarmstate.ServiceTasks(wait, r.Engine, []string{created.ID})
		if err == nil && len(tasks) > 0 && !slices.ContainsFunc(tasks, func(t swarm.Task) bool { return !terminalTask(t) }) {
			break
		}
		select {
		case <-wait.Done():
			r.Log.Info("not every node answered the inventory in time; their volumes are looked for at the next start", "waited", inventoryWait.String())
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	found, domains = map[string]map[string][]string{}, map[string]map[string]string{}
	read = map[string]bool{} // swarm may run a job twice on one node (moby/moby#53632): one answer is read
	for _, t := range tasks {
		if read[t.NodeID] {
			continue
		}
		if t.Status.State != swarm.TaskStateComplete {
			if t.Status.Err != "" {
				r.Log.Info("a node did not answer the inventory of volumes: teardowns cannot remove volumes there either until it does",
					"node", t.NodeID, "image", jobs.Image, "error", t.Status.Err)
			}
			continue
		}
		lines, err := jobOutput(ctx, r, t.ID)
		if err != nil {
			r.Log.Error(err, "the inventory of a node cannot be read; its volumes are looked for at the next start", "node", t.NodeID)
			continue
		}
		read[t.NodeID] = true
		for _, l := range lines {
			var v NodeVolume
			if json.Unmarshal([]byte(l), &v) != nil || v.App == "" || v.Owner == "" || (r.Owner != "" && v.Owner != r.Owner) {
				continue
			}
			if found[v.App] == nil {
				found[v.App] = map[string][]string{}
			}
			found[v.App][t.NodeID] = append(found[v.App][t.NodeID], v.Volume)
			if domains[v.App] == nil {
				domains[v.App] = map[string]string{}
			}
			domains[v.App][v.Volume] = v.Domain
		}
	}
	return found, domains, read, nil
}

// terminalTask reports whether a job's task is done, one way or the other.
func terminalTask(t swarm.Task) bool {
	switch t.Status.State {
	case swarm.TaskStateComplete, swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateShutdown, swarm.TaskStateOrphaned, swarm.TaskStateRemove:
		return true
	}
	return false
}

// jobOutput is what a job's task wrote to stdout, by line. The managers read a task's logs
// from its node, and answer an incomplete stream when they cannot reach that node's logs for a
// moment ("warning: incomplete log stream", engine 20.10): the read is tried again, 5 times
// over 3 s, before the node's answer counts as unread.
func jobOutput(ctx context.Context, r *Reconciler, task string) ([]string, error) {
	var err error
	for attempt := 1; ; attempt++ {
		var lines []string
		if lines, err = readJobOutput(ctx, r, task); err == nil || attempt == 5 {
			return lines, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
}

func readJobOutput(ctx context.Context, r *Reconciler, task string) ([]string, error) {
	rc, err := r.Engine.TaskLogs(ctx, task, container.LogsOptions{ShowStdout: true})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines, sc.Err()
}

// inventoryStale is the age past which an inventory job is a leftover: a start removes its
// own once the nodes answered or inventoryWait passed.
const inventoryStale = 6 * inventoryWait

// inventoryLeft says why inventory service s is left by an earlier process and goes before the
// inventory named name of owner starts, at now: "" to leave it. The same owner's (same name,
// same owner label: a name alone proves nothing) was cut short by a kill. The janitor (owner
// "") also takes another owner's, once older than any inventory lasts: a reconciler killed in
// its start-up sweep and never started again would leave it for good (its task containers with
// it), and the janitor sweeps every owner's.
func inventoryLeft(s swarm.Service, name, owner string, now time.Time) string {
	switch {
	case s.Spec.Labels[LabelJob] != jobInventory:
		return ""
	case s.Spec.Name == name && s.Spec.Labels[swarmstate.LabelOwner] == owner:
		return "an inventory job left by an earlier start"
	case owner == "" && s.Spec.Labels[swarmstate.LabelOwner] != "" && now.Sub(s.CreatedAt) > inventoryStale:
		return fmt.Sprintf("an inventory job of owner %s left for %s (an inventory lasts %s at most)",
			s.Spec.Labels[swarmstate.LabelOwner], now.Sub(s.CreatedAt).Round(time.Second), inventoryWait)
	}
	return ""
}

// inventoryJob lists the owner's app volumes on every node but self: a global service whose
// task runs once a node, never restarted. Swarm's global orchestrator starts no task again on
// a node whose task ended under restart condition none, and reaps the tasks with the service;
// a `global-job` would keep its tasks in the store for good, one more per node at every start,
// and is run again and again by each manager that once led swarm's Raft (moby/moby#53632).
func inventoryJob(owner, self string, jobs NodeJobs) swarm.ServiceSpec {
	sum := sha256.Sum256([]byte(owner))
	args := []string{"node-clean", "--list"}
	labels := map[string]string{LabelJob: jobInventory}
	if owner != "" {
		args = append(args, "--owner", owner)
		labels[swarmstate.LabelOwner] = owner
	}
	return swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "swarm-reconciler-inventory-" + hex.EncodeToString(sum[:])[:12], Labels: labels},
		Mode:        swarm.ServiceMode{Global: &swarm.GlobalService{}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:  jobs.Image,
				Args:   args,
				Labels: map[string]string{LabelJob: jobInventory},
				Mounts: []mount.Mount{{Type: mount.TypeBind, Source: jobs.Socket, Target: "/var/run/docker.sock", ReadOnly: true}},
			},
			Placement:     &swarm.Placement{Constraints: []string{"node.id!=" + self}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionNone},
		},
	}
}

// DropJanitorJobs removes the volume jobs of the janitor (a reconciler with no owner) still in
// the swarm when its pass ends: the janitor runs once, and a job left waiting on a node that is
// down would, once the node is back, remove the volumes of its stack there, also those of the
// app deployed again meanwhile by its owner's reconciler, which does not own the job. The
// volumes stay on that node; the next janitor's inventory finds them. It returns the jobs'
// names.
func (r *Reconciler) DropJanitorJobs(ctx context.Context) ([]string, error) {
	if r.Owner != "" {
		return nil, nil
	}
	svcs, err := r.Engine.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(
		filters.Arg("label", swarmstate.LabelOwner+"="+swarmstate.JanitorOwner), filters.Arg("label", LabelJob+"="+jobVolumes))})
	if err != nil {
		return nil, fmt.Errorf("list the janitor's volume jobs: %w", err)
	}
	var dropped []string
	var errs []error
	for _, s := range svcs {
		if !isJob(s) || s.Spec.Labels[swarmstate.LabelOwner] != swarmstate.JanitorOwner {
			continue
		}
		if err := r.Engine.ServiceRemove(ctx, s.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove the janitor's volume job %s: %w", s.Spec.Name, err))
			continue
		}
		r.Log.Info("applied", "action", "remove service", "object", s.Spec.Name,
			"reason", "the janitor's pass ended before the node answered: its volumes there are left for the next janitor", "node", s.Spec.Labels[LabelJobNode])
		dropped = append(dropped, s.Spec.Name)
	}
	return dropped, errors.Join(errs...)
}
