package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

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
	h := newHarness(t)
	needShellImage(t)
	makeJobRecipe(t, h, "e2e-job-run", "sleep 600")
	h.start()
	a := h.newApp("e2e-job-run")
	gen := h.writeSpec(a.name, []byte(fmt.Sprintf("recipe: e2e-job-run\nversion: %q\ntimeout: 5m\n", miniRelease)))
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
