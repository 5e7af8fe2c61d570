package controller

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// stepPasses reconciles app every step until a pass asks for no requeue or until is reached,
// and returns every status written, in order, and the last pass's result.
func (f *fixture) stepPasses(app string, step, until time.Duration) (seen []*spec.Status, last Result) {
	f.t.Helper()
	end := f.now.Add(until)
	for f.now.Before(end) {
		res, err := f.r.Reconcile(f.t.Context(), app)
		if err != nil {
			f.t.Fatalf("reconcile: %v", err)
		}
		st, err := spec.ReadStatus(f.r.StatusDir, app)
		if err != nil {
			f.t.Fatal(err)
		}
		seen, last = append(seen, st), res
		if res.RequeueAfter == 0 {
			break
		}
		f.now = f.now.Add(step)
	}
	return seen, last
}

// readyAt is when the history first says Ready.
func readyAt(st *spec.Status) (time.Time, bool) {
	for _, h := range st.History {
		if h.Phase == spec.PhaseReady {
			return h.Time, true
		}
	}
	return time.Time{}, false
}

// TestStabilityWindow: an app is Ready only once every task has run its window without a
// restart (issue 11). A crash loop inside the window is never Ready and says so; minReady 0s
// is Ready as soon as swarm converges.
func TestStabilityWindow(t *testing.T) {
	for _, tc := range []struct {
		name       string
		spec       string
		crashAfter time.Duration
		// readyAfter is how long after the task started Ready comes; 0: never.
		readyAfter time.Duration
		final      spec.Phase
		message    []string
	}{
		{name: "default window: swarm's monitor, 5s", spec: "timeout: 1m\n", readyAfter: 5 * time.Second, final: spec.PhaseReady},
		{name: "minReady 2s", spec: "timeout: 1m\nminReady: 2s\n", readyAfter: 2 * time.Second, final: spec.PhaseReady},
		{name: "minReady 0s: Ready when swarm converges", spec: "timeout: 1m\nminReady: 0s\n", readyAfter: 0, final: spec.PhaseReady},
		{name: "crash after 2s: never Ready, Failed at the deadline", spec: "timeout: 20s\n", crashAfter: 2 * time.Second,
			final: spec.PhaseFailed, message: []string{"not stable within 20s", "restarts, last exit code 3"}},
		{name: "crash after 2s with minReady 0s: Ready, as before the window", spec: "timeout: 20s\nminReady: 0s\n", crashAfter: 2 * time.Second,
			readyAfter: 0, final: spec.PhaseReady},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.engine.crashAfter = tc.crashAfter
			f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\n"+tc.spec)
			started := f.now // the first pass creates the service, whose task runs at once
			seen, _ := f.stepPasses("a", 100*time.Millisecond, time.Minute)
			last := seen[len(seen)-1]
			if tc.final == spec.PhaseReady && tc.crashAfter == 0 {
				if last.Phase != spec.PhaseReady {
					t.Fatalf("ended %s: %s", last.Phase, last.Message)
				}
			} else if last.Phase != tc.final && !hasPhase(last, tc.final) {
				t.Fatalf("ended %s: %s; want %s", last.Phase, last.Message, tc.final)
			}
			at, ready := readyAt(last)
			switch {
			case tc.final == spec.PhaseFailed && ready:
				t.Fatalf("Ready at %s before Failed: %+v", at.Sub(started), last.History)
			case tc.final == spec.PhaseReady && !ready:
				t.Fatalf("never Ready: %+v", last.History)
			case ready && (at.Sub(started) < tc.readyAfter || at.Sub(started) > tc.readyAfter+200*time.Millisecond):
				t.Errorf("Ready %s after the task started; want %s (+ one 100ms step)", at.Sub(started), tc.readyAfter)
			}
			for _, m := range tc.message {
				if !strings.Contains(last.Message, m) {
					t.Errorf("message %q lacks %q", last.Message, m)
				}
			}
			for _, st := range seen {
				if st.Phase == spec.PhaseDeploying && tc.readyAfter > 0 && !strings.Contains(st.Message, "stay up") &&
					!strings.Contains(st.Message, "applying") && !strings.Contains(st.Message, "tasks running") {
					t.Errorf("Deploying says %q, not what it waits for", st.Message)
				}
			}
		})
	}
}

