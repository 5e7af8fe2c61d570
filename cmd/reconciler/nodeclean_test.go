package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/errdefs"

	"github.com/swarm-reconciler/reconciler/controller"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// nodeVolumes is one node's engine: volumes, and how many more removals of each say "in use".
type nodeVolumes struct {
	vols  map[string]map[string]string
	inUse map[string]int
}

func (n *nodeVolumes) VolumeList(_ context.Context, o volume.ListOptions) (volume.ListResponse, error) {
	var out volume.ListResponse
	for name, labels := range n.vols {
		ok := true
		for _, l := range o.Filters.Get("label") {
			k, v, hasValue := strings.Cut(l, "=") // a key alone: the label is there, whatever its value
			got, has := labels[k]
			ok = ok && has && (!hasValue || got == v)
		}
		if ok {
			out.Volumes = append(out.Volumes, &volume.Volume{Name: name, Labels: labels})
		}
	}
	return out, nil
}

func (n *nodeVolumes) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	return nil, nil
}

func (n *nodeVolumes) ContainerRemove(context.Context, string, container.RemoveOptions) error {
	return errdefs.NotFound(errors.New("no such container"))
}

func (n *nodeVolumes) VolumeRemove(_ context.Context, name string, _ bool) error {
	if _, ok := n.vols[name]; !ok {
		return errdefs.NotFound(errors.New("no such volume"))
	}
	if n.inUse[name] > 0 {
		n.inUse[name]--
		return errdefs.Conflict(errors.New("volume is in use - [c1]"))
	}
	delete(n.vols, name)
	return nil
}

func TestCleanVolumes(t *testing.T) {
	own := func(app, owner, stack string) map[string]string {
		return map[string]string{swarmstate.LabelApp: app, swarmstate.LabelOwner: owner, swarmstate.LabelNamespace: stack}
	}
	tests := []struct {
		name         string
		owner, stack string
		onlyStack    bool
		inUse        int
		wait         time.Duration
		wantErr      string
		left         []string
	}{
		{name: "removes the app's volumes, no one else's", left: []string{"b_data", "a_other"}},
		// The janitor sweeps every owner's orphans, so it gives no owner; the app of the same
		// name in another stack, another owner's, may be live.
		{name: "any owner: the stack's only", owner: "-", stack: "a_one", left: []string{"b_data", "a_other", "a_new_data"}},
		{name: "any owner, no stack: every volume of the app", owner: "-", left: []string{"b_data"}},
		{name: "its owner's, with a stack: every volume of the app's, also of a stack it left", stack: "a_two_new", left: []string{"b_data", "a_other"}},
		// A move's job: the stack the app left, on a node where its new stack may run.
		{name: "its owner's, only the stack: the app's other stack stays", stack: "a_one", onlyStack: true, left: []string{"b_data", "a_other", "a_new_data"}},
		{name: "waits while a stopping container uses one", inUse: 2, wait: 5 * time.Second, left: []string{"b_data", "a_other"}},
		{name: "gives up at its deadline, naming what is left", inUse: 1000, wait: 600 * time.Millisecond,
			wantErr: "volumes of app a left on this node: a_data (volume is in use - [c1])", left: []string{"a_data", "b_data", "a_other"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := &nodeVolumes{vols: map[string]map[string]string{
				"a_data": own("a", "o1", "a_one"), "a_db": own("a", "o1", "a_one"), "b_data": own("b", "o1", "b_one"), "a_other": own("a", "o2", "a_two"),
				"a_new_data": own("a", "o1", "a_new"),
				// Labelled with the app by hand (no owner, or an empty one): no reconciler made them.
				"a_hand": {swarmstate.LabelApp: "a", swarmstate.LabelNamespace: "a_one"}, "a_blank": own("a", "", "a_one"),
			}, inUse: map[string]int{"a_data": tc.inUse}}
			tc.left = append(tc.left, "a_hand", "a_blank")
			wait := tc.wait
			if wait == 0 {
				wait = time.Second
			}
			ctx, cancel := context.WithTimeout(t.Context(), wait)
			defer cancel()
			var out bytes.Buffer
			owner := tc.owner
			switch owner {
			case "":
				owner = "o1"
			case "-":
				owner = ""
			}
			err := cleanVolumes(ctx, n, "a", owner, tc.stack, tc.onlyStack, nil, &out)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			for _, name := range tc.left {
				if _, ok := n.vols[name]; !ok {
					t.Errorf("%s was removed", name)
				}
			}
			if len(n.vols) != len(tc.left) {
				t.Errorf("left %v, want %v", n.vols, tc.left)
			}
			if err == nil && !strings.Contains(out.String(), "nothing of app a left on this node") {
				t.Errorf("output: %q", out.String())
			}
		})
	}
}

