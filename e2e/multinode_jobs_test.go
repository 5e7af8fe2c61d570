package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestMultinodeJobContainerOnAnotherNode: a recipe job (replicated-job) runs its task on the
// worker, where the app has no volume. swarm's agent keeps a job's finished container for good
// once its service is removed, and nothing else ran there for the app, so no node was asked:
// the container stayed on the worker after Deleted. The teardown's job on that node removes it.
func TestMultinodeJobContainerOnAnotherNode(t *testing.T) {
	t.Parallel()
	h := mnHarness(t)
	makeEchoRecipe(t, h, "mn-job", "", fmt.Sprintf(`services:
  app:
    image: %s
    environment:
      MESSAGE: hello
    deploy:
      placement:
        constraints: ["node.hostname == mn-node2"]
  migrate:
    image: %s
    command: ["--version"]
    deploy:
      mode: replicated-job
      placement:
        constraints: ["node.hostname == mn-node4"]
`, echoImage, mnReconcilerImage), nil)
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
