package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests in this file check the recovery promises of DESIGN.md ("Teardown and the janitor",
// "Locks", "Bad input"; issue 3): an orphan whose app lock another process holds is left
// alone until the lock is released; a reconciler SIGKILLed after any step of an install, an
// upgrade or a teardown loses nothing once restarted; a ttl reaps an app for good; and 30 apps
// created and deleted at once survive a restart of the reconciler in the middle of each phase.
//
// Test names match 'Recovery|Kill|TTL|Thirty|HeldLock'.

// faultKillEnv is the product's fault-injection switch: `reconciler run` SIGKILLs itself
// right after its Nth change to the swarm.
const faultKillEnv = "RECONCILER_FAULT_KILL_AFTER_STEPS"

// recStart runs `reconciler run` like harness.start, with extra environment and a metrics
// address, and returns the metrics port (for /readyz and /metrics).
func (h *harness) recStart(env ...string) int {
	h.t.Helper()
	port, err := freePort()
	if err != nil {
		h.t.Fatal(err)
	}
	h.startWith(env, "--metrics-addr", "127.0.0.1:"+strconv.Itoa(port))
	return port
}

// recAwaitReadyz waits until the reconciler's /readyz answers 200: the engine answers, the
// event stream is connected and the initial sweep is done (every app it found was reconciled
// once). It fails the test if the reconciler exits first.
func (h *harness) recAwaitReadyz(port int) {
	h.t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	err := poll(context.Background(), phaseDeadline, func() (bool, error) {
		if !h.running() {
			return false, fmt.Errorf("the reconciler exited: %v", h.exit)
		}
		resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/readyz")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("/readyz answered %s", resp.Status)
	})
	if err != nil {
		h.t.Fatalf("reconciler never ready: %v", err)
	}
}

// recReconciles is the reconciler's swarm_reconciler_reconciles_total summed over results.
func recReconciles(port int) (float64, error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "swarm_reconciler_reconciles_total") {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// recLogSize is the current length of the reconciler log: an offset for recLogSince.
func (h *harness) recLogSize() int64 {
	h.t.Helper()
	fi, err := os.Stat(h.logPath)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return fi.Size()
}

// recLogSince returns the log lines written after offset.
func (h *harness) recLogSince(offset int64) []string {
	h.t.Helper()
	f, err := os.Open(h.logPath)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		h.t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		h.t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// recStepLine matches the log line of one change to the swarm: the controller logs "applied"
// after each create/update of a deploy and "removed" after each removal of a teardown.
var recStepLine = regexp.MustCompile(`\t(applied|removed)\t`)

// recUncounted matches the steps the fault injection does not count (see faultKillEnv in
// cmd/reconciler): a stopped task container's removal races swarm's reaper, so one run has it
// and the next does not.
var recUncounted = regexp.MustCompile(`"action": "remove container"`)

// recCounted returns the steps the fault injection counts.
func recCounted(steps []string) []string {
	return slices.DeleteFunc(steps, recUncounted.MatchString)
}

// recSteps returns the step lines (see recStepLine) about app logged after offset.
func (h *harness) recSteps(offset int64, app string) []string {
	h.t.Helper()
	var steps []string
	for _, line := range h.recLogSince(offset) {
		if recStepLine.MatchString(line) && strings.Contains(line, `"`+app+`"`) {
			steps = append(steps, line)
		}
	}
	return steps
}

// recAllSteps returns every step line logged after offset, whatever the app.
func (h *harness) recAllSteps(offset int64) []string {
	h.t.Helper()
	var steps []string
	for _, line := range h.recLogSince(offset) {
		if recStepLine.MatchString(line) {
			steps = append(steps, line)
		}
	}
	return steps
}

// recObjects lists what the swarm holds for app as "kind name" (containers left out: their
// number depends on restarts), with the app's stack name replaced by "<stack>" so two apps'
// lists compare. A name listed twice is a duplicate object.
func (a *testApp) recObjects(t testing.TB) []string {
	t.Helper()
	all, err := labelled(context.Background(), suite.docker, appLabel, a.name)
	if err != nil {
		t.Fatalf("list objects of app %s: %v", a.name, err)
	}
	var objects []string
	for _, o := range withoutContainers(all) {
		objects = append(objects, strings.ReplaceAll(o, a.stack(), "<stack>"))
	}
	return objects
}

// recDuplicates returns the entries of a sorted list that appear more than once.
func recDuplicates(objects []string) []string {
	var dups []string
	for i := 1; i < len(objects); i++ {
		if objects[i] == objects[i-1] && !slices.Contains(dups, objects[i]) {
			dups = append(dups, objects[i])
		}
	}
	return dups
}

// recKilled starts the reconciler with the fault injection set to kill it after its nth
// change to the swarm, waits for its initial sweep to finish and checks that it made
// wantBefore changes by then, runs op (the operation to interrupt), and waits for the
// reconciler to SIGKILL itself. It returns the log line naming the step it died after.
func (h *harness) recKilled(n, wantBefore int, op func()) string {
	h.t.Helper()
	offset := h.recLogSize()
	port := h.recStart(faultKillEnv + "=" + strconv.Itoa(n))
	h.recAwaitReadyz(port)
	if before := recCounted(h.recAllSteps(offset)); len(before) != wantBefore {
		h.t.Fatalf("the restarted reconciler made %d changes before the operation, want %d (as in the clean run):\n%s",
			len(before), wantBefore, strings.Join(before, "\n"))
	}
	op()
	select {
	case <-h.exited:
	case <-time.After(phaseDeadline):
		h.kill()
		h.t.Fatalf("the reconciler did not kill itself after step %d within %s", n, phaseDeadline)
	}
	if h.exit == nil || !strings.Contains(h.exit.Error(), "killed") {
		h.t.Fatalf("the reconciler with %s=%d exited with %v, want killed by SIGKILL", faultKillEnv, n, h.exit)
	}
	for _, line := range h.recLogSince(offset) {
		if strings.Contains(line, "fault injection: SIGKILL") {
			if !strings.Contains(line, `"step": `+strconv.Itoa(n)+",") {
				h.t.Fatalf("fault injection at another step than %d: %s", n, line)
			}
			return line
		}
	}
	h.t.Fatalf("the reconciler exited (%v) without logging the fault injection", h.exit)
	return ""
}

// recReference is what a clean run of install, upgrade and teardown does to one app: the
// step lines of each operation, the objects the app has after each, its deploy counts, and
// how many changes a restarted reconciler makes before the operation (none, for an unchanged
// app).
type recReference struct {
	from, to string

	installSteps, upgradeSteps, teardownSteps    []string
	installObjects, upgradeObjects               []string
	installDeploys, upgradeDeploys               int
	beforeInstall, beforeUpgrade, beforeTeardown int
}

var recRef struct {
	once sync.Once
	ref  *recReference
}

// recCleanRun measures the clean run once per test binary and shares it: each operation's
// steps are counted from the log rather than hard-coded. The first test to ask runs it (and
// fails if it fails); later ones fail too, saying so.
func recCleanRun(t *testing.T) *recReference {
	t.Helper()
	recRef.once.Do(func() { recRef.ref = recMeasure(t) })
	if recRef.ref == nil {
		t.Fatal("the clean reference run of install, upgrade and teardown failed (see the first test that ran it)")
	}
	return recRef.ref
}

func recMeasure(t *testing.T) *recReference {
	t.Helper()
	h := newHarness(t)
	a := h.newApp("e2e-ref")
	ref := &recReference{from: h.recipe.first().Version, to: h.recipe.latest().Version}

	// Install, with a reconciler started before the spec exists.
	offset := h.recLogSize()
	h.recAwaitReadyz(h.recStart())
	ref.beforeInstall = len(recCounted(h.recAllSteps(offset)))
	s := a.deploy(ref.from)
	ref.installSteps = recCounted(h.recSteps(offset, a.name))
	ref.installDeploys = s.Deploys
	ref.installObjects = a.recObjects(t)
	a.appService(t)

	// Upgrade, by a reconciler restarted on the installed app.
	if err := h.stop(); err != nil {
		t.Fatalf("reconciler on SIGTERM: %v", err)
	}
	offset = h.recLogSize()
	h.recAwaitReadyz(h.recStart())
	ref.beforeUpgrade = len(recCounted(h.recAllSteps(offset)))
	s = a.deploy(ref.to)
	ref.upgradeSteps = recCounted(h.recSteps(offset, a.name))[ref.beforeUpgrade:]
	ref.upgradeDeploys = s.Deploys
	ref.upgradeObjects = a.recObjects(t)
	a.appService(t)
	a.checkAnswers(t, ref.to)

	// Teardown, by a reconciler restarted on the upgraded app.
	if err := h.stop(); err != nil {
		t.Fatalf("reconciler on SIGTERM: %v", err)
	}
	offset = h.recLogSize()
	h.recAwaitReadyz(h.recStart())
	ref.beforeTeardown = len(recCounted(h.recAllSteps(offset)))
	h.deleteSpec(a.name)
	if _, err := h.waitDeleted(a.name); err != nil {
		t.Fatal(err)
	}
	ref.teardownSteps = recCounted(h.recSteps(offset, a.name))[ref.beforeTeardown:]
	h.assertNoResidue(a.name)

	t.Logf("clean run: install %s: %d steps, deploys %d, objects %v:\n%s", ref.from, len(ref.installSteps), ref.installDeploys, ref.installObjects, strings.Join(ref.installSteps, "\n"))
	t.Logf("clean run: upgrade to %s: %d steps, deploys %d, objects %v:\n%s", ref.to, len(ref.upgradeSteps), ref.upgradeDeploys, ref.upgradeObjects, strings.Join(ref.upgradeSteps, "\n"))
	t.Logf("clean run: teardown: %d steps:\n%s", len(ref.teardownSteps), strings.Join(ref.teardownSteps, "\n"))
	t.Logf("clean run: changes by a restarted reconciler before each operation: install %d, upgrade %d, teardown %d", ref.beforeInstall, ref.beforeUpgrade, ref.beforeTeardown)

	switch {
	case len(ref.installSteps) == 0 || len(ref.upgradeSteps) == 0 || len(ref.teardownSteps) == 0:
		t.Fatal("an operation of the clean run logged no step: the log format changed?")
	case ref.installDeploys != 1 || ref.upgradeDeploys != 2:
		t.Fatalf("clean run: deploys %d after the install and %d after the upgrade, want 1 and 2", ref.installDeploys, ref.upgradeDeploys)
	case len(recDuplicates(ref.installObjects)) > 0 || len(recDuplicates(ref.upgradeObjects)) > 0:
		t.Fatalf("clean run: duplicate objects: %v %v", recDuplicates(ref.installObjects), recDuplicates(ref.upgradeObjects))
	}
	if t.Failed() {
		t.FailNow()
	}
	return ref
}

// recCheckReady checks an app that recovered: exactly the service <stack>_app, the same
// objects as the clean run (so no duplicate network, config, secret or volume), deploys
// counted once per generation, and the app answers as version.
func recCheckReady(t *testing.T, a *testApp, s appStatus, version string, wantObjects []string, wantDeploys int) {
	t.Helper()
	svc := a.appService(t)
	objects := a.recObjects(t)
	if dups := recDuplicates(objects); len(dups) > 0 {
		t.Errorf("app %s: duplicate objects %v; has %v", a.name, dups, objects)
	}
	if !slices.Equal(objects, wantObjects) {
		t.Errorf("app %s: objects %v, want those of the clean run %v", a.name, objects, wantObjects)
	}
	if s.Deploys != wantDeploys {
		t.Errorf("app %s: deploys = %d, want %d as in the clean run; status:\n%s", a.name, s.Deploys, wantDeploys, s)
	}
	if got := svc.Spec.Labels["coop-cloud."+a.stack()+".version"]; got != version {
		t.Errorf("service %s: version label %q, want %q", svc.Spec.Name, got, version)
	}
	a.checkAnswers(t, version)
}

// TestKillAtEveryInstallStep: a reconciler SIGKILLed right after each step of an install in
// turn, then started again, ends with the app Ready, deployed once, with exactly the objects
// of a clean install; the app's teardown then leaves nothing.
func TestKillAtEveryInstallStep(t *testing.T) {
	ref := recCleanRun(t)
	for k := 1; k <= len(ref.installSteps); k++ {
		t.Run(fmt.Sprintf("step%d", k), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			a := h.newApp(fmt.Sprintf("e2e-kill-i%d", k))
			var gen string
			died := h.recKilled(ref.beforeInstall+k, ref.beforeInstall, func() {
				gen = h.writeSpec(a.name, a.spec(ref.from))
			})
			t.Logf("killed: %s", died)
			h.start()
			s := h.waitPhase(a.name, gen, "Ready")
			recCheckReady(t, a, s, ref.from, ref.installObjects, ref.installDeploys)

			h.deleteSpec(a.name)
			if _, err := h.waitDeleted(a.name); err != nil {
				t.Fatal(err)
			}
			h.assertNoResidue(a.name)
		})
	}
}

// TestKillAtEveryUpgradeStep: a reconciler SIGKILLed right after each step of an in-place
// upgrade (a version change) in turn, then started again, ends with the app Ready at the new
// version, deployed once per generation, with exactly the objects of a clean upgrade.
func TestKillAtEveryUpgradeStep(t *testing.T) {
	ref := recCleanRun(t)
	for k := 1; k <= len(ref.upgradeSteps); k++ {
		t.Run(fmt.Sprintf("step%d", k), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			a := h.newApp(fmt.Sprintf("e2e-kill-u%d", k))
			h.start()
			a.deploy(ref.from)
			if err := h.stop(); err != nil {
				t.Fatalf("reconciler on SIGTERM: %v", err)
			}
			var gen string
			died := h.recKilled(ref.beforeUpgrade+k, ref.beforeUpgrade, func() {
				gen = h.writeSpec(a.name, a.spec(ref.to))
			})
			t.Logf("killed: %s", died)
			h.start()
			s := h.waitPhase(a.name, gen, "Ready")
			recCheckReady(t, a, s, ref.to, ref.upgradeObjects, ref.upgradeDeploys)

			h.deleteSpec(a.name)
			if _, err := h.waitDeleted(a.name); err != nil {
				t.Fatal(err)
			}
			h.assertNoResidue(a.name)
		})
	}
}

// TestKillAtEveryTeardownStep: a reconciler SIGKILLed right after each step of a teardown (its
// spec deleted) in turn, then started again, finishes it: Deleted, nothing left.
func TestKillAtEveryTeardownStep(t *testing.T) {
	ref := recCleanRun(t)
	for k := 1; k <= len(ref.teardownSteps); k++ {
		t.Run(fmt.Sprintf("step%d", k), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			a := h.newApp(fmt.Sprintf("e2e-kill-t%d", k))
			h.start()
			a.deploy(ref.to)
			if err := h.stop(); err != nil {
				t.Fatalf("reconciler on SIGTERM: %v", err)
			}
			died := h.recKilled(ref.beforeTeardown+k, ref.beforeTeardown, func() { h.deleteSpec(a.name) })
			t.Logf("killed: %s", died)
			h.start()
			s, err := h.waitDeleted(a.name)
			if err != nil {
				t.Fatal(err)
			}
			h.assertNoResidue(a.name)
			t.Logf("Deleted: %s", s.Message)
		})
	}
}