// TestListVolumes: the inventory of a node lists the volumes of the owner's apps, or of every
// owner's without one (the janitor's), never a volume labelled with an app but no owner.
func TestListVolumes(t *testing.T) {
	own := func(app, owner string) map[string]string {
		return map[string]string{swarmstate.LabelApp: app, swarmstate.LabelOwner: owner}
	}
	n := &nodeVolumes{vols: map[string]map[string]string{
		"a_data": own("a", "o1"), "b_data": own("b", "o2"), "a_blank": own("a", ""),
		"a_hand": {swarmstate.LabelApp: "a"}, "plain": {},
	}}
	for _, tc := range []struct {
		owner string
		want  []string
	}{
		{"o1", []string{"a_data"}},
		{"", []string{"a_data", "b_data"}},
	} {
		var out bytes.Buffer
		if err := listVolumes(t.Context(), n, tc.owner, &out); err != nil {
			t.Fatal(err)
		}
		var got []string
		for l := range strings.Lines(out.String()) {
			var v controller.NodeVolume
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			got = append(got, v.Volume)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("owner %q: listed %v, want %v", tc.owner, got, tc.want)
		}
	}
}

// stackNode is a node with containers: each listed until it has been listed gone times.
type stackNode struct {
	*nodeVolumes
	containers []container.Summary
	gone       map[string]int
	removed    []string
	// stopsAfter: a running container is listed so many times, then exited.
	stopsAfter map[string]int
}

func (s *stackNode) ContainerList(_ context.Context, o container.ListOptions) ([]container.Summary, error) {
	var out []container.Summary
	for i := range s.containers {
		if n, ok := s.stopsAfter[s.containers[i].ID]; ok {
			if n == 0 {
				s.containers[i].State = "exited"
			}
			s.stopsAfter[s.containers[i].ID] = n - 1
		}
		c := s.containers[i]
		ok := s.gone[c.ID] != 0
		for _, l := range o.Filters.Get("label") {
			k, v, withValue := strings.Cut(l, "=")
			_, has := c.Labels[k]
			ok = ok && has && (!withValue || c.Labels[k] == v)
		}
		if ok {
			s.gone[c.ID]--
			out = append(out, c)
		}
	}
	return out, nil
}

func (s *stackNode) ContainerRemove(_ context.Context, id string, o container.RemoveOptions) error {
	i := slices.IndexFunc(s.containers, func(c container.Summary) bool { return c.ID == id })
	if i < 0 {
		return errdefs.NotFound(errors.New("no such container"))
	}
	if s.containers[i].State == "running" && !o.Force {
		return errdefs.Conflict(errors.New("cannot remove a running container"))
	}
	s.containers = slices.Delete(s.containers, i, i+1)
	s.removed = append(s.removed, id)
	return nil
}

