package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoThenDiff: `make demo` (scripts/demo) on the suite's swarm deploys the example app,
// and `reconciler diff` of the demo spec, typed as the demo's closing message suggests (its
// environment, no --domain-suffix flag), then exits 0 with no differences (issue 11).
func TestDemoThenDiff(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	run := func(within time.Duration, env []string, name string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if out, err := run(5*time.Minute, nil, "scripts/demo", "down"); err != nil {
			t.Errorf("scripts/demo down: %v\n%s", err, out)
		}
	})
	if out, err := run(10*time.Minute, nil, "scripts/demo"); err != nil {
		t.Fatalf("scripts/demo: %v\n%s", err, out)
	}
	state := filepath.Join(root, "demo", "state")
	env := []string{"RECONCILER_SPECS=" + filepath.Join(state, "specs"), "RECONCILER_STATUS=" + filepath.Join(state, "status"),
		"RECONCILER_RECIPES=" + filepath.Join(state, "recipes"), "RECONCILER_DOMAIN_SUFFIX="}
	out, err := run(time.Minute, env, filepath.Join(root, "bin", "reconciler"), "diff", filepath.Join(state, "specs", "hello.yml"))
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("reconciler diff of the demo spec after make demo: %v, want exit 0 and no output:\n%s", err, out)
	}
}
