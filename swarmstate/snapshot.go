// Package swarmstate reads the engine: one snapshot of the objects the reconciler owns, task
// states and UpdateStatus, the pure verdicts over them, and the event stream. It decides nothing.
package swarmstate

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
	"golang.org/x/sync/errgroup"
)

// Labels that mark ownership. Only objects carrying both LabelApp and LabelOwner of the
// reconciler that looks are ever used, changed or removed by it.
const (
	LabelApp       = "swarm-reconciler.app"
	LabelOwner     = "swarm-reconciler.owner"
	LabelNamespace = "com.docker.stack.namespace"
	// LabelJob marks a service the reconciler runs for itself, not for a recipe (controller).
	LabelJob = "swarm-reconciler.job"
)

// JanitorOwner is the owner label of the volume jobs of `reconciler janitor`, which has no
// owner of its own but must find its jobs again as it finds every owner's objects: those
// carrying some owner label. It cannot be an owner's name, which has no parentheses.
const JanitorOwner = "(janitor)"

// Owner says whose objects a reconciler may use, change or remove: those labelled with App
// (any app when App is "", for a snapshot of all apps) and with Dir as LabelOwner (the spec
// directory's identity; any owner when Dir is "", which only the janitor uses, but some owner:
// every object a reconciler makes carries one). Both labels must match: an object of the same
// app from another spec directory, or one made by hand with look-alike labels, is not ours.
type Owner struct {
	App string
	Dir string
}

// Owns reports whether labels mark an object of o. Every use, update and removal checks it.
func (o Owner) Owns(labels map[string]string) bool {
	app, ok := labels[LabelApp]
	if !ok || app == "" || (o.App != "" && app != o.App) {
		return false
	}
	if o.Dir == "" {
		// A volume job of the janitor of an earlier release carries no owner label, but
		// LabelJob=volumes (controller.jobVolumes); nothing else without one is a reconciler's.
		return labels[LabelOwner] != "" || labels[LabelJob] == "volumes"
	}
	return labels[LabelOwner] == o.Dir
}

// filter selects o's objects in a list call (label filters are ANDed by the engine).
func (o Owner) filter() filters.Args {
	f := filters.NewArgs(filters.Arg("label", LabelApp))
	if o.App != "" {
		f = filters.NewArgs(filters.Arg("label", LabelApp+"="+o.App))
	}
	if o.Dir != "" {
		f.Add("label", LabelOwner+"="+o.Dir)
	}
	return f
}

// Reader is the read side of the Engine API that a snapshot needs; *client.Client satisfies it.
type Reader interface {
	ServiceList(ctx context.Context, o swarm.ServiceListOptions) ([]swarm.Service, error)
	TaskList(ctx context.Context, o swarm.TaskListOptions) ([]swarm.Task, error)
	NetworkList(ctx context.Context, o network.ListOptions) ([]network.Summary, error)
	SecretList(ctx context.Context, o swarm.SecretListOptions) ([]swarm.Secret, error)
	ConfigList(ctx context.Context, o swarm.ConfigListOptions) ([]swarm.Config, error)
	VolumeList(ctx context.Context, o volume.ListOptions) (volume.ListResponse, error)
}

// Snapshot is every owned object of one app, or of all apps, read in one pass.
type Snapshot struct {
	Services []swarm.Service
	Tasks    []swarm.Task
	Networks []network.Summary
	Secrets  []swarm.Secret
	Configs  []swarm.Config
	Volumes  []*volume.Volume
}

