package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// Timing of the suite. These are deadlines for polls, not assertions about speed.
const (
	resync        = 2 * time.Second // --resync of every reconciler the suite starts
	specTimeout   = "2m"            // the spec's converge deadline: past it the app is Failed
	phaseDeadline = 3 * time.Minute // how long a poll waits for a phase (longer than specTimeout)
	stopDeadline  = 30 * time.Second
	domainSuffix  = "e2e.test"
	recipeName    = "e2e-echo"
)

// harness is one reconciler setup: its directories, its recipe, and the `reconciler run`
// process, which it can stop and start again.
type harness struct {
	t       testing.TB
	bin     string
	specs   string
	status  string
	recipes string
	backups string
	logPath string
	// tmp is the reconciler's TMPDIR (its recipe exports): empty after every clean exit.
	tmp    string
	recipe recipe

	// docker is the engine the reconciler talks to; nodes, on a swarm of several nodes, are the
	// engines of the other nodes, whose volumes and containers of an app are residue too.
	docker *client.Client
	nodes  []mnNode
	// env and extra are the environment (NAME=value) and flags every start adds.
	env   []string
	extra []string

	proc   *exec.Cmd
	exited chan struct{} // closed when proc has exited; exitErr is then set
	exit   error
	runs   int
}

// newHarness makes the directories and the recipe of a reconciler, without starting it. Its
// cleanups stop the reconciler (after the apps' cleanups, which run first) and print the tail
// of its log when the test failed.
func newHarness(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t, bin: needBinary(t), docker: suite.docker}
	root := t.TempDir()
	h.specs = filepath.Join(root, "specs")
	h.status = filepath.Join(root, "status")
	h.recipes = filepath.Join(root, "recipes")
	h.backups = filepath.Join(root, "backups")
	h.logPath = filepath.Join(root, "reconciler.log")
	h.tmp = filepath.Join(root, "tmp")
	for _, dir := range []string{h.specs, h.status, h.recipes, h.tmp} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if h.recipe, err = makeRecipe(h.recipes, recipeName); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.dumpLog)
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Logf("reconciler: %v", err)
			return
		}
		h.checkTmp()
	})
	return h
}

// checkTmp fails the test if the reconciler, after a clean exit, left anything in its TMPDIR:
// its own exports, or what an earlier run of the test left when it was killed (the next run's
// start sweeps that). It then empties the directory, whose read-only trees t.TempDir's removal
// could not (but as root).
func (h *harness) checkTmp() {
	h.t.Helper()
	entries, err := os.ReadDir(h.tmp)
	if err != nil {
		h.t.Errorf("reconciler's TMPDIR: %v", err)
		return
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
		p := filepath.Join(h.tmp, e.Name())
		_ = filepath.WalkDir(p, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o700)
			}
			return nil
		})
		_ = os.RemoveAll(p)
	}
	if len(left) > 0 {
		h.t.Errorf("the reconciler exited cleanly and left %v in its TMPDIR %s", left, h.tmp)
	}
}

// startHarness is newHarness with the reconciler running.
func startHarness(t testing.TB) *harness {
	t.Helper()
	h := newHarness(t)
	h.start()
	return h
}

// flags are the directory flags every subcommand that reads the spec directory takes.
func (h *harness) flags() []string {
	return []string{
		"--specs", h.specs, "--status", h.status, "--recipes", h.recipes,
		"--domain-suffix", domainSuffix, "--lock-dir", suite.lockDir, "--backups", h.backups,
	}
}

// start runs `reconciler run` with its output appended to the harness's log file.
func (h *harness) start() {
	h.t.Helper()
	h.startWith(nil)
}