// TestStabilityWindowWaitsForItsEnd: while the window runs, a pass asks to come back at its end,
// and its looks until then are task list calls (TasksFor), so a Ready comes from a timer, not
// from polling.
func TestStabilityWindowWaitsForItsEnd(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 1m\nminReady: 3s\n")
	started := f.now
	if _, err := f.r.Reconcile(t.Context(), "a"); err != nil { // creates; its task runs at once
		t.Fatal(err)
	}
	f.now = started.Add(500 * time.Millisecond)
	res, err := f.r.Reconcile(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	want := 2500*time.Millisecond + time.Millisecond
	if res.RequeueAfter != want || res.TasksFor != want {
		t.Errorf("in the window: %+v; want RequeueAfter and TasksFor %s", res, want)
	}
	st, _ := spec.ReadStatus(f.r.StatusDir, "a")
	if st.Phase != spec.PhaseDeploying || !strings.Contains(st.Message, "up since 12:00:00.000Z, stable at 12:00:03.000Z if it stays up (3s window)") {
		t.Errorf("in the window: %s %q", st.Phase, st.Message)
	}
	f.now = f.now.Add(res.RequeueAfter)
	if res, err = f.r.Reconcile(t.Context(), "a"); err != nil || res.RequeueAfter != 0 {
		t.Fatalf("at the window's end: %+v %v", res, err)
	}
	if st, _ = spec.ReadStatus(f.r.StatusDir, "a"); st.Phase != spec.PhaseReady {
		t.Errorf("at the window's end: %s %q", st.Phase, st.Message)
	}
}

// TestRestartPolicyGaveUp: a service whose restart policy gave up (max_attempts reached, no
// task left) is Failed at once, saying so, well before the timeout.
func TestRestartPolicyGaveUp(t *testing.T) {
	f := newFixture(t)
	compose := strings.Replace(testCompose, "    networks:\n      - internal\n",
		"    networks:\n      - internal\n    deploy:\n      restart_policy:\n        condition: on-failure\n        max_attempts: 2\n", 1)
	makeRecipeOf(t, f.r.RecipesDir, "crashy", compose, "1.0.0+1")
	f.engine.crashAfter = time.Second
	f.writeSpec("a", "recipe: crashy\nversion: 1.0.0+1\ntimeout: 10m\n")
	started := f.now
	seen, _ := f.stepPasses("a", 100*time.Millisecond, time.Minute)
	last := seen[len(seen)-1]
	if last.Phase != spec.PhaseFailed {
		t.Fatalf("ended %s: %s", last.Phase, last.Message)
	}
	// Three tasks of a second each: the third ends 3s after the start.
	if took := last.History[len(last.History)-1].Time.Sub(started); took > 3200*time.Millisecond {
		t.Errorf("Failed %s after the start; want within 200ms of the third task's end (3s)", took)
	}
	for _, m := range []string{"restart policy gave up", "condition on-failure, max_attempts 2", "exit code 3"} {
		if !strings.Contains(last.Message, m) {
			t.Errorf("message %q lacks %q", last.Message, m)
		}
	}
	for _, st := range seen {
		if st.Phase == spec.PhaseReady {
			t.Fatalf("Ready on the way: %+v", st.History)
		}
	}
}

// TestRepairWaitsForTheWindow: a Ready app whose task crashed once is Degraded until its
// replacement has run the window, then Ready again.
func TestRepairWaitsForTheWindow(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 15s\n")
	installed := f.now // the first pass starts the task
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.now = f.now.Add(time.Hour)
	f.engine.crashAfter = f.now.Sub(installed) // the task crashes now, once
	crashed := f.now
	if _, err := f.r.Reconcile(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	f.engine.crashAfter = 0
	st, _ := spec.ReadStatus(f.r.StatusDir, "a")
	if st.Phase != spec.PhaseDegraded || !strings.Contains(st.Message, "1 restart, last exit code 3") {
		t.Fatalf("after the crash: %s %q", st.Phase, st.Message)
	}
	seen, _ := f.stepPasses("a", 100*time.Millisecond, time.Minute)
	last := seen[len(seen)-1]
	if last.Phase != spec.PhaseReady {
		t.Fatalf("ended %s: %s", last.Phase, last.Message)
	}
	if took := last.History[len(last.History)-1].Time.Sub(crashed); took < 5*time.Second || took > 5200*time.Millisecond {
		t.Errorf("Ready again %s after the crash; want the 5s window", took)
	}
}

func TestMinReady(t *testing.T) {
	d := func(s string) *spec.Duration { v, _ := time.ParseDuration(s); return &spec.Duration{Duration: v} }
	for _, tc := range []struct {
		spec    *spec.Duration
		monitor time.Duration
		want    time.Duration
	}{
		{nil, 0, spec.DefaultMinReady},
		{nil, 30 * time.Second, 30 * time.Second},
		{d("0s"), 30 * time.Second, 0},
		{d("2s"), 30 * time.Second, 2 * time.Second},
	} {
		if got := minReady(&spec.Spec{MinReady: tc.spec}, swarmstate.ServiceState{Monitor: tc.monitor}); got != tc.want {
			t.Errorf("minReady(%v, monitor %s) = %s, want %s", tc.spec, tc.monitor, got, tc.want)
		}
	}
}

// TestFailedTaskLogs: the status shows a failed task's last log lines, read once per task,
// with the values of the app's secrets redacted.
func TestFailedTaskLogs(t *testing.T) {
	f := newFixture(t)
	f.engine.crashAfter = time.Second
	f.engine.taskLog = func(id string) string {
		return "starting\npassword is hunter2hunter2\nlost the database: exiting " + id + "\n"
	}
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 1m\nenv:\n  DB_PASSWORD: hunter2hunter2\n")
	f.stepPasses("a", 100*time.Millisecond, 2500*time.Millisecond)
	st, err := spec.ReadStatus(f.r.StatusDir, "a")
	if err != nil {
		t.Fatal(err)
	}
	var failed []spec.TaskStatus
	for _, s := range st.Services {
		for _, ts := range s.Tasks {
			if ts.State == "failed" {
				failed = append(failed, ts)
			}
		}
	}
	if len(failed) == 0 {
		t.Fatalf("no failed task in the status: %+v", st.Services)
	}
	for _, ts := range failed {
		want := []string{"starting", "password is [redacted]", "lost the database: exiting " + ts.ID}
		if !slices.Equal(ts.Logs, want) {
			t.Errorf("task %s logs %q, want %q", ts.ID, ts.Logs, want)
		}
	}
	reads := map[string]int{}
	for _, c := range f.engine.calls {
		if id, ok := strings.CutPrefix(c, "logs "); ok {
			reads[id]++
		}
	}
	for id, n := range reads {
		if n != 1 {
			t.Errorf("logs of task %s read %d times; want once", id, n)
		}
	}
}

func TestRedactor(t *testing.T) {
	value := []byte("s3cr3tG3nerat3dValue0123456789ab")
	fp, err := manifests.NewFingerprint(value)
	if err != nil {
		t.Fatal(err)
	}
	r := newRedactor([]swarm.Secret{{Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Labels: map[string]string{manifests.LabelFingerprint: fp}}}}},
		map[string]string{"API_TOKEN": "tok-123456", "SECRET_DB_VERSION": "v1", "PORT": "8080", "SHORT_SECRET": "abc",
			"DATABASE_DSN": "postgres://app:pgpassw0rd@db/app", "TLS_KEY": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASC\n-----END PRIVATE KEY-----\n"})
	long := strings.Repeat("x", logLineMax-5) + string(value) + " tail"
	for _, tc := range []struct{ in, want string }{
		{"value=" + string(value) + ";", "value=[redacted];"},
		{string(value) + string(value), "[redacted][redacted]"},
		{"token tok-123456 port 8080 v1 abc", "token [redacted] port 8080 v1 abc"},
		{"nothing here", "nothing here"},
		{"config: postgres://app:pgpassw0rd@db/app", "config: [redacted]"}, // a name the web view hides too
		{"bad key: MIIEvQIBADANBgkqhkiG9w0B", "bad key: [redacted]"},       // a line of a value of several lines
		{"  AQEFAASC", "  [redacted]"},                                     // ... 8 bytes or more
		{"-----END PRIVATE KEY-----", "[redacted]"},
		{long, strings.Repeat("x", logLineMax-5) + "[redacted] [cut]"},
		// A secret across the cut is replaced whole, not cut; one past the cut is not shown.
		{strings.Repeat("y", logLineMax-5) + "tok-123456 and more", strings.Repeat("y", logLineMax-5) + "[redacted] [cut]"},
		{"a" + string(value) + strings.Repeat("z", logLineMax-40) + string(value), "a[redacted]" + strings.Repeat("z", logLineMax-40) + "[redacted]"}, // nothing left to cut
		{"a" + string(value) + strings.Repeat("z", logLineMax) + string(value), "a[redacted]" + strings.Repeat("z", logLineMax-33) + " [cut]"},
	} {
		if got := r.line(tc.in); got != tc.want {
			t.Errorf("line(%.40q...) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestRedactorLeavesNoPart: wherever a secret sits in a line of any length, no 8 bytes of it
// are left in what the status keeps.
func TestRedactorLeavesNoPart(t *testing.T) {
	value := "Q7vX2mLp9RtZ4kWc8NbY3hJd6FsG1aEo"
	fp, _ := manifests.NewFingerprint([]byte(value))
	r := newRedactor([]swarm.Secret{{Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Labels: map[string]string{manifests.LabelFingerprint: fp}}}}},
		map[string]string{"DB_PASSWORD": "hunter2hunter2hunter2"})
	for _, secret := range []string{value, "hunter2hunter2hunter2"} {
		for n := 0; n < 2*logLineMax; n += 7 {
			for at := 0; at <= n; at += 13 {
				line := strings.Repeat("-", at) + secret + strings.Repeat("+", n-at)
				got := r.line(line)
				for i := 0; i+8 <= len(secret); i++ {
					if strings.Contains(got, secret[i:i+8]) {
						t.Fatalf("secret at %d of %d bytes: %q leaks %q", at, len(line), got, secret[i:i+8])
					}
				}
			}
		}
	}
}

// TestWindowEndPastByNow: a window judged open at the snapshot's time but over by the time the
// pass reads its clock (slow log reads) still asks for a pass, right away.
func TestWindowEndPastByNow(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntimeout: 1m\nminReady: 3s\n")
	if _, err := f.r.Reconcile(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	snap := f.now.Add(2 * time.Second)
	f.now = snap
	reads := 0
	f.r.Now = func() time.Time { // the snapshot at 2s; the pass's clock at 4s, past the window
		reads++
		if reads == 1 {
			return snap
		}
		return snap.Add(2 * time.Second)
	}
	res, err := f.r.Reconcile(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > time.Millisecond {
		t.Errorf("RequeueAfter %s; want a pass right away (1ms)", res.RequeueAfter)
	}
}

// TestTaskLogsKeepTheNewest: a failed task's last lines longer than what is kept give their
// newest part, saying that earlier ones were cut, and longer than what is read at all, what
// was read, saying so; no line is kept that a cut went through, so no part of a secret is.
func TestTaskLogsKeepTheNewest(t *testing.T) {
	const secret = "hunter2-correct-horse-battery"
	red := newRedactor(nil, map[string]string{"DB_PASSWORD": secret})
	withSecret := "connect postgres://app:" + secret + "@db/app failed\n"
	var b strings.Builder
	for i := 0; b.Len() < logRead; i++ { // the read's end in these lines, or the next one's
		fmt.Fprintf(&b, "line %06d\n", i)
	}
	overRead := b.String()
	// A terminal's stream has no frames: the read's limit falls inside the line of the secret.
	ttyOverRead := strings.Repeat(strings.Repeat("t", 99)+"\n", (logRead-30)/100)
	ttyOverRead += strings.Repeat("u", logRead-30-len(ttyOverRead)) + "\n"
	for _, tc := range []struct {
		name  string
		log   string
		tty   bool
		first string // the first line kept
		last  string
	}{
		{"over what is read, a terminal's", ttyOverRead + withSecret + "exiting\n", true, strings.Repeat("t", 99), "(logs cut short: the last 20 lines are over 4 MiB; these are the last read)"},
		{"a long line first", strings.Repeat("x", logKeep+100) + "\nerror\nexiting\n", false,
			"(earlier lines cut: the last 20 lines are over 256 KiB)", "exiting"},
		{"the keep's cut through a secret", strings.Repeat("y", 10) + withSecret[:30] + withSecret[30:] + strings.Repeat("z", logKeep-len(withSecret)+30) + "\nexiting\n", false,
			"(earlier lines cut: the last 20 lines are over 256 KiB)", "exiting"},
		{"over what is read", overRead + withSecret + "exiting\n", false, "line ", "(logs cut short: the last 20 lines are over 4 MiB; these are the last read)"},
		{"the keep starting on a line", strings.Repeat("A", 100) + "\nKEEP" + strings.Repeat("k", logKeep-19*13000-5) + "\n" + strings.Repeat(strings.Repeat("B", 12999)+"\n", 19), false,
			"KEEP" + strings.Repeat("k", logKeep-19*13000-5), strings.Repeat("B", 12999)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEngine()
			e.taskLog, e.taskLogTTY = func(string) string { return tc.log }, tc.tty
			lines := taskLogs(t.Context(), e, swarm.Task{ID: "t1", Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{TTY: tc.tty}}}, red)
			same := func(got, want string) bool { // a long line is kept cut; "line " is any of overRead's
				return got == want || len(want) > logLineMax && got == want[:logLineMax]+" [cut]" || want == "line " && strings.HasPrefix(got, want)
			}
			if len(lines) < 3 || !same(lines[0], tc.first) || !same(lines[len(lines)-1], tc.last) {
				t.Fatalf("kept %d lines: %.80q ... %.80q; want %.80q ... %.80q", len(lines), lines[0], lines[len(lines)-1], tc.first, tc.last)
			}
			for _, l := range lines {
				for i := 0; i+6 <= len(secret); i++ {
					if strings.Contains(l, secret[i:i+6]) {
						t.Fatalf("a part of the secret is kept: %.80q", l)
					}
				}
			}
		})
	}
}

// TestRedactorLinesOfAnInsertedSecret: a secret of several lines inserted with
// `reconciler secret insert` (its line fingerprints on it) is redacted a line at a time.
func TestRedactorLinesOfAnInsertedSecret(t *testing.T) {
	pem := []byte("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----")
	fp, err := manifests.NewFingerprint(pem)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := manifests.LineFingerprints(pem)
	if err != nil {
		t.Fatal(err)
	}
	r := newRedactor([]swarm.Secret{{Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Labels: map[string]string{
		manifests.LabelFingerprint: fp, manifests.LabelLineFingerprints: lines}}}}}, nil)
	for in, want := range map[string]string{
		"bad key: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC": "bad key: [redacted]",
		"BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj":          "[redacted]",
		"-----END PRIVATE KEY-----":                 "[redacted]",
		"nothing here":                              "nothing here",
	} {
		if got := r.line(in); got != want {
			t.Errorf("line(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNoReadyOnATaskItsNodeSawExit: a loaded node's agent reports a task's end seconds late;
// the managers list the crash-looping task as running past the stability window. The
// engine's own node knows its container exited: not Ready, whatever the managers say (a wrong
// Ready seen on CI, which then left the app Degraded for good instead of Failed). The node is
// asked by an inspect, which waits while dockerd handles an exit (under the container's lock:
// containerd's task deleted, the log streams drained, 2 s at most) where a container list
// still says running (a list before the Ready said running on CI, 2 s after the exit).
func TestNoReadyOnATaskItsNodeSawExit(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\nminReady: 5s\ntimeout: 1m\n")
	if st := f.pass("a"); st.Phase == spec.PhaseReady {
		t.Fatalf("Ready at once: %s", st.Message)
	}
	f.engine.mu.Lock()
	f.engine.exitedLocally = map[string]bool{}
	for _, tk := range f.engine.tasks {
		if cs := tk.Status.ContainerStatus; cs != nil && tk.Status.State == swarm.TaskStateRunning {
			f.engine.exitedLocally[cs.ContainerID] = true
		}
	}
	f.engine.mu.Unlock()
	if len(f.engine.exitedLocally) == 0 {
		t.Fatal("no running task with a container: the case does not arise")
	}
	seen, _ := f.stepPasses("a", time.Second, 10*time.Second)
	for _, st := range seen {
		if st.Phase == spec.PhaseReady {
			t.Fatalf("Ready while the node knows the task's container exited: %s", st.Message)
		}
	}
	if last := seen[len(seen)-1]; !strings.Contains(last.Message, "exited (exit code 3") {
		t.Errorf("last: %s %q; want it to say the container exited with code 3", last.Phase, last.Message)
	}
}

// TestLocalTruthOnlyWhereAReadyIsAtStake: the node's containers are asked about once, by the
// pass that would write Ready, not by every pass of a waiting app (at N = 100 on a busy
// engine, a call more in each pass of each waiting app slowed every Ready), and never again
// once Ready: one inspect for the app's one local task.
func TestLocalTruthOnlyWhereAReadyIsAtStake(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\nminReady: 5s\ntimeout: 1m\n")
	seen, _ := f.stepPasses("a", time.Second, 10*time.Second)
	if last := seen[len(seen)-1]; last.Phase != spec.PhaseReady || len(seen) < 4 {
		t.Fatalf("after %d passes: %s %q; want Ready after the window's waiting passes", len(seen), last.Phase, last.Message)
	}
	f.pass("a")
	f.engine.mu.Lock()
	defer f.engine.mu.Unlock()
	if n := strings.Count(strings.Join(f.engine.calls, "\n"), "inspect container"); n != 1 {
		t.Errorf("%d container calls in %d passes; want 1, by the pass that wrote Ready", n, len(seen)+1)
	}
}

// TestRedactorValueWithTrailingNewline: a spec env secret written as a YAML block (`|`), whose
// value ends in a newline, is redacted where a log line shows it: a line never holds the
// newline, and its one line is too short to be found as a line of several.
func TestRedactorValueWithTrailingNewline(t *testing.T) {
	r := newRedactor(nil, map[string]string{"DB_PASSWORD": "hunt3r\n", "API_TOKEN": "t0k3n\r\n"})
	for in, want := range map[string]string{
		"login with hunt3r failed": "login with [redacted] failed",
		"token t0k3n refused":      "token [redacted] refused",
	} {
		if got := r.line(in); got != want {
			t.Errorf("line(%q) = %q, want %q", in, got, want)
		}
	}
}
