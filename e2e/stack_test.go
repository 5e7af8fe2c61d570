package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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

// stackRemove runs `docker stack rm` and waits until nothing of the stack is left, removing
// its volumes and external secrets itself as `docker stack rm` leaves them (as
// `abra app rm --volumes` does).
func stackRemove(ctx context.Context, stack string) error {
	cmd := exec.CommandContext(ctx, "docker", "stack", "rm", stack)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker stack rm %s: %w\n%s", stack, err, out)
	}
	var left []string
	err := poll(ctx, 2*time.Minute, func() (bool, error) {
		var err error
		left, err = labelled(ctx, suite.docker, namespaceLabel, stack)
		if err != nil {
			return false, err
		}
		stackLeft := false
		for _, obj := range left {
			stackLeft = stackLeft || !strings.HasPrefix(obj, "volume ") && !strings.HasPrefix(obj, "secret ")
		}
		if len(left) > 0 && !stackLeft {
			// Every service and container is gone: the volumes and secrets are free to remove.
			err = removeLabelled(ctx, suite.docker, namespaceLabel, stack)
		}
		return len(left) == 0, err
	})
	if err != nil {
		return fmt.Errorf("docker stack rm %s: still there: %s: %w", stack, strings.Join(left, ", "), err)
	}
	return nil
}
