package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// cliResult is what one reconciler subcommand did.
type cliResult struct {
	args           []string
	stdout, stderr string
	code           int
	took           time.Duration
}

func (r cliResult) String() string {
	return fmt.Sprintf("reconciler %s: exit %d after %s\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// cli runs the reconciler binary with args and the harness's directory flags, for at most
// within; a subcommand that does not exit by then fails the test.
func (h *harness) cli(within time.Duration, args ...string) cliResult {
	h.t.Helper()
	r, err := h.cliWith(within, nil, "", args...)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// cliWith is cli with extra environment (NAME=value) and stdin as the standard input, for a
// subtest (it fails no test): the error says that the subcommand did not run or did not exit
// within within (it was killed then).
func (h *harness) cliWith(within time.Duration, env []string, stdin string, args ...string) (cliResult, error) {
	args = append(args, h.flags()...)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = append(os.Environ(), append([]string{"TMPDIR=" + h.tmp}, env...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := cliResult{args: args, stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("did not exit within %s (killed): %s", within, r)
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		return r, fmt.Errorf("reconciler %s: %v", strings.Join(args, " "), err)
	}
	return r, nil
}

// TestCLI checks the subcommands CI and operators script against: wait, status, render, and
// once (which needs the spec directory to itself, so `run` is stopped for it).
func TestCLI(t *testing.T) {
	h := startHarness(t)
	a := h.newApp("e2e-cli")
	version := h.recipe.first().Version
	gen := h.writeSpec(a.name, a.spec(version))

	// wait blocks until the status describes this spec as Ready.
	if r := h.cli(2*time.Minute, "wait", a.name, "--for", "ready", "--timeout", "60s"); r.code != 0 {
		t.Errorf("want exit 0 once Ready: %s", r)
	} else if s, _, err := h.readStatus(a.name); err != nil || s.Phase != "Ready" || s.ObservedGeneration != gen {
		t.Errorf("wait exited 0 but the status does not say Ready for %s (err %v):\n%s", gen, err, s)
	}
	ready := h.waitPhase(a.name, gen, "Ready")
	idx := h.indexes(a.name)

	// A wait that cannot be satisfied in time exits 2.
	if r := h.cli(time.Minute, "wait", a.name, "--for", "deleted", "--timeout", "3s"); r.code != 2 {
		t.Errorf("wait --for deleted of a Ready app: want exit 2 (timeout): %s", r)
	}

	// status: a table, and JSON.
	{
		r := h.cli(time.Minute, "status")
		if r.code != 0 || !hasLineWith(r.stdout, a.name, "Ready") {
			t.Errorf("want a line naming %s and Ready: %s", a.name, r)
		}
		r = h.cli(time.Minute, "status", a.name, "-o", "json")
		if r.code != 0 || !json.Valid([]byte(r.stdout)) || !strings.Contains(r.stdout, a.name) || !strings.Contains(r.stdout, "Ready") {
			t.Errorf("want JSON naming %s and Ready: %s", a.name, r)
		}
	}

	// render: the objects as JSON, without touching the engine.
	{
		r := h.cli(time.Minute, "render", h.specPath(a.name))
		if r.code != 0 || !json.Valid([]byte(r.stdout)) || !strings.Contains(r.stdout, a.stack()+"_app") {
			t.Errorf("want JSON naming the service %s_app: %s", a.stack(), r)
		}
	}
	assertUntouched(t, h, a, ready, idx)

	// once needs the spec directory to itself.
	if err := h.stop(); err != nil {
		t.Errorf("reconciler on SIGTERM: %v", err)
	}
	// once: exit 0 with every app Ready, non-zero with one Invalid.
	{
		if r := h.cli(5*time.Minute, "once"); r.code != 0 {
			t.Errorf("once with one Ready app: want exit 0: %s", r)
		}
		assertUntouched(t, h, a, ready, idx)

		bad := h.newApp("e2e-cli-bad")
		badGen := h.writeSpec(bad.name, bad.spec(version, "bogus: true"))
		if r := h.cli(5*time.Minute, "once"); r.code == 0 {
			t.Errorf("once with an Invalid app: want a non-zero exit: %s", r)
		}
		if s, _, err := h.readStatus(bad.name); err != nil || s.Phase != "Invalid" || s.ObservedGeneration != badGen {
			t.Errorf("after once, app %s: want Invalid for %s (err %v):\n%s", bad.name, badGen, err, s)
		}
		// Run again (a CI job retried): the app is still Invalid, though this pass has
		// nothing to do for it.
		if r := h.cli(5*time.Minute, "once"); r.code != 1 || !strings.Contains(r.stderr, bad.name) {
			t.Errorf("once again with the app still Invalid: want exit 1 naming %s: %s", bad.name, r)
		}
		if r := h.cli(time.Minute, "wait", bad.name, "--for", "ready", "--timeout", "30s"); r.code != 1 {
			t.Errorf("wait --for ready of an Invalid app: want exit 1: %s", r)
		}
		assertUntouched(t, h, a, ready, idx)
	}
	h.start()

	// wait --for deleted follows a teardown to the end.
	h.deleteSpec(a.name)
	if r := h.cli(3*time.Minute, "wait", a.name, "--for", "deleted", "--timeout", "120s"); r.code != 0 {
		t.Errorf("want exit 0 once Deleted: %s", r)
	} else if s, _, err := h.readStatus(a.name); err != nil || s.Phase != "Deleted" {
		t.Errorf("wait --for deleted exited 0 but the status is not Deleted (err %v):\n%s", err, s)
	}
	h.assertNoResidue(a.name)
}

// TestSecondReconcilerRefused: a second reconciler on a spec directory that one already
// serves exits at once with an error naming the directory, and the first one carries on.
func TestSecondReconcilerRefused(t *testing.T) {
	h := startHarness(t)
	a := h.newApp("e2e-single")
	ready := a.deploy(h.recipe.first().Version)
	idx := h.indexes(a.name)

	for _, sub := range [][]string{{"run", "--resync", resync.String()}, {"once"}} {
		r := h.cli(30*time.Second, sub...)
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, h.specs) {
			t.Errorf("a second reconciler on %s: want a non-zero exit naming the directory: %s", h.specs, r)
		}
	}
	if !h.running() {
		t.Fatalf("the first reconciler exited: %v", h.exit)
	}
	time.Sleep(2 * resync)
	assertUntouched(t, h, a, ready, idx)
}

// hasLineWith reports whether one line of text contains every word.
func hasLineWith(text string, words ...string) bool {
	for line := range strings.Lines(text) {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			return true
		}
	}
	return false
}
