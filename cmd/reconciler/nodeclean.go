package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/spf13/cobra"

	"github.com/swarm-reconciler/reconciler/controller"
	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// nodeCleanCmd is what a teardown's volume job runs on each node that ran a task of the app
// (controller/nodes.go): volumes are node-local, so only the node's own engine can remove them.
func nodeCleanCmd() *cobra.Command {
	var app, owner, stack string
	var jobServices, taskServices []string
	var list, onlyStack bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "node-clean (--app APP | --list) [--owner OWNER] [--stack STACK] [--job-service ID]... [--task-service ID]...",
		Short: "Remove an app's volumes from the engine this runs against (a teardown's job on each node)",
		Long: "node-clean removes the volumes labelled with the app (and the owner, when given) from the\n" +
			"engine at DOCKER_HOST, waiting while containers that are stopping still use them (a stopped\n" +
			"task container of a --task-service service that holds one is removed, its task named in the\n" +
			"output), after removing the containers of the --job-service services' tasks (the recipe's\n" +
			"jobs). A teardown runs it as a swarm job on every other node that ran a task of the app,\n" +
			"with the node's Docker socket mounted; exit 0 says nothing of the app is left on the node.\n" +
			"With --list it removes nothing and prints one JSON line per volume of the owner's apps on\n" +
			"the node: the orphan sweep runs it on every node to find volumes no status file records.",
		Example: "  docker run --rm -v /var/run/docker.sock:/var/run/docker.sock swarm-reconciler:dev \\\n" +
			"    node-clean --app ch-1a2b3c --owner 5f1c2e9a\n" +
			"  docker run --rm -v /var/run/docker.sock:/var/run/docker.sock swarm-reconciler:dev node-clean --list",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if app == "" && !list {
				return errors.New("--app is required: node-clean removes one app's volumes (or --list them all)")
			}
			engine, err := newEngine()
			if err != nil {
				return err
			}
			defer engine.Close()
			if list {
				return listVolumes(cmd.Context(), engine, owner, cmd.OutOrStdout())
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), wait)
			defer cancel()
			if onlyStack && stack == "" {
				return errors.New("--only-stack needs --stack: the stack whose volumes are removed")
			}
			if err := removeJobContainers(ctx, engine, jobServices, wait/2, cmd.OutOrStdout()); err != nil {
				return &exitError{code: 1, err: err}
			}
			if err := cleanVolumes(ctx, engine, app, owner, stack, onlyStack, taskServices, cmd.OutOrStdout()); err != nil {
				return &exitError{code: 1, err: err}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the app whose volumes are removed")
	cmd.Flags().BoolVar(&list, "list", false, "remove nothing: print the apps' volumes on this node as JSON lines")
	cmd.Flags().StringVar(&stack, "stack", "", "first wait until no container of this stack that mounts one of the app's volumes is left on the node (a teardown starts the job as it removes the services); without --owner, remove only this stack's volumes")
	cmd.Flags().BoolVar(&onlyStack, "only-stack", false, "remove only --stack's volumes, also with --owner (a domain change's job: the app's new stack may run on the node)")
	cmd.Flags().StringSliceVar(&jobServices, "job-service", nil, "first remove the containers on this node of this swarm service's tasks once they have stopped (a removed recipe job's, which swarm keeps for good); repeatable")
	cmd.Flags().StringSliceVar(&taskServices, "task-service", nil, "a service of the app (by ID) whose stopped task containers holding its volumes are removed rather than waited for; repeatable")
	cmd.Flags().StringVar(&owner, "owner", "", "only volumes of this owner (the reconciler's identity); empty: any owner")
	cmd.Flags().DurationVar(&wait, "wait", controller.DefaultNodeJobs.Wait, "how long to wait for volumes still in use by stopping containers")
	return cmd
}

// volumeEngine is the part of the Engine API node-clean uses.
type volumeEngine interface {
	VolumeList(ctx context.Context, o volume.ListOptions) (volume.ListResponse, error)
	VolumeRemove(ctx context.Context, id string, force bool) error
	ContainerList(ctx context.Context, o container.ListOptions) ([]container.Summary, error)
	ContainerRemove(ctx context.Context, id string, o container.RemoveOptions) error
}