// TestCleanVolumesWaitsForTheAppsContainersOnly: the job waits while a container of the stack
// mounts one of the app's volumes (a stopping one of the app), and not for a container of the
// stack that mounts none: a stack of that name deployed since on the node (by abra, or an app
// given the freed domain), which would keep the teardown waiting for good.
func TestCleanVolumesWaitsForTheAppsContainersOnly(t *testing.T) {
	ns := map[string]string{swarmstate.LabelNamespace: "a_one"}
	theirs := container.Summary{ID: "abra1", Names: []string{"/a_one_app.1.x"}, Labels: ns, State: "running",
		Mounts: []container.MountPoint{{Type: "volume", Name: "abra_data"}}}
	ours := container.Summary{ID: "c1", Names: []string{"/a_one_app.1.y"}, Labels: ns, State: "exited",
		Mounts: []container.MountPoint{{Type: "bind", Source: "/etc/hosts"}, {Type: "volume", Name: "a_data"}}}
	// A task's container, running, then stopped: swarm's agent would remove it only once the
	// managers reap the task; the job removes it and names the task.
	task := container.Summary{ID: "c2", Names: []string{"/a_one_app.1.z"}, State: "running",
		Labels: map[string]string{swarmstate.LabelNamespace: "a_one", labelTask: "t2", labelService: "s-app"},
		Mounts: []container.MountPoint{{Type: "volume", Name: "a_data"}}}
	foreign := container.Summary{ID: "c3", Names: []string{"/a_one_app.1.w"}, State: "exited",
		Labels: map[string]string{swarmstate.LabelNamespace: "a_one", labelTask: "t3", labelService: "s-abra"},
		Mounts: []container.MountPoint{{Type: "volume", Name: "a_data"}}}
	for _, tc := range []struct {
		name       string
		containers []container.Summary
		gone       map[string]int // lists before it is gone; -1: never
		wantErr    string
		stopped    string // the tasks the output names as removed by the job
	}{
		{"a stack of the same name runs on", []container.Summary{theirs}, map[string]int{"abra1": -1}, "", ""},
		{"the app's stopping container goes", []container.Summary{theirs, ours}, map[string]int{"abra1": -1, "c1": 3}, "", ""},
		{"the app's container stays", []container.Summary{ours}, map[string]int{"c1": -1}, "containers of stack a_one still use the app's volumes on this node: a_one_app.1.y (exited)", ""},
		{"a task's stopped container is removed", []container.Summary{theirs, task}, map[string]int{"abra1": -1, "c2": -1}, "", "t2"},
		// A stack of the same name deployed since (abra's) whose task's container mounts the
		// app's volume: not the app's service, its stopped container is waited for, not removed.
		{"another service's stopped task container stays", []container.Summary{foreign}, map[string]int{"c3": -1},
			"containers of stack a_one still use the app's volumes on this node: a_one_app.1.w (exited)", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &stackNode{nodeVolumes: &nodeVolumes{vols: map[string]map[string]string{
				"a_data": {swarmstate.LabelApp: "a", swarmstate.LabelOwner: "o1", swarmstate.LabelNamespace: "a_one"},
			}}, containers: slices.Clone(tc.containers), gone: tc.gone, stopsAfter: map[string]int{"c2": 2}}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			var out bytes.Buffer
			err := cleanVolumes(ctx, n, "a", "o1", "a_one", false, []string{"s-app"}, &out)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if _, left := n.vols["a_data"]; left != (tc.wantErr != "") {
				t.Errorf("a_data left %v, want %v", left, tc.wantErr != "")
			}
			line := controller.StoppedRemoved + " " + tc.stopped + "\n"
			if named := strings.Contains(out.String(), line); named != (tc.stopped != "") || slices.Contains(n.removed, "c2") != (tc.stopped != "") {
				t.Errorf("output %q, removed %v; want the stopped task %q named and its container removed", out.String(), n.removed, tc.stopped)
			}
		})
	}
}

// TestRemoveJobContainers: the containers on the node of the tasks of the app's recipe jobs
// (--job-service), which swarm keeps for good once a job's service is removed, are removed,
// one still running once it has stopped; those of any other service are left alone.
func TestRemoveJobContainers(t *testing.T) {
	task := func(id, service, state string) container.Summary {
		return container.Summary{ID: id, Names: []string{"/" + id}, State: state,
			Labels: map[string]string{labelService: service, labelTask: "t-" + id}}
	}
	n := &stackNode{nodeVolumes: &nodeVolumes{vols: map[string]map[string]string{}},
		containers: []container.Summary{task("j1", "s1", "exited"), task("j2", "s1", "running"), task("j3", "s2", "dead"),
			task("other", "s9", "exited"), {ID: "plain", Names: []string{"/plain"}, State: "exited"}},
		gone: map[string]int{"j1": -1, "j2": -1, "j3": -1, "other": -1, "plain": -1}, stopsAfter: map[string]int{"j2": 2}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := removeJobContainers(ctx, n, []string{"s1", "s2"}, time.Minute, &out); err != nil {
		t.Fatal(err)
	}
	slices.Sort(n.removed)
	if !slices.Equal(n.removed, []string{"j1", "j2", "j3"}) || !strings.Contains(out.String(), "removed 3 containers") {
		t.Errorf("removed %v (%q), want j1, j2 (once stopped) and j3, nothing of another service", n.removed, out.String())
	}
	// One that does not stop within the job's wait, before it would be stopped: the job fails
	// naming it.
	n.containers = append(n.containers, task("j4", "s1", "running"))
	n.gone["j4"] = -1
	ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := removeJobContainers(ctx, n, []string{"s1"}, time.Minute, &out); err == nil || !strings.Contains(err.Error(), "j4 (running)") {
		t.Errorf("a job's container that keeps running: %v", err)
	}
	// Still running after stopAfter (swarm leaves a removed job's task running for good, as on
	// a node that was down while the teardown removed the job): stopped and removed.
	out.Reset()
	ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := removeJobContainers(ctx, n, []string{"s1"}, 300*time.Millisecond, &out); err != nil || !slices.Contains(n.removed, "j4") ||
		!strings.Contains(out.String(), "stopped and removed j4") {
		t.Errorf("a job's container still running after stopAfter: %v, removed %v, %q", err, n.removed, out.String())
	}
}