// Take reads the objects o owns: of one app, or of every app when o.App is "". It costs six
// list calls whatever the number of apps, so a resync of N apps is constant in N. The calls run
// at once, so a busy engine delays a snapshot by two calls, not six: the tasks are listed only
// once the services are (see below).
func Take(ctx context.Context, r Reader, o Owner) (*Snapshot, error) {
	owned := o.filter()
	var s Snapshot
	g, ctx := errgroup.WithContext(ctx)
	// Tasks are read after services, as docker/cli's progress does: a service whose roll
	// completed has its new tasks running, so a task list that follows shows them. Listed at
	// once, the task list could be served before the roll ended while the service list is
	// served after, pairing "update completed" with the old spec's tasks: a Ready that never
	// saw the new release run. The cost is one list call's latency per snapshot.
	//
	// A task's label filter matches its service's labels, which swarm keeps on the task: the
	// tasks of a service removed a moment ago stay listed until their containers are gone,
	// and a teardown that counted them gone sooner would leave a task still starting to
	// attach the app's network on its node after the network was removed.
	g.Go(func() error {
		svcs, err := r.ServiceList(ctx, swarm.ServiceListOptions{Filters: owned})
		if err != nil {
			return fmt.Errorf("list services: %w", err)
		}
		tasks, err := r.TaskList(ctx, swarm.TaskListOptions{Filters: owned})
		if err != nil {
			return fmt.Errorf("list tasks: %w", err)
		}
		if o.Dir == "" {
			// Any owner's (the janitor's) filter asks for the app label only, and the task of a
			// removed service shows no labels to check: such a task is kept only if a list
			// asking for some owner label returns it too (a service labelled with an app by
			// hand, without an owner, is not a reconciler's). One call more, for the janitor only.
			f := owned.Clone()
			f.Add("label", LabelOwner)
			withOwner, err := r.TaskList(ctx, swarm.TaskListOptions{Filters: f})
			if err != nil {
				return fmt.Errorf("list tasks: %w", err)
			}
			listed, ok := map[string]bool{}, map[string]bool{}
			for _, v := range svcs {
				listed[v.ID] = true
			}
			for _, t := range withOwner {
				ok[t.ID] = true
			}
			tasks = slices.DeleteFunc(tasks, func(t swarm.Task) bool { return !listed[t.ServiceID] && !ok[t.ID] })
		}
		s.Services, s.Tasks = svcs, tasks
		return nil
	})
	listInto(g, &s.Networks, "networks", func() ([]network.Summary, error) {
		return r.NetworkList(ctx, network.ListOptions{Filters: owned})
	})
	listInto(g, &s.Secrets, "secrets", func() ([]swarm.Secret, error) {
		return r.SecretList(ctx, swarm.SecretListOptions{Filters: owned})
	})
	listInto(g, &s.Configs, "configs", func() ([]swarm.Config, error) {
		return r.ConfigList(ctx, swarm.ConfigListOptions{Filters: owned})
	})
	g.Go(func() error {
		vols, err := r.VolumeList(ctx, volume.ListOptions{Filters: owned})
		if err != nil {
			return fmt.Errorf("list volumes: %w", err)
		}
		s.Volumes = vols.Volumes
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	s.keepOwned(o)
	s.sort()
	return &s, nil
}

// keepOwned drops what a label filter lets through but o does not own: the janitor's filter
// asks for the app label only (an engine filter has no "or": some owner label, or a job's),
// and an owner label may be empty. A dropped service's tasks go with it.
func (s *Snapshot) keepOwned(o Owner) {
	dropped := map[string]bool{}
	s.Services = slices.DeleteFunc(s.Services, func(v swarm.Service) bool {
		dropped[v.ID] = !o.Owns(v.Spec.Labels)
		return dropped[v.ID]
	})
	s.Tasks = slices.DeleteFunc(s.Tasks, func(t swarm.Task) bool { return dropped[t.ServiceID] })
	s.Networks = slices.DeleteFunc(s.Networks, func(v network.Summary) bool { return !o.Owns(v.Labels) })
	s.Secrets = slices.DeleteFunc(s.Secrets, func(v swarm.Secret) bool { return !o.Owns(v.Spec.Labels) })
	s.Configs = slices.DeleteFunc(s.Configs, func(v swarm.Config) bool { return !o.Owns(v.Spec.Labels) })
	s.Volumes = slices.DeleteFunc(s.Volumes, func(v *volume.Volume) bool { return !o.Owns(v.Labels) })
}

// listInto runs one list call in g and stores its result in dst.
func listInto[T any](g *errgroup.Group, dst *[]T, what string, list func() ([]T, error)) {
	g.Go(func() error {
		items, err := list()
		if err != nil {
			return fmt.Errorf("list %s: %w", what, err)
		}
		*dst = items
		return nil
	})
}

func (s *Snapshot) sort() {
	sort.Slice(s.Services, func(i, j int) bool { return s.Services[i].Spec.Name < s.Services[j].Spec.Name })
	sort.Slice(s.Networks, func(i, j int) bool { return s.Networks[i].Name < s.Networks[j].Name })
	sort.Slice(s.Secrets, func(i, j int) bool { return s.Secrets[i].Spec.Name < s.Secrets[j].Spec.Name })
	sort.Slice(s.Configs, func(i, j int) bool { return s.Configs[i].Spec.Name < s.Configs[j].Spec.Name })
	sort.Slice(s.Volumes, func(i, j int) bool { return s.Volumes[i].Name < s.Volumes[j].Name })
}

// Empty reports whether nothing owned is left (tasks of removed services included).
func (s *Snapshot) Empty() bool {
	return len(s.Services) == 0 && len(s.Tasks) == 0 && len(s.Networks) == 0 &&
		len(s.Secrets) == 0 && len(s.Configs) == 0 && len(s.Volumes) == 0
}

// labels yields the labels of every object in the snapshot: services, networks, volumes,
// configs, secrets, in that order.
func (s *Snapshot) labels(yield func(map[string]string) bool) {
	for _, o := range s.Services {
		if !yield(o.Spec.Labels) {
			return
		}
	}
	for _, o := range s.Networks {
		if !yield(o.Labels) {
			return
		}
	}
	for _, o := range s.Volumes {
		if !yield(o.Labels) {
			return
		}
	}
	for _, o := range s.Configs {
		if !yield(o.Spec.Labels) {
			return
		}
	}
	for _, o := range s.Secrets {
		if !yield(o.Spec.Labels) {
			return
		}
	}
}

// Label is the first non-empty value of the label key on any object of the snapshot, or "".
func (s *Snapshot) Label(key string) string {
	for labels := range s.labels {
		if v := labels[key]; v != "" {
			return v
		}
	}
	return ""
}

// Apps lists every app that owns at least one object in the snapshot.
func (s *Snapshot) Apps() []string {
	seen := map[string]bool{}
	for labels := range s.labels {
		if a := labels[LabelApp]; a != "" {
			seen[a] = true
		}
	}
	apps := make([]string, 0, len(seen))
	for a := range seen {
		apps = append(apps, a)
	}
	sort.Strings(apps)
	return apps
}

// Residual names every object left, for a teardown that says what is left.
func (s *Snapshot) Residual() []string {
	var out []string
	for _, o := range s.Services {
		out = append(out, "service "+o.Spec.Name)
	}
	if n := len(s.Tasks); n == 1 && len(s.Services) == 0 {
		out = append(out, "1 task of a removed service (its container stopping)")
	} else if n > 1 && len(s.Services) == 0 {
		out = append(out, fmt.Sprintf("%d tasks of removed services (their containers stopping)", n))
	}
	for _, o := range s.Networks {
		out = append(out, "network "+o.Name)
	}
	for _, o := range s.Secrets {
		out = append(out, "secret "+o.Spec.Name)
	}
	for _, o := range s.Configs {
		out = append(out, "config "+o.Spec.Name)
	}
	for _, o := range s.Volumes {
		out = append(out, "volume "+o.Name)
	}
	return out
}

// ByApp splits a snapshot of all apps into one snapshot per app.
func (s *Snapshot) ByApp() map[string]*Snapshot { return s.by(LabelApp) }

// ByStack splits a snapshot into one snapshot per stack namespace: an app whose domain
// changed holds the objects of its old stack beside those of its new one.
func (s *Snapshot) ByStack() map[string]*Snapshot { return s.by(LabelNamespace) }

// by splits a snapshot by the value of the label key; tasks go with their service, and the
// tasks of a service already removed, which carry no labels the API shows, with none.
func (s *Snapshot) by(key string) map[string]*Snapshot {
	out := map[string]*Snapshot{}
	get := func(labels map[string]string) *Snapshot {
		a := labels[key]
		if out[a] == nil {
			out[a] = &Snapshot{}
		}
		return out[a]
	}
	group := map[string]string{}
	for _, o := range s.Services {
		g := get(o.Spec.Labels)
		g.Services = append(g.Services, o)
		group[o.ID] = o.Spec.Labels[key]
	}
	for _, t := range s.Tasks {
		if a, ok := group[t.ServiceID]; ok {
			out[a].Tasks = append(out[a].Tasks, t)
		}
	}
	for _, o := range s.Networks {
		g := get(o.Labels)
		g.Networks = append(g.Networks, o)
	}
	for _, o := range s.Secrets {
		g := get(o.Spec.Labels)
		g.Secrets = append(g.Secrets, o)
	}
	for _, o := range s.Configs {
		g := get(o.Spec.Labels)
		g.Configs = append(g.Configs, o)
	}
	for _, o := range s.Volumes {
		g := get(o.Labels)
		g.Volumes = append(g.Volumes, o)
	}
	return out
}

// Without is the snapshot less the objects of the given stack namespaces: of their services,
// the tasks too, also of those already removed (whose container labels name the stack).
func (s *Snapshot) Without(stacks map[string]bool) *Snapshot {
	if len(stacks) == 0 {
		return s
	}
	out := &Snapshot{}
	kept := map[string]bool{} // by service ID; a service in neither was removed already
	for _, o := range s.Services {
		kept[o.ID] = !stacks[o.Spec.Labels[LabelNamespace]]
		if kept[o.ID] {
			out.Services = append(out.Services, o)
		}
	}
	for _, t := range s.Tasks {
		ns := t.Labels[LabelNamespace]
		if cs := t.Spec.ContainerSpec; ns == "" && cs != nil {
			ns = cs.Labels[LabelNamespace]
		}
		// A kept service keeps its tasks, whatever their labels; a removed one's go by theirs.
		if keep, listed := kept[t.ServiceID]; keep || !listed && !stacks[ns] {
			out.Tasks = append(out.Tasks, t)
		}
	}
	for _, o := range s.Networks {
		if !stacks[o.Labels[LabelNamespace]] {
			out.Networks = append(out.Networks, o)
		}
	}
	for _, o := range s.Secrets {
		if !stacks[o.Spec.Labels[LabelNamespace]] {
			out.Secrets = append(out.Secrets, o)
		}
	}
	for _, o := range s.Configs {
		if !stacks[o.Spec.Labels[LabelNamespace]] {
			out.Configs = append(out.Configs, o)
		}
	}
	for _, o := range s.Volumes {
		if !stacks[o.Labels[LabelNamespace]] {
			out.Volumes = append(out.Volumes, o)
		}
	}
	return out
}

// Stacks maps each stack namespace in the snapshot to the app that owns it.
func (s *Snapshot) Stacks() map[string]string {
	out := map[string]string{}
	for labels := range s.labels {
		if ns := labels[LabelNamespace]; ns != "" {
			out[ns] = labels[LabelApp]
		}
	}
	return out
}

// TaskKey is a fingerprint of tasks: each task's ID, state, desired state and error, in a
// stable order. Two lists with the same key tell the verdicts the same about their tasks.
func TaskKey(tasks []swarm.Task) string {
	lines := make([]string, 0, len(tasks))
	for _, t := range tasks {
		lines = append(lines, t.ID+" "+string(t.Status.State)+" "+string(t.DesiredState)+" "+t.Status.Err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// ServiceTasks lists the tasks of the services with the given IDs: one call.
func ServiceTasks(ctx context.Context, r Reader, services []string) ([]swarm.Task, error) {
	f := filters.NewArgs()
	for _, id := range services {
		f.Add("service", id)
	}
	tasks, err := r.TaskList(ctx, swarm.TaskListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	// The engine's service filter also matches names and prefixes: keep exact IDs, as Take does.
	return slices.DeleteFunc(tasks, func(t swarm.Task) bool { return !slices.Contains(services, t.ServiceID) }), nil
}