// recHoldLock takes the app lock of domain in --lock-dir from the test process (another
// process than the reconciler), the way DESIGN.md says: open, flock, and check that the
// locked file is still the one at the path (retry if not). Releasing is closing the file.
func recHoldLock(t *testing.T, domain string) *os.File {
	t.Helper()
	path := filepath.Join(suite.lockDir, "app-"+domain+".lock")
	var held *os.File
	err := poll(context.Background(), time.Minute, func() (bool, error) {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return false, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			return false, fmt.Errorf("flock %s: %w", path, err)
		}
		var byFd, byPath unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &byFd); err != nil {
			f.Close()
			return false, err
		}
		if err := unix.Stat(path, &byPath); err != nil || byPath.Ino != byFd.Ino || byPath.Dev != byFd.Dev {
			f.Close() // unlinked or replaced meanwhile: lock the live file
			return false, fmt.Errorf("lockfile %s replaced while locking it", path)
		}
		held = f
		return true, nil
	})
	if err != nil {
		t.Fatalf("hold app lock: %v", err)
	}
	t.Cleanup(func() { held.Close() })
	return held
}

// TestHeldLockOrphanSurvivesSweeps: an orphan (its spec deleted while the reconciler was
// down) whose app lock another live process holds is left alone by the sweep at start-up and
// by the sweeps of several resyncs; once the lock is released, the next sweep reaps it to
// zero residual and unlinks its lockfile.
func TestHeldLockOrphanSurvivesSweeps(t *testing.T) {
	h := startHarness(t)
	a := h.newApp("e2e-heldlock")
	a.deploy(h.recipe.first().Version)
	idx := h.indexes(a.name)
	objects := a.recObjects(t)
	if err := h.stop(); err != nil {
		t.Errorf("reconciler on SIGTERM: %v", err)
	}

	domain := a.name + "." + domainSuffix
	lock := recHoldLock(t, domain)
	h.deleteSpec(a.name)
	offset := h.recLogSize()
	port := h.recStart()
	h.recAwaitReadyz(port) // the sweep at start-up is done
	r0, err := recReconciles(port)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * resync) // several resyncs, each with its sweep
	r1, err := recReconciles(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reconciles while the lock was held, after the initial sweep: %v", r1-r0)
	if r1-r0 < 2 {
		t.Errorf("%v reconciles in %s of resyncs: the sweeps did not look at the orphan, so leaving it alone proves nothing", r1-r0, 4*resync)
	}

	if !h.running() {
		t.Fatalf("the reconciler exited: %v", h.exit)
	}
	if got := a.recObjects(t); !slices.Equal(got, objects) {
		t.Errorf("orphan with a held lock changed: objects %v, were %v", got, objects)
	}
	if got := h.indexes(a.name); !maps.Equal(got, idx) {
		t.Errorf("orphan with a held lock: service Version.Index moved %v -> %v", idx, got)
	}
	if steps := h.recSteps(offset, a.name); len(steps) > 0 {
		t.Errorf("the reconciler changed the orphan whose lock is held:\n%s", strings.Join(steps, "\n"))
	}
	if s, _, err := h.readStatus(a.name); err != nil {
		t.Error(err)
	} else if s.Phase == "Deleting" || s.Phase == "Deleted" {
		t.Errorf("orphan with a held lock reported %s; status:\n%s", s.Phase, s)
	}

	if err := lock.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := h.waitDeleted(a.name)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reaped after release: %s", s.Message)
	h.assertNoResidue(a.name)
	lockPath := filepath.Join(suite.lockDir, "app-"+domain+".lock")
	if err := poll(context.Background(), 30*time.Second, func() (bool, error) {
		_, err := os.Stat(lockPath)
		return errors.Is(err, os.ErrNotExist), err
	}); err != nil {
		t.Errorf("lockfile %s of the reaped orphan still there: %v", lockPath, err)
	}
}

