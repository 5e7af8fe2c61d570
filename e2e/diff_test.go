package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDiffShowsDriftFirst: `reconciler diff` is empty (exit 0) for an app in sync, with or
// without the daemon's --domain-suffix, and shows a change made by hand (exit 1) while the app
// is suspended; once the suspension is lifted, the change is set back and diff is empty again.
func TestDiffShowsDriftFirst(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	a := h.newApp("e2e-diff")
	version := h.recipe.first().Version
	gen := h.writeSpec(a.name, a.spec(version))
	h.waitPhase(a.name, gen, "Ready")

	if r := h.cli(time.Minute, "diff", h.specPath(a.name)); r.code != 0 || strings.TrimSpace(r.stdout) != "" {
		t.Fatalf("an app in sync must diff empty with exit 0: %s", r)
	}
	// Without the daemon's --domain-suffix (as a user types it after `make demo`), the spec,
	// which leaves its domain to the default, is compared under the domain its status records.
	bare := exec.Command(h.bin, "diff", h.specPath(a.name), "--specs", h.specs, "--status", h.status,
		"--recipes", h.recipes, "--lock-dir", suite.lockDir)
	if out, err := bare.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("diff without --domain-suffix of an app in sync must be empty with exit 0, got %v:\n%s", err, out)
	}

	gen = h.writeSpec(a.name, a.spec(version, "suspend: true"))
	h.waitPhase(a.name, gen, "Suspended")
	svc := a.appService(t)
	if out, err := exec.Command("docker", "service", "update", "--detach", "--env-add", "HANDMADE=1", svc.Spec.Name).CombinedOutput(); err != nil {
		t.Fatalf("docker service update: %v\n%s", err, out)
	}
	r := h.cli(time.Minute, "diff", h.specPath(a.name))
	if r.code != 1 || !strings.Contains(r.stdout, "changed by hand") || !strings.Contains(r.stdout, "HANDMADE=1") {
		t.Fatalf("diff must show the change by hand with exit 1: %s", r)
	}

	gen = h.writeSpec(a.name, a.spec(version))
	h.waitPhase(a.name, gen, "Ready")
	var last cliResult
	deadline := time.Now().Add(phaseDeadline)
	for time.Now().Before(deadline) {
		if last = h.cli(time.Minute, "diff", h.specPath(a.name)); last.code == 0 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("after the suspension was lifted the change by hand was not set back: %s", last)
}