// startWith is start with extra environment (NAME=value) and extra flags.
func (h *harness) startWith(env []string, extra ...string) {
	h.t.Helper()
	if h.running() {
		h.t.Fatal("reconciler already running")
	}
	logFile, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	env = append(slices.Clone(h.env), env...)
	extra = append(slices.Clone(h.extra), extra...)
	h.runs++
	fmt.Fprintf(logFile, "=== e2e: reconciler run #%d starting at %s with env %v, flags %v\n", h.runs, time.Now().Format(time.RFC3339Nano), env, extra)
	args := append([]string{"run"}, h.flags()...)
	args = append(args, "--resync", resync.String(), "--log-format", "console")
	cmd := exec.Command(h.bin, append(args, extra...)...)
	cmd.Env = append(os.Environ(), append([]string{"TMPDIR=" + h.tmp}, env...)...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		h.t.Fatalf("start reconciler: %v", err)
	}
	h.proc = cmd
	h.exited = make(chan struct{})
	exited := h.exited
	go func() {
		h.exit = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
}

// running reports whether the reconciler process is alive.
func (h *harness) running() bool {
	if h.proc == nil {
		return false
	}
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for the reconciler to exit; it returns the exit error (nil for
// a clean exit 0). A reconciler that ignores SIGTERM is killed and reported.
func (h *harness) stop() error {
	if h.proc == nil {
		return nil
	}
	if !h.running() {
		return fmt.Errorf("had already exited: %v", h.exit)
	}
	if err := h.proc.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-h.exited:
		return h.exit
	case <-time.After(stopDeadline):
		h.proc.Process.Kill()
		<-h.exited
		return fmt.Errorf("did not exit within %s of SIGTERM; killed", stopDeadline)
	}
}

// kill ends the reconciler with SIGKILL, as a crash would.
func (h *harness) kill() {
	h.t.Helper()
	if !h.running() {
		h.t.Fatalf("reconciler not running: %v", h.exit)
	}
	if err := h.proc.Process.Kill(); err != nil {
		h.t.Fatal(err)
	}
	<-h.exited
}

// dumpLog prints the tail of the reconciler log when the test failed (or E2E_KEEP_LOGS is set).
func (h *harness) dumpLog() {
	if !h.t.Failed() && os.Getenv("E2E_KEEP_LOGS") == "" {
		return
	}
	b, err := os.ReadFile(h.logPath)
	if err != nil {
		h.t.Logf("reconciler log: %v", err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	const tail = 120
	if len(lines) > tail {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-tail)}, lines[len(lines)-tail:]...)
	}
	h.t.Logf("reconciler log %s (tail):\n%s", h.logPath, strings.Join(lines, "\n"))
}

// generation is the spec generation of DESIGN.md: sha256: + hex of the file's bytes.
func generation(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// specPath is where app's spec lives.
func (h *harness) specPath(app string) string { return filepath.Join(h.specs, app+".yml") }

// writeSpec places app's spec atomically (a dot-file the reconciler ignores, renamed into
// place) and returns its generation.
func (h *harness) writeSpec(app string, body []byte) string {
	h.t.Helper()
	f, err := os.CreateTemp(h.specs, "."+app+"-*.tmp")
	if err != nil {
		h.t.Fatal(err)
	}
	_, err = f.Write(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), h.specPath(app))
	}
	if err != nil {
		os.Remove(f.Name())
		h.t.Fatalf("write spec %s: %v", app, err)
	}
	return generation(body)
}

// deleteSpec removes app's spec.
func (h *harness) deleteSpec(app string) {
	h.t.Helper()
	if err := os.Remove(h.specPath(app)); err != nil {
		h.t.Fatalf("delete spec %s: %v", app, err)
	}
}

// appStatus is the part of the status file (DESIGN.md) the suite reads.
type appStatus struct {
	App                string `json:"app"`
	ObservedGeneration string `json:"observedGeneration"`
	Phase              string `json:"phase"`
	Message            string `json:"message"`
	Stack              string `json:"stack"`
	Deploys            int    `json:"deploys"`
	Services           []struct {
		Name    string `json:"name"`
		Running int    `json:"running"`
		Desired int    `json:"desired"`
	} `json:"services"`
	Removed []string `json:"removed"`

	raw []byte
}

func (s appStatus) String() string {
	if s.raw == nil {
		return "(no status file)"
	}
	var indented bytes.Buffer
	if json.Indent(&indented, s.raw, "", "  ") != nil {
		return string(s.raw)
	}
	return indented.String()
}

// statusPath is where the reconciler writes app's status.
func (h *harness) statusPath(app string) string { return filepath.Join(h.status, app+".json") }

