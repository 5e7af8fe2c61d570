package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// The tests in this file are the e2e evidence of issue 4 ("Upgrade tier and honest rollout
// verdicts"): the upgrade tier, rollbacks and pauses that are never reported as success, the
// image check, commit ("chaos") deploys, and health probes that gate Ready. They run against
// the real swarm with their own recipe (makeRolloutRecipe), which has what the suite's recipe
// lacks: a crashing release for each failure_action, and an untagged commit.

// The releases of the rollout recipe, oldest first.
const (
	rolloutRecipeName = "e2e-rollout"
	rolloutV1         = "1.0.0+1.0"
	rolloutV2         = "1.1.0+1.0"
	// rolloutCrashRollback's tasks exit 3 at once; its update_config says failure_action: rollback.
	rolloutCrashRollback = "2.0.0+1.0"
	// rolloutCrashPause's tasks exit 3 at once; its update_config says failure_action: pause.
	rolloutCrashPause = "2.1.0+1.0"
	// rolloutMissingImage runs rolloutMissingRef, which is neither local nor pullable.
	rolloutMissingImage = "3.0.0+1.0"
	rolloutMissingRef   = "swarm-reconciler-e2e/rollout-missing:1"
	// rolloutSlowHealth has a healthcheck that passes only rolloutHealthyAfter after the start.
	rolloutSlowHealth   = "4.0.0+1.0"
	rolloutHealthyAfter = 4 * time.Second
	// rolloutCrashExit is the exit code of the echo image with CRASH set.
	rolloutCrashExit = 3
)

// rolloutRecipe is the recipe made by makeRolloutRecipe.
type rolloutRecipe struct {
	Name string
	Dir  string
	// Messages maps each release (and the chaos commit) to what its app answers on GET /.
	Messages map[string]string
	// Chaos is the full hash of a commit after the last tag that no tag names.
	Chaos string
}

