package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// This file deploys a recipe the way a person would without the reconciler, with
// `docker stack deploy`: the baseline that proves the fixtures work (TestFixtureStackDeploy)
// and that the benchmark compares the reconciler against. Only tests shell out to docker.

// stackEnv is the environment `abra app deploy` would give the compose file of r: the
// .env.sample, the exports of abra.sh, then DOMAIN, STACK_NAME and PORT.
func stackEnv(checkout, stack, domain string, port int) ([]string, error) {
	env := map[string]string{}
	for file, prefix := range map[string]string{".env.sample": "", "abra.sh": "export "} {
		f, err := os.Open(filepath.Join(checkout, file))
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") || !strings.HasPrefix(line, prefix) {
				continue
			}
			k, v, ok := strings.Cut(strings.TrimPrefix(line, prefix), "=")
			v, _, _ = strings.Cut(v, " #") // abra's modifiers: SECRET_X_VERSION=v1 # length=32
			if ok {
				env[k] = strings.Trim(strings.TrimSpace(v), `"'`)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	env["DOMAIN"] = domain
	env["STACK_NAME"] = stack
	env["PORT"] = strconv.Itoa(port)
	out := os.Environ()
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out, nil
}

// stackCheckout clones version of r into dir/<stack>, as the compose files to deploy.
func stackCheckout(ctx context.Context, r recipe, version, dir, stack string) (string, error) {
	checkout := filepath.Join(dir, stack)
	cmd := exec.CommandContext(ctx, "git", "-c", "advice.detachedHead=false", "clone", "-q", "--branch", version, r.Dir, checkout)
	cmd.Env = append(os.Environ(), gitEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("git clone %s@%s: %w\n%s", r.Name, version, err, out)
	}
	return checkout, nil
}

// stackDeployCheckout runs `docker stack deploy` of checkout's compose.yml as stack,
// publishing port. It does not wait for the tasks. No registry is reachable, so images are
// not resolved (they are local).
func stackDeployCheckout(ctx context.Context, checkout, stack string, port int) error {
	env, err := stackEnv(checkout, stack, strings.ReplaceAll(stack, "_", "."), port)
	if err != nil {
		return err
	}
	if err := createStackSecrets(ctx, stack); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "docker", "stack", "deploy", "--resolve-image", "never", "-c", "compose.yml", stack)
	cmd.Dir = checkout
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker stack deploy %s: %w\n%s", stack, err, out)
	}
	return nil
}

// stackDeploy is stackCheckout then stackDeployCheckout.
func stackDeploy(ctx context.Context, r recipe, version, dir, stack string, port int) error {
	checkout, err := stackCheckout(ctx, r, version, dir, stack)
	if err != nil {
		return err
	}
	return stackDeployCheckout(ctx, checkout, stack, port)
}

// createStackSecrets creates the recipe's external secret as `abra app secret generate`
// would: named <stack>_api_key_<version>, secretLength random characters, labelled with the
// stack so that stackRemove finds it.
func createStackSecrets(ctx context.Context, stack string) error {
	value := make([]byte, secretLength)
	for i := range value {
		value[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[rand.IntN(36)]
	}
	_, err := suite.docker.SecretCreate(ctx, swarm.SecretSpec{
		Annotations: swarm.Annotations{Name: stack + "_api_key_v1", Labels: map[string]string{namespaceLabel: stack}},
		Data:        value,
	})
	if err != nil {
		return fmt.Errorf("create the secret of stack %s: %w", stack, err)
	}
	return nil
}

// waitStackRunning waits until the stack's app service has a running task.
func waitStackRunning(ctx context.Context, stack string, within time.Duration) error {
	var why string
	err := poll(ctx, within, func() (bool, error) {
		ok, w, err := runningTask(ctx, suite.docker, stack+"_app")
		why = w
		return ok, err
	})
	if err != nil {
		return fmt.Errorf("stack %s: no running task (last: %s): %w", stack, why, err)
	}
	return nil
}

// stackRemove removes a stack deployed with `docker stack deploy` and everything of it,
// volumes included (stackRmPoll), or says what is left.
func stackRemove(ctx context.Context, stack string) error {
	_, err := stackRmPoll(ctx, stack)
	return err
}

// stackRmPoll is `docker stack rm` plus polling every 100ms until no service, container,
// network, config, secret or volume of the stack is left, as a CI job would do it:
// `docker stack rm` removes the networks right after the services and fails when a task still
// uses one (under load it does), so once the containers are gone it is run again while a
// network, config or secret is left; the volume, which it never removes, is removed then (as
// abra app rm --volumes does). It returns how many times the command had to be repeated.
func stackRmPoll(ctx context.Context, stack string) (int, error) {
	removedStacks.Lock()
	removedStacks.names = append(removedStacks.names, stack)
	removedStacks.Unlock()
	rm := func() error {
		out, err := exec.CommandContext(ctx, "docker", "stack", "rm", stack).CombinedOutput()
		if err != nil {
			return fmt.Errorf("docker stack rm %s: %w\n%s", stack, err, out)
		}
		return nil
	}
	rmErr := rm()
	reruns := 0
	var left []string
	err := poll(ctx, 3*time.Minute, func() (bool, error) {
		var err error
		if left, err = labelled(ctx, suite.docker, namespaceLabel, stack); err != nil || len(left) == 0 {
			return err == nil, err
		}
		running, rest := false, false
		for _, obj := range left {
			kind, _, _ := strings.Cut(obj, " ")
			running = running || kind == "service" || kind == "container"
			rest = rest || kind == "network" || kind == "config" || kind == "secret"
		}
		switch {
		case running:
			return false, nil
		case rest:
			reruns++
			rmErr = rm()
			return false, nil
		default:
			return false, removeVolumes(ctx, suite.docker, filters.NewArgs(filters.Arg("label", namespaceLabel+"="+stack)))
		}
	})
	if err != nil {
		return reruns, fmt.Errorf("stack %s still has %s (last docker stack rm: %v): %w", stack, strings.Join(left, ", "), rmErr, err)
	}
	return reruns, nil
}

// removedStacks are the stacks stackRmPoll removed. Swarm may start a task of one just as it
// is removed, after the poll saw nothing left, and that container makes the stack's volumes
// again (seen: two volumes of a conformance test's stack left after a green run). The suite
// removes them once more at its end (sweepRemovedStacks), long after such a container ended.
var removedStacks struct {
	sync.Mutex
	names []string
}

// sweepRemovedStacks removes what is left of the stacks stackRmPoll removed, and lists it.
func sweepRemovedStacks(ctx context.Context) ([]string, error) {
	removedStacks.Lock()
	defer removedStacks.Unlock()
	var late []string
	var errs []error
	for _, stack := range removedStacks.names {
		left, err := labelled(ctx, suite.docker, namespaceLabel, stack)
		errs = append(errs, err)
		if len(left) == 0 {
			continue
		}
		late = append(late, left...)
		errs = append(errs, removeLabelled(ctx, suite.docker, namespaceLabel, stack))
	}
	return late, errors.Join(errs...)
}
