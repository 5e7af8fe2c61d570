package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// TestJobRunningAtTeardown: a recipe job (replicated-job) still runs when the app's spec is
// deleted. Swarm (engine 20.10) leaves a removed job's running task running for good, its
// container with no service, holding the app's network; the teardown first gives the job a
// constraint no node meets, which shuts its task down, and removes it once none runs: Deleted
// with no container of the app left.
func TestJobRunningAtTeardown(t *testing.T) {
	t.Parallel()
	h, a, gen := jobRunning(t, "e2e-job-run")
	ctx := context.Background()
	if s, _, err := h.readStatus(a.name); err != nil || s.ObservedGeneration != gen || s.Phase == "Ready" {
		t.Fatalf("status %s %q (%v) while the job runs; want the generation not Ready", s.Phase, s.Message, err)
	}
	h.deleteSpec(a.name)
	s, err := h.awaitStatus(a.name, "Deleted", func(s appStatus) (bool, string) { return s.Phase == "Deleted", "" })
	if err != nil {
		t.Fatal(err)
	}
	if left, err := appContainers(ctx, h.docker, a.name); err != nil || len(left) > 0 {
		t.Fatalf("Deleted with containers of the app left: %v (%v); status:\n%s", left, err, s)
	}
	h.assertNoResidue(a.name)
}

// makeJobRecipe makes recipe: an echo app and a replicated-job, migrate, running command with
// /bin/sh -c, under the job's default restart policy or condition (non-empty).
func makeJobRecipe(t *testing.T, h *harness, recipe, command string, condition ...string) {
	t.Helper()
	restart := ""
	if len(condition) > 0 {
		restart = "\n      restart_policy:\n        condition: " + condition[0]
	}
	makeEchoRecipe(t, h, recipe, "", fmt.Sprintf(`services:
  app:
    image: %[1]s
    environment:
      - MESSAGE=hello
      - PORT=8080
    deploy:
      labels:
        - "coop-cloud.${STACK_NAME}.version=%[3]s"
  migrate:
    image: %[2]s
    entrypoint: ["/bin/sh", "-c", %[4]q]
    deploy:
      mode: replicated-job%[5]s
`, echoImage, shellImage, miniRelease, command, restart), nil)
}

// TestJobRunningWhenAReleaseDropsIt: an upgrade to a release without the recipe's job while
// its task runs. The job goes as in a teardown: made to run nowhere first, removed once its
// task stopped; Ready on the new release with no container of the job left.
func TestJobRunningWhenAReleaseDropsIt(t *testing.T) {
	t.Parallel()
	h, a, _ := jobRunning(t, "e2e-job-drop")
	ctx := context.Background()
	const next = "1.0.1+1"
	dir := filepath.Join(h.recipes, "e2e-job-drop")
	compose, err := os.ReadFile(filepath.Join(dir, "compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	without, _, ok := strings.Cut(string(compose), "  migrate:\n")
	if !ok {
		t.Fatalf("no migrate service in the recipe:\n%s", compose)
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yml"), []byte(without), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", "chore: release " + next}, {"tag", "-a", next, "-m", "release " + next}} {
		if err := git(dir, args...); err != nil {
			t.Fatal(err)
		}
	}
	gen := h.writeSpec(a.name, []byte(fmt.Sprintf("recipe: e2e-job-drop\nversion: %q\ntimeout: 5m\n", next)))
	s := h.waitPhase(a.name, gen, "Ready")
	if _, _, err := h.docker.ServiceInspectWithRaw(ctx, a.stack()+"_migrate", swarm.ServiceInspectOptions{}); err == nil {
		t.Errorf("Ready on %s with the job's service still there", next)
	}
	cs, err := h.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.name="+a.stack()+"_migrate"))})
	if err != nil || len(cs) > 0 {
		t.Errorf("Ready on %s with containers of the job left: %v (%v); status:\n%s", next, cs, err, s)
	}
}

// jobRunning deploys an app of makeJobRecipe's recipe named recipe, whose job runs for ten
// minutes, and returns once the job's task runs: the harness, the app and its generation.
func jobRunning(t *testing.T, recipe string) (*harness, *testApp, string) {
	t.Helper()
	h := newHarness(t)
	needShellImage(t)
	makeJobRecipe(t, h, recipe, "sleep 600")
	h.start()
	a := h.newApp(recipe)
	gen := h.writeSpec(a.name, []byte(fmt.Sprintf("recipe: %s\nversion: %q\ntimeout: 5m\n", recipe, miniRelease)))
	ctx := context.Background()
	var tasks []swarm.Task
	err := poll(ctx, 2*time.Minute, func() (bool, error) {
		var err error
		tasks, err = h.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", a.stack()+"_migrate"))})
		return err == nil && len(tasks) == 1 && tasks[0].Status.State == swarm.TaskStateRunning, err
	})
	if err != nil {
		t.Fatalf("the job's task does not run: %v (tasks %d)", err, len(tasks))
	}
	return h, a, gen
}