// makeRolloutRecipe creates <recipesDir>/e2e-rollout: a git repository with an annotated tag
// per release, then one more commit that no tag names (for a commit deploy). Every release
// runs the suite's echo image with a MESSAGE of its own, publishing ${PORT} in host mode, with
// update_config order stop-first; the crashing releases set CRASH (the task exits 3 at once)
// and differ only in failure_action.
func makeRolloutRecipe(t testing.TB, recipesDir string) rolloutRecipe {
	t.Helper()
	r := rolloutRecipe{Name: rolloutRecipeName, Dir: filepath.Join(recipesDir, rolloutRecipeName), Messages: map[string]string{}}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		".env.sample": "TYPE=" + r.Name + "\nDOMAIN=" + r.Name + ".example.com\nLETS_ENCRYPT_ENV=production\n\n# host port the app publishes (mode: host)\nPORT=18080\n",
		"README.md":   "# " + r.Name + "\n\nAn e2e test recipe for rollout verdicts.\n",
	}
	for file, content := range files {
		if err := os.WriteFile(filepath.Join(r.Dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(git(r.Dir, "init", "-q", "-b", "main"))
	commit := func(version, compose string) {
		t.Helper()
		must(os.WriteFile(filepath.Join(r.Dir, "compose.yml"), []byte(compose), 0o644))
		must(git(r.Dir, "add", "-A"))
		must(git(r.Dir, "commit", "-q", "-m", "chore: "+version))
	}
	releases := []struct {
		version, image, failureAction string
		crash                         bool
		healthyAfter                  time.Duration
	}{
		{rolloutV1, echoImage, "rollback", false, 0},
		{rolloutV2, echoImage, "rollback", false, 0},
		{rolloutCrashRollback, echoImage, "rollback", true, 0},
		{rolloutCrashPause, echoImage, "pause", true, 0},
		{rolloutMissingImage, rolloutMissingRef, "rollback", false, 0},
		{rolloutSlowHealth, echoImage, "rollback", false, rolloutHealthyAfter},
	}
	for _, rel := range releases {
		msg := fmt.Sprintf("hello from %s %s", r.Name, rel.version)
		r.Messages[rel.version] = msg
		commit("release "+rel.version, rolloutCompose(rel.image, msg, rel.version, rel.failureAction, rel.crash, rel.healthyAfter))
		must(git(r.Dir, "tag", "-a", rel.version, "-m", "release "+rel.version))
	}
	// Unreleased work, committed but never tagged: only a commit deploy reaches it.
	chaosMsg := "hello from " + r.Name + " at an untagged commit"
	commit("unreleased work", rolloutCompose(echoImage, chaosMsg, "chaos", "rollback", false, 0))
	out, err := exec.Command("git", "-C", r.Dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD in %s: %v", r.Dir, err)
	}
	r.Chaos = strings.TrimSpace(string(out))
	r.Messages[r.Chaos] = chaosMsg
	return r
}

// rolloutCompose is one release's compose.yml. A healthyAfter above zero gives the service a
// healthcheck (every 500 ms) that passes that long after the container started.
func rolloutCompose(image, message, version, failureAction string, crash bool, healthyAfter time.Duration) string {
	extra := ""
	if crash {
		extra = "      - CRASH=1\n"
	}
	if healthyAfter > 0 {
		extra = fmt.Sprintf("      - HEALTHY_AFTER=%s\n", healthyAfter) +
			"    healthcheck:\n" +
			"      test: [\"CMD\", \"/echo\", \"check\"]\n" +
			"      interval: 500ms\n      timeout: 2s\n      retries: 60\n"
	}
	return fmt.Sprintf(`version: "3.8"

services:
  app:
    image: %s
    environment:
      - MESSAGE=%s
      - PORT=8080
%s    ports:
      - target: 8080
        published: ${PORT}
        protocol: tcp
        mode: host
    deploy:
      replicas: 1
      restart_policy:
        condition: on-failure
      update_config:
        order: stop-first
        failure_action: %s
      labels:
        - "coop-cloud.${STACK_NAME}.version=%s"
`, image, message, extra, failureAction, version)
}

// rolloutSpec is the app's spec for version of recipe r, with extra YAML lines; a "timeout:"
// line replaces the suite's default converge deadline.
func (r rolloutRecipe) spec(a *testApp, version string, extra ...string) []byte {
	timeout := "timeout: " + specTimeout + "\n"
	for _, line := range extra {
		if strings.HasPrefix(line, "timeout:") {
			timeout = ""
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "recipe: %s\nversion: %q\n%senv:\n  PORT: %q\n", r.Name, version, timeout, strconv.Itoa(a.port))
	for _, line := range extra {
		b.WriteString(line + "\n")
	}
	return []byte(b.String())
}

// deploy writes the spec for version of r and waits until it is Ready, serving that version.
func (r rolloutRecipe) deploy(t testing.TB, a *testApp, version string) string {
	t.Helper()
	gen := a.h.writeSpec(a.name, r.spec(a, version))
	a.h.waitPhase(a.name, gen, "Ready")
	if err := waitHTTP(context.Background(), a.port, "/", r.Messages[version]); err != nil {
		t.Fatal(err)
	}
	return gen
}

// rolloutStatus is the part of the status file these tests read beyond appStatus.
type rolloutStatus struct {
	ObservedGeneration    string     `json:"observedGeneration"`
	Phase                 string     `json:"phase"`
	Message               string     `json:"message"`
	Version               string     `json:"version"`
	LastAttemptedRevision string     `json:"lastAttemptedRevision"`
	LastAppliedRevision   string     `json:"lastAppliedRevision"`
	Deploys               int        `json:"deploys"`
	AttemptStartedAt      *time.Time `json:"attemptStartedAt"`
	Services              []struct {
		Name        string `json:"name"`
		Running     int    `json:"running"`
		Desired     int    `json:"desired"`
		UpdateState string `json:"updateState"`
		Tasks       []struct {
			State    string   `json:"state"`
			Error    string   `json:"error"`
			ExitCode *int     `json:"exitCode"`
			Logs     []string `json:"logs"`
		} `json:"tasks"`
	} `json:"services"`
	History []struct {
		Time    time.Time `json:"time"`
		Phase   string    `json:"phase"`
		Message string    `json:"message"`
	} `json:"history"`
	FirstDeployedAt *time.Time `json:"firstDeployedAt"`
}

// rolloutFull decodes the whole of a status read by the harness.
func rolloutFull(t testing.TB, s appStatus) rolloutStatus {
	t.Helper()
	var full rolloutStatus
	if err := json.Unmarshal(s.raw, &full); err != nil {
		t.Fatalf("status: %v\n%s", err, s)
	}
	return full
}

// firstHistoryTime is when the status history says the phase was first entered: what a
// claim "not Ready before X" is about (an early Ready that flapped back stays in it, unless
// the history's 20 entries dropped it).
func (s rolloutStatus) firstHistoryTime(phase string) (time.Time, bool) {
	for _, e := range s.History {
		if e.Phase == phase {
			return e.Time, true
		}
	}
	return time.Time{}, false
}

// historyTime is when the status history says the phase was entered last.
func (s rolloutStatus) historyTime(phase string) (time.Time, bool) {
	for i := len(s.History) - 1; i >= 0; i-- {
		if s.History[i].Phase == phase {
			return s.History[i].Time, true
		}
	}
	return time.Time{}, false
}

// hasExitCode reports whether any task the status lists exited with code.
func (s rolloutStatus) hasExitCode(code int) bool {
	for _, svc := range s.Services {
		for _, task := range svc.Tasks {
			if task.ExitCode != nil && *task.ExitCode == code {
				return true
			}
		}
	}
	return false
}

// statusWatcher reads a status file in a loop for as long as a test runs and records every
// distinct (generation, phase) it saw, with when it first saw it. The rollout tests use it to
// prove a phase (Ready) was never written for a generation, not even for one write.
type statusWatcher struct {
	path     string
	interval time.Duration // 0: a tight loop
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once

	mu      sync.Mutex
	reads   int
	seen    []watchedState
	said    []watchedState // every change of message too
	corrupt []string
}

// watchedState is one (generation, phase) the watcher saw, in the order first seen.
type watchedState struct {
	Gen     string
	Phase   string
	Message string
	At      time.Time
}

// watchStatus starts a watcher of path; it stops at the test's end at the latest.
func watchStatus(t testing.TB, path string, interval time.Duration) *statusWatcher {
	w := &statusWatcher{path: path, interval: interval, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	t.Cleanup(w.halt)
	return w
}

func (w *statusWatcher) run() {
	defer close(w.done)
	var last []byte
	for {
		select {
		case <-w.stop:
			// One more look: whatever was written before halt is seen, however long this
			// goroutine waited for a core.
			w.look(&last)
			return
		default:
		}
		w.look(&last)
		if w.interval > 0 {
			time.Sleep(w.interval)
		}
	}
}

// look reads the status file once and records a new generation or phase.
func (w *statusWatcher) look(last *[]byte) {
	b, err := os.ReadFile(w.path)
	at := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reads++
	if err != nil || bytes.Equal(b, *last) {
		return
	}
	*last = b
	var s struct {
		Gen     string `json:"observedGeneration"`
		Phase   string `json:"phase"`
		Message string `json:"message"`
	}
	if jerr := json.Unmarshal(b, &s); jerr != nil {
		w.corrupt = append(w.corrupt, fmt.Sprintf("%v: %q", jerr, truncate(b, 200)))
		return
	}
	st := watchedState{Gen: s.Gen, Phase: s.Phase, Message: s.Message, At: at}
	if n := len(w.seen); n == 0 || w.seen[n-1].Gen != s.Gen || w.seen[n-1].Phase != s.Phase {
		w.seen = append(w.seen, st)
	}
	if n := len(w.said); n == 0 || w.said[n-1] != st {
		w.said = append(w.said, st)
	}
}

// writesSince returns every distinct status the watcher read at or after t: each write, not
// only the changes of generation or phase (a Ready written again is one too).
func (w *statusWatcher) writesSince(t time.Time) []watchedState {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []watchedState
	for _, s := range w.said {
		if !s.At.Before(t) {
			out = append(out, s)
		}
	}
	return out
}

// saw reports whether the status said text in phase for gen at some read.
func (w *statusWatcher) saw(gen, phase, text string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.ContainsFunc(w.said, func(s watchedState) bool {
		return s.Gen == gen && s.Phase == phase && strings.Contains(s.Message, text)
	})
}

// halt stops the watcher and waits for its loop to end.
func (w *statusWatcher) halt() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// states returns what the watcher has seen so far.
func (w *statusWatcher) states() (reads int, seen []watchedState, corrupt []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reads, slices.Clone(w.seen), slices.Clone(w.corrupt)
}

// firstSeen is when the watcher first saw gen in phase.
func (w *statusWatcher) firstSeen(gen, phase string) (time.Time, bool) {
	_, seen, _ := w.states()
	for _, s := range seen {
		if s.Gen == gen && s.Phase == phase {
			return s.At, true
		}
	}
	return time.Time{}, false
}

// trace is the sequence of phases seen, for messages.
func (w *statusWatcher) trace() string {
	reads, seen, _ := w.states()
	var b strings.Builder
	fmt.Fprintf(&b, "%d reads of %s; phases seen:", reads, w.path)
	for _, s := range seen {
		fmt.Fprintf(&b, "\n  %s gen %s %-9s %s", s.At.Format("15:04:05.000"), rolloutShortGen(s.Gen), s.Phase, s.Message)
	}
	return b.String()
}

// assertNever fails the test if the watcher ever saw gen in phase, or a status file that was
// not complete JSON.
func (w *statusWatcher) assertNever(t testing.TB, gen, phase string) {
	t.Helper()
	reads, seen, corrupt := w.states()
	for _, s := range seen {
		if s.Gen == gen && s.Phase == phase {
			t.Errorf("the status file said %s for generation %s at %s (message %q); it never may:\n%s",
				phase, rolloutShortGen(gen), s.At.Format(time.RFC3339Nano), s.Message, w.trace())
		}
	}
	if len(corrupt) > 0 {
		t.Errorf("%d of %d reads found the status file half-written: %v", len(corrupt), reads, corrupt)
	}
	if reads < 100 {
		t.Errorf("the watcher read the status file only %d times: it did not watch closely", reads)
	}
}

func rolloutShortGen(gen string) string {
	if g, ok := strings.CutPrefix(gen, "sha256:"); ok && len(g) >= 8 {
		return g[:8]
	}
	return gen
}

// rolloutService is the app's one service as ServiceInspect gives it (with PreviousSpec).
func rolloutService(t testing.TB, a *testApp) swarm.Service {
	t.Helper()
	svc := a.appService(t)
	full, _, err := suite.docker.ServiceInspectWithRaw(context.Background(), svc.ID, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return full
}

// TestRolloutTierUpgradeFromPreviousTag: a spec with tier upgrade and no upgradeFrom first
// deploys the release tag just before its version, waits for it to converge, then upgrades the
// same service in place. It is Ready only after the second step, serves the new version, and
// its history shows the first deploy at the previous tag; the engine's PreviousSpec of the
// service is that release too.
func TestRolloutTierUpgradeFromPreviousTag(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	a := h.newApp("e2e-ro-tier")
	from, to := h.recipe.Releases[len(h.recipe.Releases)-2].Version, h.recipe.latest().Version
	w := watchStatus(t, h.statusPath(a.name), time.Millisecond)

	gen := h.writeSpec(a.name, a.spec(to, "tier: upgrade"))
	s := h.waitPhase(a.name, gen, "Ready")
	a.checkAnswers(t, to)
	full := rolloutFull(t, s)
	w.halt()
	t.Log(w.trace())

	// The history: a Deploying step that applied the previous tag, then an Upgrading step that
	// applied the target, then Ready.
	fromRev, toRev := h.recipe.Name+"@"+from+" ", h.recipe.Name+"@"+to+" "
	deployedFrom, upgradedTo := -1, -1
	for i, e := range full.History {
		switch {
		case e.Phase == "Deploying" && strings.Contains(e.Message, fromRev) && deployedFrom < 0:
			deployedFrom = i
		case e.Phase == "Upgrading" && strings.Contains(e.Message, toRev):
			upgradedTo = i
		}
		if strings.Contains(e.Message, h.recipe.Name+"@"+to) && deployedFrom < 0 {
			t.Errorf("history entry %d (%s %q) names the target %s before any deploy of %s", i, e.Phase, e.Message, to, from)
		}
	}
	if deployedFrom < 0 {
		t.Errorf("the status history has no Deploying entry applying %s@%s (the previous tag):\n%s", h.recipe.Name, from, s)
	}
	if upgradedTo < 0 || upgradedTo < deployedFrom {
		t.Errorf("the status history has no Upgrading entry applying %s@%s after the deploy of %s:\n%s", h.recipe.Name, to, from, s)
	}
	if n := len(full.History); n == 0 || full.History[n-1].Phase != "Ready" {
		t.Errorf("the last history entry is not Ready:\n%s", s)
	}
	if !strings.Contains(full.LastAppliedRevision, toRev) {
		t.Errorf("lastAppliedRevision %q, want %s", full.LastAppliedRevision, toRev)
	}
	// The watcher: Ready for this generation only after the last Upgrading.
	_, seen, _ := w.states()
	lastUpgrading, firstReady := -1, -1
	for i, st := range seen {
		if st.Gen != gen {
			continue
		}
		if st.Phase == "Upgrading" {
			lastUpgrading = i
		}
		if st.Phase == "Ready" && firstReady < 0 {
			firstReady = i
		}
	}
	if lastUpgrading < 0 || firstReady < lastUpgrading {
		t.Errorf("the status file was Ready (at %d) before or without Upgrading (last at %d):\n%s", firstReady, lastUpgrading, w.trace())
	}

	// The engine: one service, updated in place from the previous tag, roll completed.
	svc := rolloutService(t, a)
	label := "coop-cloud." + a.stack() + ".version"
	if got := svc.Spec.Labels[label]; got != to {
		t.Errorf("service %s: %s = %q, want %q", svc.Spec.Name, label, got, to)
	}
	if svc.PreviousSpec == nil {
		t.Errorf("service %s has no PreviousSpec: it was not upgraded in place", svc.Spec.Name)
	} else if got := svc.PreviousSpec.Labels[label]; got != from {
		t.Errorf("service %s: the spec before the upgrade had %s = %q, want the previous tag %q", svc.Spec.Name, label, got, from)
	}
	if svc.UpdateStatus == nil || svc.UpdateStatus.State != swarm.UpdateStateCompleted {
		t.Errorf("service %s: update status %+v at Ready, want completed", svc.Spec.Name, svc.UpdateStatus)
	}
	t.Logf("history:\n%s", rolloutHistory(full))
}

func rolloutHistory(s rolloutStatus) string {
	var lines []string
	for _, e := range s.History {
		lines = append(lines, fmt.Sprintf("  %s %-9s %s", e.Time.Format("15:04:05.000"), e.Phase, e.Message))
	}
	return strings.Join(lines, "\n")
}

// rolloutCrash upgrades a Ready app at rolloutV1 to a crashing release while a watcher reads
// its status file every millisecond, and returns the Failed status. The watcher runs for the
// whole test and some resyncs past Failed, and must never have seen Ready for the crashing
// generation.
func rolloutCrash(t *testing.T, prefix, version string) (*testApp, rolloutRecipe, rolloutStatus) {
	h := startHarness(t)
	r := makeRolloutRecipe(t, h.recipes)
	a := h.newApp(prefix)
	w := watchStatus(t, h.statusPath(a.name), time.Millisecond)
	r.deploy(t, a, rolloutV1)

	gen := h.writeSpec(a.name, r.spec(a, version))
	written := time.Now()
	s, full := failedNeverReady(t, a, w, gen, written)
	if !full.hasExitCode(rolloutCrashExit) {
		t.Errorf("the Failed status lists no task that exited %d (the crash); services:\n%s", rolloutCrashExit, s)
	}
	// Issue 4: the message itself says why: the failed task's error and exit code.
	if !strings.Contains(s.Message, fmt.Sprintf("exit code %d", rolloutCrashExit)) {
		t.Errorf("the Failed message gives no task error or exit code: %q", s.Message)
	}
	return a, r, full
}

// failedNeverReady waits for generation gen of app a, written at written, to be Failed, and
// checks that it stays Failed over three resyncs and was never Ready: neither in what the
// watcher w read (which it halts) nor in the status history, which keeps a phase too short for
// the watcher's reads.
func failedNeverReady(t *testing.T, a *testApp, w *statusWatcher, gen string, written time.Time) (appStatus, rolloutStatus) {
	t.Helper()
	h := a.h
	s := h.waitPhase(a.name, gen, "Failed")
	t.Logf("Failed %s after the spec was written: %s", time.Since(written).Round(time.Millisecond), s.Message)
	// Failed is final for the generation: it stays so over the next resyncs.
	time.Sleep(3 * resync)
	after, _, err := h.readStatus(a.name)
	if err != nil {
		t.Fatal(err)
	}
	w.halt()
	t.Log(w.trace())
	w.assertNever(t, gen, "Ready")
	if after.ObservedGeneration != gen || after.Phase != "Failed" {
		t.Errorf("3 resyncs after Failed the status is %s for %s, want Failed for %s", after.Phase, rolloutShortGen(after.ObservedGeneration), rolloutShortGen(gen))
	}
	full := rolloutFull(t, s)
	for _, e := range full.History {
		if e.Phase == "Ready" && full.AttemptStartedAt != nil && !e.Time.Before(*full.AttemptStartedAt) {
			t.Errorf("the status history says Ready at %s, after the crashing upgrade started at %s:\n%s",
				e.Time.Format(time.RFC3339Nano), full.AttemptStartedAt.Format(time.RFC3339Nano), rolloutHistory(full))
		}
	}
	return s, full
}

// TestRolloutCrashRollbackNeverReady: an upgrade to a release whose tasks crash, with
// update_config.failure_action rollback, ends Failed saying it rolled back; the old release
// still serves, the service's labels are the old release's, and the status file never said
// Ready for that generation.
func TestRolloutCrashRollbackNeverReady(t *testing.T) {
	t.Parallel()
	a, r, s := rolloutCrash(t, "e2e-ro-rollback", rolloutCrashRollback)
	msg := strings.ToLower(s.Message)
	if !strings.Contains(msg, "rolled back") && !strings.Contains(msg, "rollback") {
		t.Errorf("Failed message %q does not say the update was rolled back", s.Message)
	}
	svc := rolloutService(t, a)
	if svc.UpdateStatus == nil || svc.UpdateStatus.State != swarm.UpdateStateRollbackCompleted {
		t.Errorf("service %s: update status %+v, want rollback_completed", svc.Spec.Name, svc.UpdateStatus)
	}
	if got := svc.Spec.Labels["coop-cloud."+a.stack()+".version"]; got != rolloutV1 {
		t.Errorf("service %s: version label %q after the rollback, want the old %q", svc.Spec.Name, got, rolloutV1)
	}
	if err := waitHTTP(context.Background(), a.port, "/", r.Messages[rolloutV1]); err != nil {
		t.Errorf("the old release does not serve after the rollback: %v", err)
	}
}

// TestRolloutCrashPauseNeverReady: the same with failure_action pause: Failed saying the
// update paused, never Ready. Swarm does not restore the old spec on a pause, so this test
// reports (and checks the status does not contradict) what actually runs.
func TestRolloutCrashPauseNeverReady(t *testing.T) {
	t.Parallel()
	a, _, s := rolloutCrash(t, "e2e-ro-pause", rolloutCrashPause)
	if !strings.Contains(strings.ToLower(s.Message), "paused") {
		t.Errorf("Failed message %q does not say the update paused", s.Message)
	}
	svc := rolloutService(t, a)
	if svc.UpdateStatus == nil || svc.UpdateStatus.State != swarm.UpdateStatePaused {
		t.Errorf("service %s: update status %+v, want paused", svc.Spec.Name, svc.UpdateStatus)
	}
	running := svc.Spec.Labels["coop-cloud."+a.stack()+".version"]
	code, body, err := httpGet(a.port, "/")
	t.Logf("after the pause: service spec is release %s; GET / answers %d %q (error %v)", running, code, body, err)
	if running == rolloutCrashPause && strings.Contains(s.Message, "running spec is the previous one") {
		t.Errorf("Failed message %q says the previous spec runs, but swarm paused with the new spec (%s) in place: the message does not tell the truth about the rollout", s.Message, running)
	}
}

// TestRolloutMissingImageUpgradeFailsFast: an upgrade of a Ready app to a release whose image
// is neither local nor pullable is Failed naming the image within a bounded poll (the spec's
// timeout is 10m), before any service is touched: the old release keeps serving and the deploy
// count does not move. TestMissingImageFailsAtOnce covers the same for an install.
func TestRolloutMissingImageUpgradeFailsFast(t *testing.T) {
	h := startHarness(t)
	r := makeRolloutRecipe(t, h.recipes)
	if _, err := suite.docker.ImageInspect(context.Background(), rolloutMissingRef); err == nil || !cerrdefs.IsNotFound(err) {
		t.Fatalf("image %s must not exist on this node for this test (inspect: %v)", rolloutMissingRef, err)
	}
	a := h.newApp("e2e-ro-noimage")
	w := watchStatus(t, h.statusPath(a.name), time.Millisecond)
	r.deploy(t, a, rolloutV1)
	ready, _, err := h.readStatus(a.name)
	if err != nil {
		t.Fatal(err)
	}
	idx := h.indexes(a.name)

	gen := h.writeSpec(a.name, r.spec(a, rolloutMissingImage, "timeout: 10m"))
	written := time.Now()
	const bound = time.Minute // a poll deadline far below the spec's 10m, not a speed assertion
	var s appStatus
	err = poll(context.Background(), bound, func() (bool, error) {
		var err error
		s, _, err = h.readStatus(a.name)
		return err == nil && s.ObservedGeneration == gen && slices.Contains(finalPhases, s.Phase), err
	})
	if err != nil {
		t.Fatalf("no final phase for generation %s within %s of the spec write (%v); status:\n%s", rolloutShortGen(gen), bound, err, s)
	}
	seenAt, ok := w.firstSeen(gen, "Failed")
	if !ok {
		seenAt = time.Now()
	}
	t.Logf("measured: Failed %s after the spec was written (timeout 10m): %s", seenAt.Sub(written).Round(time.Millisecond), s.Message)
	if s.Phase != "Failed" {
		t.Fatalf("phase %s, want Failed:\n%s", s.Phase, s)
	}
	if !strings.Contains(s.Message, rolloutMissingRef) {
		t.Errorf("Failed message %q does not name the image %s", s.Message, rolloutMissingRef)
	}
	w.halt()
	w.assertNever(t, gen, "Ready")
	if got := h.indexes(a.name); !slices.Equal(sortedKeys(got), sortedKeys(idx)) || got[a.stack()+"_app"] != idx[a.stack()+"_app"] {
		t.Errorf("services were touched by an upgrade whose image is missing: Version.Index %v -> %v", idx, got)
	}
	if s.Deploys != ready.Deploys {
		t.Errorf("deploys %d -> %d for an upgrade that never reached the engine", ready.Deploys, s.Deploys)
	}
	if err := waitHTTP(context.Background(), a.port, "/", r.Messages[rolloutV1]); err != nil {
		t.Errorf("the old release does not serve: %v", err)
	}
}

// TestRolloutCommitVersion: a version that is a commit hash (no tag names it) deploys that
// commit: the app service carries coop-cloud.<stack>.chaos=true and .chaos-version=<short
// commit>, the status names the commit, and the commit's code answers. Upgrading it to a
// release tag then clears the chaos labels.
func TestRolloutCommitVersion(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	r := makeRolloutRecipe(t, h.recipes)
	a := h.newApp("e2e-ro-chaos")
	short := r.Chaos[:7]

	gen := h.writeSpec(a.name, r.spec(a, r.Chaos))
	s := h.waitPhase(a.name, gen, "Ready")
	full := rolloutFull(t, s)
	t.Logf("commit %s Ready: lastAppliedRevision %q, message %q", r.Chaos, full.LastAppliedRevision, full.Message)
	if !strings.Contains(full.LastAppliedRevision, short) {
		t.Errorf("status lastAppliedRevision %q does not name the commit %s", full.LastAppliedRevision, short)
	}
	if full.Version != r.Chaos {
		t.Errorf("status version %q, want the commit %s", full.Version, r.Chaos)
	}
	if err := waitHTTP(context.Background(), a.port, "/", r.Messages[r.Chaos]); err != nil {
		t.Error(err)
	}
	p := "coop-cloud." + a.stack() + "."
	svc := rolloutService(t, a)
	for k, want := range map[string]string{p + "chaos": "true", p + "chaos-version": short, p + "recipe": r.Name} {
		if got := svc.Spec.Labels[k]; got != want {
			t.Errorf("service %s: label %s = %q, want %q", svc.Spec.Name, k, got, want)
		}
	}

	// Back to a release: no longer a chaos deploy.
	gen = h.writeSpec(a.name, r.spec(a, rolloutV2))
	h.waitPhase(a.name, gen, "Ready")
	if err := waitHTTP(context.Background(), a.port, "/", r.Messages[rolloutV2]); err != nil {
		t.Error(err)
	}
	svc = rolloutService(t, a)
	if got := svc.Spec.Labels[p+"chaos"]; got != "false" {
		t.Errorf("service %s: label %schaos = %q after upgrading to the tag %s, want \"false\"", svc.Spec.Name, p, got, rolloutV2)
	}
	if got := svc.Spec.Labels[p+"chaos-version"]; got == short {
		t.Errorf("service %s: label %schaos-version still %q after upgrading to the tag %s", svc.Spec.Name, p, got, rolloutV2)
	}
	if got := svc.Spec.Labels[p+"version"]; got != rolloutV2 {
		t.Errorf("service %s: label %sversion = %q, want %q", svc.Spec.Name, p, got, rolloutV2)
	}
}

// TestRolloutProbeNeverPassesFails: an app that converges but whose http probe never answers
// an ok code (a path that 404s) is never Ready, and is Failed once its timeout has passed,
// with a message naming the probe and its last result.
func TestRolloutProbeNeverPassesFails(t *testing.T) {
	h := startHarness(t)
	r := makeRolloutRecipe(t, h.recipes)
	a := h.newApp("e2e-ro-noprobe")
	// Long enough for the install to converge on a loaded node, so the probe has answered 404.
	const timeout = 40 * time.Second
	url := fmt.Sprintf("http://127.0.0.1:%d/no-such-path", a.port)
	w := watchStatus(t, h.statusPath(a.name), time.Millisecond)

	gen := h.writeSpec(a.name, r.spec(a, rolloutV1, "timeout: "+timeout.String(), "health:", fmt.Sprintf("  - http: %q", url), "    ok: [200]"))
	s := h.waitPhase(a.name, gen, "Failed")
	w.halt()
	t.Log(w.trace())
	w.assertNever(t, gen, "Ready")
	full := rolloutFull(t, s)
	t.Logf("Failed: %s", s.Message)
	if !strings.Contains(s.Message, url) {
		t.Errorf("Failed message %q does not name the probe %s", s.Message, url)
	}
	if !strings.Contains(s.Message, "404") {
		t.Errorf("Failed message %q does not give the probe's last result (404)", s.Message)
	}
	// Failed at the timeout, not before: the app converged and answered / meanwhile.
	failedAt, ok := full.historyTime("Failed")
	if full.AttemptStartedAt == nil || !ok {
		t.Fatalf("status has no attemptStartedAt or no Failed history entry:\n%s", s)
	}
	took := failedAt.Sub(*full.AttemptStartedAt)
	t.Logf("measured: Failed %s after the attempt started (timeout %s)", took.Round(time.Millisecond), timeout)
	if took < timeout {
		t.Errorf("Failed %s after the attempt started, before the spec's timeout %s", took, timeout)
	}
	if err := waitHTTP(context.Background(), a.port, "/", r.Messages[rolloutV1]); err != nil {
		t.Errorf("the app was not left up for inspection: %v", err)
	}
}

// TestRolloutProbeLateReady: an app whose probes pass only after a while (a tcp probe of a
// port this test opens 10s after the app converged, stable 2) waits, saying which probe it
// waits for, and is Ready only once the probe passes.
func TestRolloutProbeLateReady(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	r := makeRolloutRecipe(t, h.recipes)
	a := h.newApp("e2e-ro-lateprobe")
	late, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	lateAddr := fmt.Sprintf("127.0.0.1:%d", late)
	w := watchStatus(t, h.statusPath(a.name), time.Millisecond)

	gen := h.writeSpec(a.name, r.spec(a, rolloutV1, "timeout: 2m", "health:",
		fmt.Sprintf("  - http: %q", fmt.Sprintf("http://127.0.0.1:%d/healthz", a.port)), "    ok: [200]",
		fmt.Sprintf("  - tcp: %q", lateAddr), "    stable: 2"))
	waiting, err := h.awaitStatus(a.name, "waiting for the tcp probe", func(s appStatus) (bool, string) {
		if s.ObservedGeneration != gen {
			return false, ""
		}
		if s.Phase == "Ready" || slices.Contains(finalPhases, s.Phase) {
			return false, "reached " + s.Phase + " while the probed port is closed"
		}
		return strings.Contains(s.Message, "waiting for health[1] tcp "+lateAddr), ""
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("waiting: %s", waiting.Message)
	time.Sleep(2 * resync) // passes and probes that must not make it Ready (the watcher sees any)
	if s, _, _ := h.readStatus(a.name); s.Phase == "Ready" {
		t.Fatalf("Ready while the probed port %s is closed:\n%s", lateAddr, s)
	}

	l, err := net.Listen("tcp", lateAddr)
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Now()
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	s := h.waitPhase(a.name, gen, "Ready")
	w.halt()
	t.Log(w.trace())
	readyAt, ok := w.firstSeen(gen, "Ready")
	if !ok {
		t.Fatalf("the watcher never saw Ready:\n%s", w.trace())
	}
	t.Logf("measured: Ready %s after the probed port opened", readyAt.Sub(opened).Round(time.Millisecond))
	if readyAt.Before(opened) {
		t.Errorf("Ready at %s, before the probed port opened at %s", readyAt.Format(time.RFC3339Nano), opened.Format(time.RFC3339Nano))
	}
	if strings.Contains(s.Message, "waiting for") {
		t.Errorf("Ready with message %q", s.Message)
	}
	if err := waitHTTP(context.Background(), a.port, "/", r.Messages[rolloutV1]); err != nil {
		t.Error(err)
	}
}

// TestRolloutHealthcheckGatesReady: swarm counts a task with a healthcheck running only once
// its container is healthy, and so must the reconciler, which looks again at an app on every
// event of its containers (start among them). The release's healthcheck passes only
// rolloutHealthyAfter after the container started.
func TestRolloutHealthcheckGatesReady(t *testing.T) {
	h := startHarness(t)
	r := makeRolloutRecipe(t, h.recipes)
	a := h.newApp("e2e-ro-health")
	gen := h.writeSpec(a.name, r.spec(a, rolloutSlowHealth))
	s := h.waitPhase(a.name, gen, "Ready")
	seen := time.Now()
	full := rolloutFull(t, s)
	readyAt, ok := full.firstHistoryTime("Ready")
	if !ok {
		t.Fatalf("no Ready in the history:\n%s", s)
	}

	ctx := context.Background()
	ctrs, err := suite.docker.ContainerList(ctx, container.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.name="+a.stack()+"_app")),
	})
	if err != nil || len(ctrs) != 1 {
		t.Fatalf("containers of %s_app: %d, %v", a.stack(), len(ctrs), err)
	}
	c, err := suite.docker.ContainerInspect(ctx, ctrs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.State.Health == nil {
		t.Fatalf("container %s has no health state: the release's healthcheck is missing", c.ID)
	}
	if c.State.Health.Status != "healthy" {
		t.Fatalf("Ready (seen %s) while the container's health is %q:\n%s", seen.Format(time.RFC3339Nano), c.State.Health.Status, s)
	}
	started, err := time.Parse(time.RFC3339Nano, c.State.StartedAt)
	if err != nil {
		t.Fatal(err)
	}
	var healthy time.Time
	for _, p := range c.State.Health.Log {
		if p.ExitCode == 0 && (healthy.IsZero() || p.End.Before(healthy)) {
			healthy = p.End
		}
	}
	t.Logf("measured: container started %s, first passing healthcheck %s later, Ready (history) %s after that",
		started.Format(time.RFC3339Nano), healthy.Sub(started).Round(time.Millisecond), readyAt.Sub(healthy).Round(time.Millisecond))
	if readyAt.Sub(started) < rolloutHealthyAfter {
		t.Errorf("Ready %s after the container started; its healthcheck passes only after %s", readyAt.Sub(started), rolloutHealthyAfter)
	}
	if err := waitHTTP(ctx, a.port, "/", r.Messages[rolloutSlowHealth]); err != nil {
		t.Error(err)
	}
}