// TestTTLExpiresAndStaysDown: a spec with ttl 10s is reaped 10s after its first deploy to
// phase Expired with nothing left, stays so across resyncs (no deploy), and comes back Ready
// once the spec's content changes.
func TestTTLExpiresAndStaysDown(t *testing.T) {
	h := newHarness(t)
	port := h.recStart()
	h.recAwaitReadyz(port)
	a := h.newApp("e2e-ttl")
	version := h.recipe.first().Version

	gen := h.writeSpec(a.name, a.spec(version, "ttl: 10s"))
	// Expired is waited for directly: the ttl counts from the first deploy, so on a loaded
	// node Ready may last only a moment. The history says the app was Ready before.
	s := h.waitPhase(a.name, gen, "Expired")
	t.Logf("Expired: %s", s.Message)
	if _, ok := rolloutFull(t, s).historyTime("Ready"); !ok {
		t.Errorf("the app expired without having been Ready; status:\n%s", s)
	}
	reapedAtTTL(t, s, 10*time.Second)
	h.assertNoResidue(a.name)

	// Several resyncs, then a restarted reconciler (whose start-up pass looks at every app
	// with a spec) and more resyncs: the app stays Expired and nothing is created for it.
	offset := h.recLogSize()
	stayedExpired := func(when string) {
		t.Helper()
		time.Sleep(4 * resync)
		if after, _, err := h.readStatus(a.name); err != nil {
			t.Error(err)
		} else if after.Phase != "Expired" || after.ObservedGeneration != gen || after.Deploys != s.Deploys {
			t.Errorf("expired app did not stay Expired %s (deploys %d then); status:\n%s", when, s.Deploys, after)
		}
		h.assertNoResidue(a.name)
		if steps := h.recSteps(offset, a.name); len(steps) > 0 {
			t.Errorf("the reconciler changed the swarm for the expired app %s:\n%s", when, strings.Join(steps, "\n"))
		}
	}
	stayedExpired("across resyncs")
	if err := h.stop(); err != nil {
		t.Errorf("reconciler on SIGTERM: %v", err)
	}
	port = h.recStart()
	h.recAwaitReadyz(port)
	stayedExpired("across a restart")

	// New content: deployed again.
	gen2 := h.writeSpec(a.name, a.spec(version, "ttl: 10m"))
	if gen2 == gen {
		t.Fatal("the new spec has the same generation")
	}
	h.waitPhase(a.name, gen2, "Ready")
	a.appService(t)
	a.checkAnswers(t, version)
}