// readStatus reads app's status file; found is false when there is none yet.
func (h *harness) readStatus(app string) (s appStatus, found bool, err error) {
	b, err := os.ReadFile(h.statusPath(app))
	if errors.Is(err, os.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, true, fmt.Errorf("status file %s is not JSON: %w\n%s", h.statusPath(app), err, b)
	}
	s.raw = b
	if s.App != app {
		return s, true, fmt.Errorf("status file %s names app %q", h.statusPath(app), s.App)
	}
	return s, true, nil
}

// finalPhases are final for a generation (DESIGN.md).
var finalPhases = []string{"Failed", "Invalid", "Deleted", "Expired"}

// awaitStatus polls app's status every 50ms until done accepts it, for at most
// phaseDeadline. done returns a non-empty verdict to stop polling with a failure. The error
// includes the last status seen. It also gives up when the reconciler has exited.
func (h *harness) awaitStatus(app, what string, done func(appStatus) (ok bool, failure string)) (appStatus, error) {
	deadline := time.Now().Add(phaseDeadline)
	var last appStatus
	var lastErr error
	for {
		s, found, err := h.readStatus(app)
		switch {
		case err != nil:
			lastErr = err
		case found:
			last, lastErr = s, nil
			ok, failure := done(s)
			if ok {
				return s, nil
			}
			if failure != "" {
				return s, fmt.Errorf("app %s: waiting for %s: %s; status:\n%s", app, what, failure, s)
			}
		}
		if h.proc != nil && !h.running() {
			return last, fmt.Errorf("app %s: waiting for %s: the reconciler exited (%v); last status:\n%s", app, what, h.exit, last)
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("app %s: %s not reached within %s (last read error: %v); last status:\n%s", app, what, phaseDeadline, lastErr, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitPhase waits until app's status describes generation gen with one of the phases want,
// and fails the test if it does not, or if it reaches another final phase for gen.
func (h *harness) waitPhase(app, gen string, want ...string) appStatus {
	h.t.Helper()
	s, err := h.awaitStatus(app, fmt.Sprintf("generation %s in phase %s", gen, strings.Join(want, "|")), func(s appStatus) (bool, string) {
		if s.ObservedGeneration != gen {
			return false, ""
		}
		if slices.Contains(want, s.Phase) {
			return true, ""
		}
		if slices.Contains(finalPhases, s.Phase) {
			return false, "reached final phase " + s.Phase
		}
		return false, ""
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// waitDeleted waits until app's status says Deleted (its spec is gone, so there is no
// generation to match).
func (h *harness) waitDeleted(app string) (appStatus, error) {
	return h.awaitStatus(app, "phase Deleted", func(s appStatus) (bool, string) {
		return s.Phase == "Deleted", ""
	})
}

// residue lists what the swarm still holds for app.
func (h *harness) residue(app string) []string {
	h.t.Helper()
	left, err := h.leftOf(context.Background(), app)
	if err != nil {
		h.t.Fatalf("list objects of app %s: %v", app, err)
	}
	return left
}

// residueAfterTeardown is residue once the engines' agents had their moment: a task's stopped
// container goes a moment after the managers reaped the task (what a teardown waits for when
// no volume of the app is in it: README, "On a swarm of several nodes"), so stopped containers
// are looked at again for up to 10 s. Anything else, or a container that stays, is residue.
func (h *harness) residueAfterTeardown(app string) []string {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := h.residue(app)
		stopped := !slices.ContainsFunc(left, func(o string) bool {
			return !strings.Contains(o, "container ") || strings.Contains(o, "(running)")
		})
		if len(left) == 0 || !stopped || time.Now().After(deadline) {
			return left
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// assertNoResidue fails the test naming every object still labelled for app.
func (h *harness) assertNoResidue(app string) {
	h.t.Helper()
	if left := h.residueAfterTeardown(app); len(left) > 0 {
		h.t.Errorf("app %s: %d objects left labelled %s=%s: %s", app, len(left), appLabel, app, strings.Join(left, ", "))
	}
}

// indexes returns the Version.Index of each of app's services, failing when it has none.
func (h *harness) indexes(app string) map[string]uint64 {
	h.t.Helper()
	idx, err := serviceIndexes(context.Background(), h.docker, app)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(idx) == 0 {
		h.t.Fatalf("app %s has no service labelled %s=%s", app, appLabel, app)
	}
	return idx
}

// testApp is one app of a test: a unique name and its own host port.
type testApp struct {
	h    *harness
	name string
	port int
}

// newApp names a unique app (prefix plus a random suffix) and gives it a free port. Its
// cleanup deletes the spec, waits for Deleted (starting the reconciler if a test stopped it),
// and removes whatever is still labelled with the app as a last resort, failing the test when
// anything had to be removed by force.
func (h *harness) newApp(prefix string) *testApp {
	h.t.Helper()
	port, err := freePort()
	if err != nil {
		h.t.Fatal(err)
	}
	a := &testApp{h: h, name: prefix + "-" + randomSuffix(), port: port}
	h.t.Cleanup(func() { h.cleanupApp(a.name) })
	return a
}

func (h *harness) cleanupApp(app string) {
	t := h.t
	if err := os.Remove(h.specPath(app)); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cleanup %s: %v", app, err)
	}
	if _, found, _ := h.readStatus(app); found {
		if !h.running() {
			h.start()
		}
		if s, err := h.waitDeleted(app); err != nil {
			t.Errorf("cleanup: %v", err)
		} else if s.Phase != "Deleted" {
			t.Errorf("cleanup: app %s ended %s", app, s.Phase)
		}
	}
	ctx := context.Background()
	left := h.residueAfterTeardown(app)
	if len(left) > 0 {
		t.Errorf("cleanup: app %s: removing by force what the reconciler left: %s", app, strings.Join(left, ", "))
		if err := removeLabelled(ctx, h.docker, appLabel, app); err != nil {
			t.Errorf("cleanup %s: forced removal: %v", app, err)
		}
		for _, node := range h.nodes {
			if err := removeVolumes(ctx, node.docker, filters.NewArgs(filters.Arg("label", appLabel+"="+app))); err != nil {
				t.Errorf("cleanup %s: forced removal on another node: %v", app, err)
			}
		}
	}
}

// leftOf lists what the swarm still holds for app: the objects the engine lists, and the
// volumes and containers on the other nodes, named with their node.
func (h *harness) leftOf(ctx context.Context, app string) ([]string, error) {
	left, err := labelled(ctx, h.docker, appLabel, app)
	errs := []error{err}
	cs, err := appContainers(ctx, h.docker, app)
	left, errs = append(left, cs...), append(errs, err)
	for _, node := range h.nodes {
		on, err := nodeLeft(ctx, node.docker, app)
		errs = append(errs, err)
		for _, o := range on {
			left = append(left, o+" on "+node.name)
		}
	}
	return left, errors.Join(errs...)
}

// spec is the app's spec file for version of the harness's recipe, with extra YAML lines (a
// "timeout:" line replaces the default converge deadline).
func (a *testApp) spec(version string, extra ...string) []byte {
	return a.specOf(a.h.recipe.Name, version, extra...)
}

// specOf is spec for version of another recipe than the harness's.
func (a *testApp) specOf(recipe, version string, extra ...string) []byte {
	timeout := "timeout: " + specTimeout + "\n"
	for _, line := range extra {
		if strings.HasPrefix(line, "timeout:") {
			timeout = ""
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "recipe: %s\nversion: %q\n%senv:\n  PORT: %q\n", recipe, version, timeout, fmt.Sprint(a.port))
	for _, line := range extra {
		b.WriteString(line + "\n")
	}
	return []byte(b.String())
}

// deploy writes the spec for version and waits until it is Ready.
func (a *testApp) deploy(version string) appStatus {
	a.h.t.Helper()
	return a.h.waitPhase(a.name, a.h.writeSpec(a.name, a.spec(version)), "Ready")
}

// stack is the app's stack name per DESIGN.md: the default domain with dots as underscores.
func (a *testApp) stack() string {
	return strings.ReplaceAll(a.name+"."+domainSuffix, ".", "_")
}

// randomSuffix is six hex digits, enough to keep app names of one machine apart.
func randomSuffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// sortedKeys is for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
