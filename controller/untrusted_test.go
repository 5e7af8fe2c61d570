package controller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

const socketCompose = `version: "3.8"
services:
  app:
    image: echo:%s
    environment:
      MESSAGE: "hello %s"
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
`

func TestPolicyDeniesBeforeAnythingIsCreated(t *testing.T) {
	f := newFixture(t)
	makeRecipeOf(t, f.r.RecipesDir, "sock", socketCompose, "1.0.0+1")
	f.r.Policy = manifests.Policy{Level: manifests.Baseline}
	f.writeSpec("s", "recipe: sock\nversion: 1.0.0+1\n")
	st := f.settle("s")
	if st.Phase != spec.PhaseInvalid || !strings.Contains(st.Message, "service app: volumes: /var/run/docker.sock:/var/run/docker.sock") ||
		!strings.Contains(st.Message, "--policy privileged") || !strings.Contains(st.Message, "nothing was created") {
		t.Fatalf("under baseline: %s %s", st.Phase, st.Message)
	}
	if w := f.engine.writes(); len(w) > 0 {
		t.Fatalf("a denied app changed the swarm: %v", w)
	}
	f.r.Policy = manifests.Policy{Level: manifests.Privileged}
	f.writeSpec("s", "recipe: sock\nversion: 1.0.0+1\n# privileged now\n")
	if st = f.settle("s"); st.Phase != spec.PhaseReady {
		t.Fatalf("under privileged: %s %s", st.Phase, st.Message)
	}
}

func TestStricterPolicyLeavesADeployedAppRunning(t *testing.T) {
	f := newFixture(t)
	makeRecipeOf(t, f.r.RecipesDir, "sock", socketCompose, "1.0.0+1")
	f.writeSpec("s", "recipe: sock\nversion: 1.0.0+1\n")
	if st := f.settle("s"); st.Phase != spec.PhaseReady {
		t.Fatalf("install under privileged: %s %s", st.Phase, st.Message)
	}
	// The reconciler restarts with --policy baseline.
	f.r.Policy = manifests.Policy{Level: manifests.Baseline}
	f.engine.resetCalls()
	st := f.settle("s")
	if st.Phase != spec.PhaseDegraded || !strings.Contains(st.Message, "left running") || !strings.Contains(st.Message, "docker.sock") {
		t.Fatalf("after the policy change: %s %s", st.Phase, st.Message)
	}
	if w := f.engine.writes(); len(w) > 0 {
		t.Fatalf("a policy change touched a deployed app: %v", w)
	}
	if len(f.engine.services) != 1 {
		t.Fatalf("services: %d", len(f.engine.services))
	}
	// An edit of its spec under the stricter policy is Invalid, and the deployed app stays.
	f.writeSpec("s", "recipe: sock\nversion: 1.0.0+1\nenv: {A: b}\n")
	if st = f.settle("s"); st.Phase != spec.PhaseInvalid || len(f.engine.writes()) > 0 || len(f.engine.services) != 1 {
		t.Fatalf("an edit under the stricter policy: %s %s; writes %v", st.Phase, st.Message, f.engine.writes())
	}
}

func TestCorruptStatusIsReplaced(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("c", "recipe: echo\nversion: 1.0.0+1\n")
	if st := f.settle("c"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s", st.Phase)
	}
	for _, garbage := range []string{"\x00\x01 not json", `{"app": "someone-else", "phase": "Ready"}`, `{"ap`} {
		if err := os.WriteFile(filepath.Join(f.r.StatusDir, "c.json"), []byte(garbage), 0o644); err != nil {
			t.Fatal(err)
		}
		f.engine.resetCalls()
		if _, err := f.r.Reconcile(t.Context(), "c"); err != nil {
			t.Fatalf("a corrupt status file (%q) is an error: %v", garbage, err)
		}
		st := f.settle("c")
		if st.App != "c" || st.Phase != spec.PhaseReady {
			t.Fatalf("after %q: %+v", garbage, st)
		}
		if w := f.engine.writes(); len(w) > 0 {
			t.Fatalf("a corrupt status file made the reconciler change the swarm: %v", w)
		}
	}
}

// TestUnwrittenStatusIsKept: a status that could not be written is where the next pass starts,
// not the stale file: an attempt's start and a ttl hold while the status directory is read-only.
func TestUnwrittenStatusIsKept(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("u", "recipe: echo\nversion: 1.0.0+1\n")
	st := f.settle("u")
	if st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s", st.Phase)
	}
	status := f.r.StatusDir
	f.r.StatusDir = filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(f.r.StatusDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st.Deploys = 99 // what the unwritable pass decided, unlike the file
	if err := f.r.persist(st, f.now); err == nil {
		t.Fatal("a status that cannot be written is no error")
	}
	f.r.StatusDir = status
	if _, err := f.r.Reconcile(t.Context(), "u"); err != nil {
		t.Fatal(err)
	}
	st, err := spec.ReadStatus(status, "u")
	if err != nil || st.Deploys != 99 || f.r.unwrittenStatus("u") != nil {
		t.Fatalf("the next pass did not start from the unwritten status: %+v %v", st, err)
	}
}
