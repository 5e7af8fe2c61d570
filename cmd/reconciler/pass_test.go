package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarm-reconciler/reconciler/spec"
)

// TestPassVerdict: once and janitor print one line per app and exit 1 naming the apps not
// settled by the timeout (with their last phase and message) and the Failed or Invalid ones.
func TestPassVerdict(t *testing.T) {
	dir := t.TempDir()
	for app, phase := range map[string]spec.Phase{"ok": spec.PhaseReady, "deg": spec.PhaseDegraded, "bad": spec.PhaseFailed,
		"slow": spec.PhaseDeploying, "stale": spec.PhaseFailed, "kept": spec.PhaseDeleting} {
		st := &spec.Status{App: app, Phase: phase, Message: app + " says\nwhy"}
		if err := spec.WriteStatus(dir, st); err != nil {
			t.Fatal(err)
		}
	}

	var out bytes.Buffer
	if err := passVerdict(&out, dir, []string{"deg", "ok"}, nil, time.Minute); err != nil {
		t.Errorf("Ready and Degraded: %v", err)
	}
	if got := out.String(); got != "deg\tDegraded\tdeg says\nwhy\nok\tReady\tok says\nwhy\n" {
		t.Errorf("printed %q", got)
	}

	out.Reset()
	err := passVerdict(&out, dir, []string{"bad", "kept", "new", "ok", "slow", "stale"}, []string{"new", "slow", "stale"}, 10*time.Minute)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("err = %v, want exit 1", err)
	}
	for _, want := range []string{
		"timed out after 10m0s: 3 apps not settled: new (no status); slow (Deploying: slow says why); stale (Failed: stale says why)",
		"1 apps Failed or Invalid: [bad]",                         // stale's Failed is not this pass's verdict
		"1 apps not torn down by this pass: kept (kept says why)", // what the janitor leaves, saying how to remove it
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestLoopFlags: run, once and janitor take --reconcile-timeout (default 2m); once and janitor
// take --timeout (default 10m), as do wait, apply and delete (backup and restore: 30m); -v and --v set the log verbosity, and --version still works.
func TestLoopFlags(t *testing.T) {
	o := &options{}
	root := newRoot(o)
	find := func(name string) *cobra.Command {
		c, _, err := root.Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, name := range []string{"run", "once", "janitor"} {
		if f := find(name).Flags().Lookup("reconcile-timeout"); f == nil || f.DefValue != "2m0s" {
			t.Errorf("%s --reconcile-timeout: %+v", name, f)
		}
	}
	for _, name := range []string{"once", "janitor"} {
		if f := find(name).Flags().Lookup("timeout"); f == nil || f.DefValue != "10m0s" {
			t.Errorf("%s --timeout: %+v", name, f)
		}
	}
	if f := find("run").Flags().Lookup("timeout"); f != nil {
		t.Errorf("run has a --timeout")
	}
	// once and janitor took --metrics-addr and served nothing on it: only run has it.
	if find("run").Flags().Lookup("metrics-addr") == nil {
		t.Errorf("run has no --metrics-addr")
	}
	for _, name := range []string{"once", "janitor"} {
		if f := find(name).Flags().Lookup("metrics-addr"); f != nil {
			t.Errorf("%s takes --metrics-addr and serves nothing on it", name)
		}
	}
	// The waits' --timeout: each command waits its own default when none is given (they
	// shared one variable, which held the default of the last registered: 30m for all).
	for name, want := range map[string]string{"wait": "10m0s", "apply": "10m0s", "delete": "10m0s", "backup": "30m0s", "restore": "30m0s"} {
		if f := find(name).Flags().Lookup("timeout"); f == nil || f.DefValue != want || f.Value.String() != want {
			t.Errorf("%s --timeout: %+v; want %s, documented and used", name, f, want)
		}
	}

	for _, args := range [][]string{{"-v", "2", "version"}, {"--v", "2", "version"}, {"version", "--v=2"}, {"version", "-v2"}} {
		o := &options{}
		root := newRoot(o)
		root.SetOut(&bytes.Buffer{})
		root.SetArgs(args)
		if err := root.Execute(); err != nil || o.verbosity != 2 {
			t.Errorf("%v: verbosity %d, %v", args, o.verbosity, err)
		}
	}
	t.Setenv("RECONCILER_V", "1")
	o = &options{}
	root = newRoot(o)
	root.SetOut(&bytes.Buffer{})
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil || o.verbosity != 1 {
		t.Errorf("RECONCILER_V=1: verbosity %d, %v", o.verbosity, err)
	}
}

// TestLoggerVerbosity: -v N shows logr's V(n) lines for n <= N, in both formats.
func TestLoggerVerbosity(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		for v := range 3 {
			log, err := newLogger(format, v)
			if err != nil {
				t.Fatal(err)
			}
			if !log.V(v).Enabled() || log.V(v+1).Enabled() {
				t.Errorf("%s -v %d: V(%d) enabled %v, V(%d) enabled %v", format, v, v, log.V(v).Enabled(), v+1, log.V(v+1).Enabled())
			}
		}
	}
	if _, err := newLogger("json", -1); err == nil {
		t.Errorf("-v -1 accepted")
	}
}

// TestStatusDirIsNotTheSpecDir: once (and run: both wire) refuses a status directory that is
// the spec directory (a status file would read as a second spec of its app), however it is spelled.
func TestStatusDirIsNotTheSpecDir(t *testing.T) {
	dir := t.TempDir()
	specs := filepath.Join(dir, "specs")
	if err := os.Mkdir(specs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(specs, filepath.Join(dir, "alias")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/reconciler-test.sock")
	root := newRoot(&options{})
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"once", "--timeout", "2s", "--specs", specs, "--status", filepath.Join(dir, "alias") + "/", "--recipes", dir, "--lock-dir", filepath.Join(dir, "locks")})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "is the spec directory") {
		t.Errorf("once: %v; want the status directory refused", err)
	}
}

// TestStartCleansInterruptedWrites: a reconciler starting removes the temporary files that a
// killed process left in the status and spec directories.
func TestStartCleansInterruptedWrites(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/reconciler-test.sock")
	dir := t.TempDir()
	specs, status := filepath.Join(dir, "specs"), filepath.Join(dir, "status")
	old := time.Now().Add(-time.Hour)
	var left []string
	for _, p := range []string{filepath.Join(specs, ".a.123.tmp"), filepath.Join(status, ".a.json.456.tmp")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		left = append(left, p)
	}
	root := newRoot(&options{})
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"once", "--timeout", "1s", "--specs", specs, "--status", status, "--recipes", dir, "--lock-dir", filepath.Join(dir, "locks")})
	_ = root.Execute() // no engine: what matters is what it did at start
	for _, p := range left {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v; want it removed", p, err)
		}
	}
}