// labelTask is the label swarm's agent puts on the container of a task, labelService the one
// naming the task's service by ID.
const (
	labelTask    = "com.docker.swarm.task.id"
	labelService = "com.docker.swarm.service.id"
)

// removeJobContainers removes the containers on the node of the tasks of services (the IDs of
// an app's recipe jobs, whose services the teardown removes: swarm's agent keeps a job's
// finished container for good), waiting while one still runs, until none is left or ctx ends.
// One still running after stopAfter is stopped and removed: swarm leaves a removed job's task
// running for good (engine 20.10), as on a node that was down while the teardown removed the
// job. A service ID is swarm's, unique, and names only a service the reconciler owned.
func removeJobContainers(ctx context.Context, e volumeEngine, services []string, stopAfter time.Duration, out io.Writer) error {
	if len(services) == 0 {
		return nil
	}
	removed, force := 0, time.After(stopAfter)
	for {
		cs, err := e.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", labelService))})
		if err != nil {
			return fmt.Errorf("list the containers of the app's jobs: %w", err)
		}
		var running []string
		for _, c := range cs {
			if !slices.Contains(services, c.Labels[labelService]) {
				continue
			}
			name := strings.TrimPrefix(firstName(c.Names), "/")
			switch c.State {
			case container.StateExited, container.StateDead, container.StateCreated:
				if err := e.ContainerRemove(ctx, c.ID, container.RemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
					running = append(running, fmt.Sprintf("%s (%v)", name, err))
					continue
				}
				removed++
			default:
				if force == nil {
					if err := e.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err == nil || cerrdefs.IsNotFound(err) {
						fmt.Fprintf(out, "stopped and removed %s, a container of the app's jobs still %s after %s\n", name, c.State, stopAfter)
						removed++
						continue
					}
				}
				running = append(running, fmt.Sprintf("%s (%s)", name, c.State))
			}
		}
		if len(running) == 0 {
			fmt.Fprintf(out, "removed %d containers of the app's jobs\n", removed)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("containers of the app's jobs left on this node: %s", strings.Join(running, ", "))
		case <-force:
			force = nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// cleanVolumes waits until no container of stack that mounts one of the app's volumes is left
// on the node (none when stack is ""), then removes the app's volumes until a list finds none,
// retrying those still in use, until ctx ends. It reports what it removed, and on failure what
// is left and why. A container of the stack that mounts none of them is not waited for: a
// stack of that name deployed since (by abra, or an app given the freed domain) runs on.
func cleanVolumes(ctx context.Context, e volumeEngine, app, owner, stack string, onlyStack bool, services []string, out io.Writer) error {
	f := filters.NewArgs(filters.Arg("label", swarmstate.LabelApp+"="+app), ownerFilter(owner))
	if stack != "" && (owner == "" || onlyStack) {
		// Any owner's (the janitor's): only the stack's, as an app of the same name in another
		// stack, another owner's, may be live; a move's: only the stack the app left, as its new
		// one may run here. An owner's teardown job removes every volume of its app, also those
		// of a stack the app left.
		f.Add("label", swarmstate.LabelNamespace+"="+stack)
	}
	var stopped []string
	for stack != "" {
		holding, err := holders(ctx, e, f, stack, services, &stopped)
		if err != nil {
			return err
		}
		if len(holding) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("containers of stack %s still use the app's volumes on this node: %s", stack, strings.Join(holding, ", "))
		case <-time.After(100 * time.Millisecond):
		}
	}
	var removed []string
	for {
		list, err := e.VolumeList(ctx, volume.ListOptions{Filters: f})
		if err != nil {
			return fmt.Errorf("list the volumes of %s: %w", app, err)
		}
		list.Volumes = slices.DeleteFunc(list.Volumes, unowned)
		if len(list.Volumes) == 0 {
			if len(stopped) > 0 {
				// The teardown reads this line: these tasks' ends, which their agent may
				// report after this answer, are covered by it (controller.StoppedRemoved).
				fmt.Fprintln(out, controller.StoppedRemoved, strings.Join(stopped, " "))
			}
			fmt.Fprintf(out, "nothing of app %s left on this node; removed %d volumes: %s\n", app, len(removed), strings.Join(removed, ", "))
			return nil
		}
		var left []string
		for _, v := range list.Volumes {
			switch err := e.VolumeRemove(ctx, v.Name, false); {
			case err == nil:
				removed = append(removed, v.Name)
			case cerrdefs.IsNotFound(err):
			default:
				left = append(left, fmt.Sprintf("%s (%v)", v.Name, err))
			}
		}
		slices.Sort(left)
		if len(left) == 0 {
			continue // list again: nothing may be left
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("volumes of app %s left on this node: %s", app, strings.Join(left, "; "))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// listVolumes prints one controller.NodeVolume JSON line per volume labelled with an app (and
// the owner, when given) on the engine.
func listVolumes(ctx context.Context, e volumeEngine, owner string, out io.Writer) error {
	list, err := e.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", swarmstate.LabelApp), ownerFilter(owner))})
	if err != nil {
		return fmt.Errorf("list volumes: %w", err)
	}
	enc := json.NewEncoder(out)
	for _, v := range slices.DeleteFunc(list.Volumes, unowned) {
		if err := enc.Encode(controller.NodeVolume{App: v.Labels[swarmstate.LabelApp], Owner: v.Labels[swarmstate.LabelOwner],
			Domain: v.Labels[manifests.LabelDomain], Volume: v.Name}); err != nil {
			return err
		}
	}
	return nil
}

// ownerFilter selects the volumes of owner, or without one (the janitor's) of any owner: a
// volume labelled with an app but no owner was not made by a reconciler, and is not ours.
func ownerFilter(owner string) filters.KeyValuePair {
	if owner == "" {
		return filters.Arg("label", swarmstate.LabelOwner)
	}
	return filters.Arg("label", swarmstate.LabelOwner+"="+owner)
}

// unowned reports a volume whose owner label is empty, which the label filter lets through.
func unowned(v *volume.Volume) bool {
	return v.Labels[swarmstate.LabelOwner] == "" || v.Labels[swarmstate.LabelApp] == ""
}

// holders names the containers of stack on the node that mount a volume f selects. A stopped
// container of a swarm task is removed instead, its task's ID added to stopped: swarm's agent
// would remove it only once the managers reap the task, seconds later on a busy swarm, and a
// task's container, once stopped, is never started again. The teardown takes the task's end as
// covered by this job's answer (the line naming stopped), which its agent may report later.
func holders(ctx context.Context, e volumeEngine, f filters.Args, stack string, services []string, stopped *[]string) ([]string, error) {
	list, err := e.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list the volumes of stack %s: %w", stack, err)
	}
	ours := map[string]bool{}
	for _, v := range slices.DeleteFunc(list.Volumes, unowned) {
		ours[v.Name] = true
	}
	if len(ours) == 0 {
		return nil, nil
	}
	cs, err := e.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", swarmstate.LabelNamespace+"="+stack))})
	if err != nil {
		return nil, fmt.Errorf("list the containers of %s: %w", stack, err)
	}
	var out []string
	for _, c := range cs {
		if !slices.ContainsFunc(c.Mounts, func(m container.MountPoint) bool { return m.Type == mount.TypeVolume && ours[m.Name] }) {
			continue
		}
		if task := c.Labels[labelTask]; task != "" && slices.Contains(services, c.Labels[labelService]) &&
			(c.State == container.StateExited || c.State == container.StateDead) {
			if err := e.ContainerRemove(ctx, c.ID, container.RemoveOptions{}); err == nil || cerrdefs.IsNotFound(err) {
				if !slices.Contains(*stopped, task) {
					*stopped = append(*stopped, task)
				}
				continue
			}
		}
		out = append(out, fmt.Sprintf("%s (%s)", strings.TrimPrefix(firstName(c.Names), "/"), c.State))
	}
	return out, nil
}

func firstName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}
