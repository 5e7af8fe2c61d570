package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
)

// Labels of the DESIGN.md contract.
const (
	appLabel       = "swarm-reconciler.app"
	namespaceLabel = "com.docker.stack.namespace"
)

// labelled lists the swarm objects carrying label key=value, as "kind name" sorted: services,
// networks, volumes, secrets, configs, and containers (a task's container outliving its
// service is residue too). Containers carry the stack's namespace label, not the app's: for
// an app's, see appContainers.
func labelled(ctx context.Context, docker *client.Client, key, value string) ([]string, error) {
	f := filters.NewArgs(filters.Arg("label", key+"="+value))
	var found []string
	var errs []error
	services, err := docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	errs = append(errs, err)
	for _, s := range services {
		found = append(found, "service "+s.Spec.Name)
	}
	networks, err := docker.NetworkList(ctx, network.ListOptions{Filters: f})
	errs = append(errs, err)
	for _, n := range networks {
		found = append(found, "network "+n.Name)
	}
	volumes, err := docker.VolumeList(ctx, volume.ListOptions{Filters: f})
	errs = append(errs, err)
	for _, v := range volumes.Volumes {
		found = append(found, "volume "+v.Name)
	}
	secrets, err := docker.SecretList(ctx, swarm.SecretListOptions{Filters: f})
	errs = append(errs, err)
	for _, s := range secrets {
		found = append(found, "secret "+s.Spec.Name)
	}
	configs, err := docker.ConfigList(ctx, swarm.ConfigListOptions{Filters: f})
	errs = append(errs, err)
	for _, c := range configs {
		found = append(found, "config "+c.Spec.Name)
	}
	containers, err := docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	errs = append(errs, err)
	for _, c := range containers {
		found = append(found, fmt.Sprintf("container %s (%s)", c.ID[:12], c.State))
	}
	sort.Strings(found)
	return found, errors.Join(errs...)
}

// removeLabelled removes every object carrying label key=value the way a teardown must:
// services first, then (once their containers are gone) networks, secrets and configs, then
// volumes, retrying while a stopping container still holds one. It is the suite's last
// resort, so a failed test never leaks into the next one.
func removeLabelled(ctx context.Context, docker *client.Client, key, value string) error {
	f := filters.NewArgs(filters.Arg("label", key+"="+value))
	var errs []error
	services, err := docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	errs = append(errs, err)
	for _, s := range services {
		if err := docker.ServiceRemove(ctx, s.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	for _, s := range services {
		byService := filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.id="+s.ID))
		errs = append(errs, poll(ctx, time.Minute, func() (bool, error) {
			cs, err := docker.ContainerList(ctx, container.ListOptions{All: true, Filters: byService})
			return err == nil && len(cs) == 0, err
		}))
	}
	networks, err := docker.NetworkList(ctx, network.ListOptions{Filters: f})
	errs = append(errs, err)
	for _, n := range networks {
		if err := docker.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	secrets, err := docker.SecretList(ctx, swarm.SecretListOptions{Filters: f})
	errs = append(errs, err)
	for _, s := range secrets {
		if err := docker.SecretRemove(ctx, s.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	configs, err := docker.ConfigList(ctx, swarm.ConfigListOptions{Filters: f})
	errs = append(errs, err)
	for _, c := range configs {
		if err := docker.ConfigRemove(ctx, c.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	containers, err := docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	errs = append(errs, err)
	for _, c := range containers {
		if err := docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, removeVolumes(ctx, docker, f))
	return errors.Join(errs...)
}

// removeVolumes removes the volumes matching f, retrying for a while as a just-stopped
// container may still hold one.
func removeVolumes(ctx context.Context, docker *client.Client, f filters.Args) error {
	var last error
	err := poll(ctx, time.Minute, func() (bool, error) {
		volumes, err := docker.VolumeList(ctx, volume.ListOptions{Filters: f})
		if err != nil {
			return false, err
		}
		last = nil
		for _, v := range volumes.Volumes {
			if err := docker.VolumeRemove(ctx, v.Name, false); err != nil && !cerrdefs.IsNotFound(err) {
				last = err
			}
		}
		return len(volumes.Volumes) == 0, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (last removal error: %v)", err, last)
	}
	return err
}

// serviceIndexes maps the name of each service labelled for app to its Version.Index, which
// moves on every service update.
func serviceIndexes(ctx context.Context, docker *client.Client, app string) (map[string]uint64, error) {
	services, err := docker.ServiceList(ctx, swarm.ServiceListOptions{
		Filters: filters.NewArgs(filters.Arg("label", appLabel+"="+app)),
	})
	if err != nil {
		return nil, err
	}
	indexes := make(map[string]uint64, len(services))
	for _, s := range services {
		indexes[s.Spec.Name] = s.Version.Index
	}
	return indexes, nil
}

// runningTask reports whether service has a task that is running, and the newest task error.
func runningTask(ctx context.Context, docker *client.Client, service string) (bool, string, error) {
	tasks, err := docker.TaskList(ctx, swarm.TaskListOptions{
		Filters: filters.NewArgs(filters.Arg("service", service), filters.Arg("desired-state", "running")),
	})
	if err != nil {
		return false, "", err
	}
	var why string
	for _, task := range tasks {
		if task.Status.State == swarm.TaskStateRunning {
			return true, "", nil
		}
		why = fmt.Sprintf("%s %s", task.Status.State, task.Status.Err)
	}
	return false, why, nil
}

// poll calls cond every 100ms until it reports done, ctx ends, or within passes; it returns
// the last error cond gave when it gives up.
func poll(ctx context.Context, within time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last error
	for {
		done, err := cond()
		if done {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("gave up after %s: %w", within, last)
			}
			return fmt.Errorf("gave up after %s", within)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// httpGet fetches http://127.0.0.1:<port><path> and returns the status code and body.
func httpGet(port int, path string) (int, string, error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// waitHTTP polls GET path on the app's port until it answers 200 with want, for at most a
// minute, and returns what it saw last otherwise.
func waitHTTP(ctx context.Context, port int, path, want string) error {
	var lastCode int
	var lastBody string
	var lastErr error
	err := poll(ctx, time.Minute, func() (bool, error) {
		lastCode, lastBody, lastErr = httpGet(port, path)
		return lastErr == nil && lastCode == http.StatusOK && lastBody == want, nil
	})
	if err != nil {
		return fmt.Errorf("GET 127.0.0.1:%d%s never answered 200 %q: last answer %d %q, error %v", port, path, want, lastCode, lastBody, lastErr)
	}
	return nil
}

var ports struct {
	sync.Mutex
	used map[int]bool
}

// freePort picks a host port that nothing listens on and that this run has not handed out,
// below the kernel's ephemeral range so outgoing connections do not take it meanwhile.
func freePort() (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
	}
	for range 200 {
		port := 20000 + rand.IntN(10000)
		if ports.used[port] {
			continue
		}
		l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		ports.used[port] = true
		return port, nil
	}
	return 0, errors.New("no free port in 20000-29999")
}
