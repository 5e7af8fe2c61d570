package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMultinodeJobContainerOnAnotherNode: a recipe job (replicated-job) runs its task on the
// worker, where the app has no volume. swarm's agent keeps a job's finished container for good
// once its service is removed, and nothing else ran there for the app, so no node was asked:
// the container stayed on the worker after Deleted. The teardown's job on that node removes it.
func TestMultinodeJobContainerOnAnotherNode(t *testing.T) {
	t.Parallel()
	h := mnHarness(t)
	makeEchoRecipe(t, h, "mn-job", "", fmt.Sprintf(mnJobRecipe, echoImage, mnReconcilerImage, `command: ["--version"]`), nil)
	h.start()
	a := h.newApp("mn-job")
	gen := h.writeSpec(a.name, []byte("recipe: mn-job\nversion: "+miniRelease+"\ntimeout: 2m\nminReady: 1s\n"))
	s := h.waitPhase(a.name, gen, "Ready")
	worker := mn.nodes[3]
	cs, err := appContainers(context.Background(), worker.docker, a.name)
	if err != nil {
		t.Fatal(err)
	}
	// One or more: a manager that once led swarm's Raft may run a job again (moby/moby#53632),
	// as it does when another test changes the leader meanwhile.
	if !slices.ContainsFunc(cs, func(c string) bool { return strings.Contains(c, "(exited)") }) {
		t.Fatalf("want the job's exited container on %s, have %v; status:\n%s", worker.name, cs, s)
	}
	h.deleteSpec(a.name)
	s, err = h.awaitStatus(a.name, "Deleted", func(s appStatus) (bool, string) { return s.Phase == "Deleted", "" })
	if err != nil {
		t.Fatal(err)
	}
	if left, err := appContainers(context.Background(), worker.docker, a.name); err != nil || len(left) > 0 {
		t.Fatalf("Deleted with the job's container left on %s: %v (%v); status:\n%s", worker.name, left, err, s)
	}
	h.assertNoResidue(a.name)
}

// TestMultinodeJobRunningAtTeardown: a recipe job's task still runs on the worker when the
// app's spec is deleted. Swarm leaves a removed job's running task running for good, on any
// node; the teardown makes the job run nowhere first (its task shut down on mn-node4 through
// the manager), then removes it: Deleted with no container of the app on the worker.
func TestMultinodeJobRunningAtTeardown(t *testing.T) {
	t.Parallel()
	h := mnHarness(t)
	makeEchoRecipe(t, h, "mn-job-run", "", fmt.Sprintf(mnJobRecipe, echoImage, echoImage, "environment: {MESSAGE: migrating for ever}"), nil)
	h.start()
	a := h.newApp("mn-job-run")
	h.writeSpec(a.name, []byte("recipe: mn-job-run\nversion: "+miniRelease+"\ntimeout: 5m\nminReady: 1s\n"))
	ctx := context.Background()
	worker := mn.nodes[3]
	err := poll(ctx, 2*time.Minute, func() (bool, error) {
		cs, err := appContainers(ctx, worker.docker, a.name)
		return err == nil && slices.ContainsFunc(cs, func(c string) bool { return strings.Contains(c, "(running)") }), err
	})
	if err != nil {
		t.Fatalf("the job's task does not run on %s: %v", worker.name, err)
	}
	h.deleteSpec(a.name)
	s, err := h.awaitStatus(a.name, "Deleted", func(s appStatus) (bool, string) { return s.Phase == "Deleted", "" })
	if err != nil {
		t.Fatal(err)
	}
	if left, err := appContainers(ctx, worker.docker, a.name); err != nil || len(left) > 0 {
		t.Fatalf("Deleted with containers of the app left on %s: %v (%v); status:\n%s", worker.name, left, err, s)
	}
	h.assertNoResidue(a.name)
}

// mnJobRecipe is the compose file of the multi-node job tests, for fmt.Sprintf with the app's
// image, the job's image and one more key of the job: the app on mn-node2, a replicated-job on
// mn-node4, where the app has no volume.
const mnJobRecipe = `services:
  app:
    image: %s
    environment:
      MESSAGE: hello
    deploy:
      placement:
        constraints: ["node.hostname == mn-node2"]
  migrate:
    image: %s
    %s
    deploy:
      mode: replicated-job
      placement:
        constraints: ["node.hostname == mn-node4"]
`