// recAwaitAll polls the statuses of apps until done accepts each, for at most within. It
// fails the test naming the apps that are not done (with their last phase and message), or
// when an app reaches a final phase done rejects, or when the reconciler exits.
func recAwaitAll(t *testing.T, h *harness, apps []*testApp, what string, within time.Duration, done func(a *testApp, s appStatus) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var pending []string
		for _, a := range apps {
			s, found, err := h.readStatus(a.name)
			if err == nil && found && done(a, s) {
				continue
			}
			if err == nil && found && slices.Contains(finalPhases, s.Phase) && s.Phase != "Deleted" {
				t.Fatalf("app %s: waiting for %s: reached %s; status:\n%s", a.name, what, s.Phase, s)
			}
			pending = append(pending, fmt.Sprintf("%s (%s: %s; err %v)", a.name, s.Phase, s.Message, err))
		}
		if len(pending) == 0 {
			return
		}
		if !h.running() {
			t.Fatalf("waiting for %s: the reconciler exited (%v); not there: %s", what, h.exit, strings.Join(pending, ", "))
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %d apps not there within %s: %s", what, len(pending), within, strings.Join(pending, ", "))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// recCount counts the apps whose status done accepts.
func recCount(h *harness, apps []*testApp, done func(a *testApp, s appStatus) bool) int {
	n := 0
	for _, a := range apps {
		if s, found, err := h.readStatus(a.name); err == nil && found && done(a, s) {
			n++
		}
	}
	return n
}

// recRestartMidway waits until at least some (but, if it can tell, not all) apps satisfy done,
// then restarts the reconciler the polite way (SIGTERM, then start).
func recRestartMidway(t *testing.T, h *harness, apps []*testApp, what string, some int, done func(a *testApp, s appStatus) bool) {
	t.Helper()
	var n int
	err := poll(context.Background(), 10*time.Minute, func() (bool, error) {
		n = recCount(h, apps, done)
		if !h.running() {
			return false, fmt.Errorf("the reconciler exited: %v", h.exit)
		}
		return n >= some, nil
	})
	if err != nil {
		t.Fatalf("waiting for %d apps %s: %d there: %v", some, what, n, err)
	}
	if n == len(apps) {
		// The scenario is a restart in the middle: one after the end tests something else.
		t.Errorf("all %d apps were %s before the restart: the restart was not in the middle", n, what)
	}
	t.Logf("restarting the reconciler with %d of %d apps %s", n, len(apps), what)
	if err := h.stop(); err != nil {
		t.Errorf("reconciler on SIGTERM: %v", err)
	}
	h.start()
}

// TestThirtyAppsWithRestarts: 30 apps created at once, the reconciler restarted in the
// middle, all end Ready, deployed once each, with exactly their one service and no duplicate
// object; then all 30 specs deleted at once, the reconciler restarted in the middle again,
// and all end Deleted with nothing labelled with any of them left.
func TestThirtyAppsWithRestarts(t *testing.T) {
	const n = 30
	h := startHarness(t)
	version := h.recipe.first().Version
	apps := make([]*testApp, n)
	gens := map[string]string{}
	for i := range apps {
		apps[i] = h.newApp("e2e-thirty")
	}
	for _, a := range apps {
		gens[a.name] = h.writeSpec(a.name, a.spec(version, "timeout: 10m"))
	}
	ready := func(a *testApp, s appStatus) bool { return s.ObservedGeneration == gens[a.name] && s.Phase == "Ready" }
	recRestartMidway(t, h, apps, "Ready", n/3, ready)
	recAwaitAll(t, h, apps, "Ready", 10*time.Minute, ready)
	for _, a := range apps {
		s, _, err := h.readStatus(a.name)
		if err != nil {
			t.Fatal(err)
		}
		if s.Deploys != 1 {
			t.Errorf("app %s: deploys = %d, want 1; status:\n%s", a.name, s.Deploys, s)
		}
		a.appService(t)
		objects := a.recObjects(t)
		if dups := recDuplicates(objects); len(dups) > 0 {
			t.Errorf("app %s: duplicate objects %v; has %v", a.name, dups, objects)
		}
	}

	for _, a := range apps {
		h.deleteSpec(a.name)
	}
	deleted := func(a *testApp, s appStatus) bool { return s.Phase == "Deleted" }
	recRestartMidway(t, h, apps, "Deleted", n/3, deleted)
	recAwaitAll(t, h, apps, "Deleted", 8*time.Minute, deleted)
	var left []string
	for _, a := range apps {
		left = append(left, h.residue(a.name)...)
	}
	if len(left) > 0 {
		t.Errorf("%d objects left labelled with the deleted apps: %s", len(left), strings.Join(left, ", "))
	}
}

// reapedAtTTL checks that the reaping of an Expired app (its first history entry saying the
// ttl passed) began ttl after its first deploy, within a few seconds: not before, and not
// only at some later resync or restart.
func reapedAtTTL(t *testing.T, s appStatus, ttl time.Duration) {
	t.Helper()
	full := rolloutFull(t, s)
	if full.FirstDeployedAt == nil {
		t.Fatalf("Expired without a firstDeployedAt:\n%s", s)
	}
	var began time.Time
	for _, e := range full.History {
		if strings.Contains(e.Message, "ttl "+ttl.String()+" passed") {
			began = e.Time
			break
		}
	}
	if d := began.Sub(*full.FirstDeployedAt); began.IsZero() || d < ttl || d > ttl+5*time.Second {
		t.Errorf("the ttl's reaping began %s after the first deploy (history entry at %s), want %s to %s; status:\n%s",
			d, began.Format(time.RFC3339Nano), ttl, ttl+5*time.Second, s)
	}
}
