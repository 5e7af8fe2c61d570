package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/swarm-reconciler/reconciler/controller"
	"github.com/swarm-reconciler/reconciler/spec"
)

// TestEveryCommandHasAnExample: `--help` of every command, cobra's help and completion
// included, shows at least one example.
func TestEveryCommandHasAnExample(t *testing.T) {
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		seen++
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("command %q has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(&options{}))
	if seen < 16 {
		t.Errorf("walked %d commands; want run, once, janitor, render, status, wait, apply, delete, validate, version, help, completion and its 4 shells", seen)
	}
}

// cli runs the command line args against fresh directories under dir and returns stdout,
// stderr and the exit code main would use.
type cliEnv struct {
	t                    *testing.T
	specs, status, files string
}

func newCLIEnv(t *testing.T) *cliEnv {
	dir := t.TempDir()
	e := &cliEnv{t: t, specs: filepath.Join(dir, "specs"), status: filepath.Join(dir, "status"), files: filepath.Join(dir, "files")}
	for _, d := range []string{e.specs, e.status, e.files} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *cliEnv) run(ctx context.Context, args ...string) (stdout, stderr string, code int, err error) {
	root := newRoot(&options{})
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	if args[0] != "--version" {
		args = append(args, "--specs", e.specs, "--status", e.status, "--recipes", e.files)
	}
	root.SetArgs(args)
	c, err := root.ExecuteContextC(ctx)
	if err != nil {
		code = exitCode(c, err)
	}
	return out.String(), errOut.String(), code, err
}

// specFile writes a spec for app outside the spec directory and returns its path and generation.
func (e *cliEnv) specFile(app, body string) (string, string) {
	path := filepath.Join(e.files, app+".yml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return path, spec.Generation([]byte(body))
}

func (e *cliEnv) writeStatus(app, gen string, phase spec.Phase, msg string) {
	first := time.Now().Add(-90 * time.Second)
	st := &spec.Status{App: app, ObservedGeneration: gen, Phase: phase, Message: msg, Recipe: "custom-html",
		Version: "1.7.1+1.27.2", Tier: spec.TierInstall, Domain: app + ".example.org", Stack: app + "_example_org",
		Deploys: 1, FirstDeployedAt: &first, UpdatedAt: time.Now()}
	if err := spec.WriteStatus(e.status, st); err != nil {
		e.t.Fatal(err)
	}
}

const body = "recipe: custom-html\nversion: 1.7.1+1.27.2\n"

// TestWaitWithoutReconciler: wait (and apply --wait) with nobody updating the status time
// out with exit 2 and say that no reconciler updated the status.
func TestWaitWithoutReconciler(t *testing.T) {
	e := newCLIEnv(t)
	path, _ := e.specFile("ch-1", body)

	_, _, code, err := e.run(context.Background(), "apply", path, "--wait", "--timeout", "300ms")
	if code != exitTimeout || !strings.Contains(err.Error(), "no reconciler updated the status") {
		t.Errorf("apply --wait, no status file: exit %d, %v; want exit 2 saying no reconciler updated the status", code, err)
	}

	// A status of an older generation: still nobody has reported on this one.
	e.writeStatus("ch-1", "sha256:0123", spec.PhaseReady, "old")
	_, _, code, err = e.run(context.Background(), "wait", "ch-1", "--timeout", "300ms")
	if code != exitTimeout || !strings.Contains(err.Error(), "no reconciler updated the status for the current spec") {
		t.Errorf("wait, status of an older spec: exit %d, %v; want exit 2 saying no reconciler updated the status", code, err)
	}

	// delete --wait: the spec goes, the status stays Ready.
	stdout, stderr, code, err := e.run(context.Background(), "delete", "ch-1", "--wait", "--timeout", "300ms")
	if code != exitTimeout || !strings.Contains(err.Error(), "no reconciler updated its status since the spec was deleted") {
		t.Errorf("delete --wait: exit %d, %v; want exit 2 saying no reconciler updated the status", code, err)
	}
	if !strings.Contains(stderr, "ch-1 deleted") || stdout != "" {
		t.Errorf("delete --wait: stdout %q stderr %q", stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(e.specs, "ch-1.yml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("spec still there after delete: %v", err)
	}

	// wait --for deleted against a status directory that is not there (RECONCILER_STATUS not
	// set where the reconciler runs with it): no status file would count as deleted.
	e.status = filepath.Join(e.files, "no-such-status")
	_, _, code, err = e.run(context.Background(), "wait", "ch-1", "--for", "deleted", "--timeout", "300ms")
	if code != exitNoWait || err == nil || !strings.Contains(err.Error(), "pass --status DIR") {
		t.Errorf("wait --for deleted, no status directory: exit %d, %v; want exit %d saying to pass --status", code, err, exitNoWait)
	}
}

// TestApplyWaitPrintsPhaseChanges: one line per phase change of the current spec, then the
// exit code of the final phase.
func TestApplyWaitPrintsPhaseChanges(t *testing.T) {
	for _, tc := range []struct {
		final spec.Phase
		code  int
	}{{spec.PhaseReady, 0}, {spec.PhaseFailed, 1}, {spec.PhaseInvalid, 1}, {spec.PhaseExpired, 1}, {spec.PhaseSuspended, 1}} {
		t.Run(string(tc.final), func(t *testing.T) {
			e := newCLIEnv(t)
			path, gen := e.specFile("ch-2", body)
			e.writeStatus("ch-2", "sha256:old", spec.PhaseReady, "an older spec: never printed")
			done := make(chan struct{})
			go func() {
				defer close(done)
				for _, p := range []spec.Phase{spec.PhasePending, spec.PhaseDeploying, spec.PhaseDeploying, tc.final} {
					time.Sleep(3 * waitPoll)
					e.writeStatus("ch-2", gen, p, "now "+string(p))
				}
			}()
			stdout, _, code, err := e.run(context.Background(), "apply", path, "--wait", "--timeout", "20s")
			<-done
			if code != tc.code {
				t.Fatalf("exit %d (%v), want %d", code, err, tc.code)
			}
			if tc.code == 1 && !strings.Contains(err.Error(), "now "+string(tc.final)) {
				t.Errorf("error %q does not carry the status message", err)
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			want := []string{"Pending", "Deploying", string(tc.final)}
			if len(lines) != len(want) {
				t.Fatalf("want one line per phase change %v, got:\n%s", want, stdout)
			}
			for i, line := range lines {
				f := strings.Fields(line)
				if len(f) < 3 || f[1] != want[i] || !strings.HasSuffix(line, "now "+want[i]) {
					t.Errorf("line %d %q: want time, %s, message", i, line, want[i])
				}
				if _, err := time.Parse(time.RFC3339, f[0]); err != nil {
					t.Errorf("line %d %q: %v", i, line, err)
				}
			}
		})
	}
}

// TestDeleteWait: lines for the teardown only, exit 0 once Deleted.
func TestDeleteWait(t *testing.T) {
	e := newCLIEnv(t)
	path, gen := e.specFile("ch-3", body)
	if _, _, code, err := e.run(context.Background(), "apply", path); code != 0 {
		t.Fatal(err)
	}
	e.writeStatus("ch-3", gen, spec.PhaseReady, "up")
	go func() {
		time.Sleep(3 * waitPoll)
		e.writeStatus("ch-3", gen, spec.PhaseDeleting, "removing: service x")
		time.Sleep(3 * waitPoll)
		e.writeStatus("ch-3", gen, spec.PhaseDeleted, "nothing left")
	}()
	stdout, _, code, err := e.run(context.Background(), "delete", "ch-3", "--wait", "--timeout", "20s")
	if code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	if !regexp.MustCompile(`(?m)^\S+\s+Deleting\s+removing: service x\n\S+\s+Deleted\s+nothing left\n$`).MatchString(stdout) {
		t.Errorf("want a Deleting and a Deleted line, got:\n%s", stdout)
	}
	// Deleting what is gone is not an error.
	if _, stderr, code, err := e.run(context.Background(), "delete", "ch-3", "--wait", "--timeout", "1s"); code != 0 || !strings.Contains(stderr, "already deleted") {
		t.Errorf("second delete: exit %d %v %q", code, err, stderr)
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// TestStatusTable: columns of the table and of -o wide, aligned with and without colours.
func TestStatusTable(t *testing.T) {
	now := time.Now()
	first := now.Add(-3*time.Hour - 5*time.Minute)
	all := []*spec.Status{
		{App: "a", Recipe: "custom-html", Version: "1.7.1+1.27.2", Tier: spec.TierInstall, Phase: spec.PhaseReady,
			FirstDeployedAt: &first, Message: "all 1 services running", ObservedGeneration: "sha256:0123456789abcdef0123",
			Domain: "a.example.org", Stack: "a_example_org", Deploys: 2, UpdatedAt: now.Add(-10 * time.Second)},
		{App: "invalid-app", Phase: spec.PhaseInvalid, Message: "spec.yml:3: unknown field \"bogus\"\nsecond line",
			History: []spec.HistoryEntry{{Time: now.Add(-30 * time.Second), Phase: spec.PhaseInvalid}}},
	}
	plain := new(bytes.Buffer)
	if err := statusTable(all, false, now).write(plain, false); err != nil {
		t.Fatal(err)
	}
	want := "APP           RECIPE        VERSION        TIER      PHASE     AGE    MESSAGE\n" +
		"a             custom-html   1.7.1+1.27.2   install   Ready     3h5m   all 1 services running\n" +
		"invalid-app   -             -              -         Invalid   30s    spec.yml:3: unknown field \"bogus\" second line\n"
	if plain.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", plain, want)
	}
	coloured := new(bytes.Buffer)
	if err := statusTable(all, false, now).write(coloured, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(coloured.String(), "\x1b[32mReady\x1b[0m") || !strings.Contains(coloured.String(), "\x1b[31mInvalid\x1b[0m") {
		t.Errorf("no phase colours:\n%q", coloured)
	}
	if ansi.ReplaceAllString(coloured.String(), "") != plain.String() {
		t.Errorf("colours change the layout:\n%s", coloured)
	}

	wide := new(bytes.Buffer)
	if err := statusTable(all, true, now).write(wide, false); err != nil {
		t.Fatal(err)
	}
	header := strings.Fields(strings.SplitN(wide.String(), "\n", 2)[0])
	if strings.Join(header, " ") != "APP RECIPE VERSION TIER PHASE AGE DOMAIN STACK DEPLOYS GENERATION UPDATED MESSAGE" {
		t.Errorf("wide header %v", header)
	}
	if !hasLine(wide.String(), "a.example.org", "a_example_org", " 2 ", "0123456789ab ", "10s ago") {
		t.Errorf("wide:\n%s", wide)
	}
}

func hasLine(text string, words ...string) bool {
	for _, line := range strings.Split(text, "\n") {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			return true
		}
	}
	return false
}

// TestStatusCommand: table, wide, json for all and for one app; errors that say what to do.
func TestStatusCommand(t *testing.T) {
	e := newCLIEnv(t)
	ctx := context.Background()
	stdout, stderr, code, _ := e.run(ctx, "status")
	if code != 0 || stdout != "" || !strings.Contains(stderr, "No apps") {
		t.Errorf("empty: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	if stdout, _, _, _ = e.run(ctx, "status", "-o", "json"); strings.TrimSpace(stdout) != "[]" {
		t.Errorf("empty json: %q", stdout)
	}
	e.writeStatus("b", "sha256:1", spec.PhaseFailed, "image x is not present")
	e.writeStatus("a", "sha256:2", spec.PhaseReady, "ok")
	stdout, _, code, _ = e.run(ctx, "status")
	if code != 0 || !hasLine(stdout, "a ", "custom-html", "Ready", "90s", "ok") || !hasLine(stdout, "b ", "Failed", "image x") || strings.Contains(stdout, "\x1b") {
		t.Errorf("table: exit %d\n%s", code, stdout)
	}
	stdout, _, _, _ = e.run(ctx, "status", "-o", "json")
	var list []spec.Status
	if err := json.Unmarshal([]byte(stdout), &list); err != nil || len(list) != 2 || list[0].App != "a" || list[1].Phase != spec.PhaseFailed {
		t.Errorf("json list: %v\n%s", err, stdout)
	}
	stdout, _, _, _ = e.run(ctx, "status", "b", "-o", "json")
	var one spec.Status
	if err := json.Unmarshal([]byte(stdout), &one); err != nil || one.App != "b" {
		t.Errorf("json one: %v\n%s", err, stdout)
	}
	if stdout, _, _, _ = e.run(ctx, "status", "b", "-o", "wide"); !hasLine(stdout, "b_example_org", "Failed") {
		t.Errorf("wide one:\n%s", stdout)
	}
	if _, _, code, err := e.run(ctx, "status", "-o", "yaml"); code != 1 || !strings.Contains(err.Error(), "use table, wide or json") {
		t.Errorf("-o yaml: %d %v", code, err)
	}
	if _, _, code, err := e.run(ctx, "status", "nope"); code != 1 || !strings.Contains(err.Error(), "no spec for it") {
		t.Errorf("unknown app: %d %v", code, err)
	}
	path, _ := e.specFile("c", body)
	e.run(ctx, "apply", path)
	if _, _, code, err := e.run(ctx, "status", "c"); code != 1 || !strings.Contains(err.Error(), "no reconciler has reported on it") {
		t.Errorf("app without status: %d %v", code, err)
	}
}

func TestHumanAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 0: "0s", 59 * time.Second: "59s", 119 * time.Second: "119s", 2 * time.Minute: "2m",
		5*time.Minute + 10*time.Second: "5m10s", 45 * time.Minute: "45m", 3*time.Hour + 5*time.Minute: "3h5m",
		20 * time.Hour: "20h", 50 * time.Hour: "2d2h", 30 * 24 * time.Hour: "30d", 3 * 365 * 24 * time.Hour: "3y",
	} {
		if got := humanAge(d); got != want {
			t.Errorf("humanAge(%s) = %s, want %s", d, got, want)
		}
	}
}

func TestVersion(t *testing.T) {
	e := newCLIEnv(t)
	stdout, _, code, err := e.run(context.Background(), "version")
	if code != 0 || !strings.Contains(stdout, "version:") || !strings.Contains(stdout, "go:       go1.") {
		t.Errorf("version: %d %v\n%s", code, err, stdout)
	}
	stdout, _, _, _ = e.run(context.Background(), "version", "-o", "json")
	var b buildInfo
	if err := json.Unmarshal([]byte(stdout), &b); err != nil || b.GoVersion == "" || b.Version == "" {
		t.Errorf("version -o json: %v\n%s", err, stdout)
	}
	stdout, _, _, _ = e.run(context.Background(), "--version")
	if !strings.HasPrefix(stdout, "reconciler ") {
		t.Errorf("--version: %q", stdout)
	}
}

// TestWebViewFlags: the web view's flags are checked before anything starts (no engine is
// needed to be told): no view beyond loopback without a password file, no password file
// without a view, and a password file must hold bcrypt hashes.
func TestWebViewFlags(t *testing.T) {
	e := newCLIEnv(t)
	plain := filepath.Join(e.files, "plain")
	if err := os.WriteFile(plain, []byte("ops:hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--ui-addr", "0.0.0.0:9091"}, "listens beyond this host"},
		{[]string{"run", "--ui-basic-auth", plain}, "--ui-basic-auth needs --ui-addr"},
		{[]string{"run", "--ui-addr", "0.0.0.0:9091", "--ui-basic-auth", plain}, "not a bcrypt hash"},
		{[]string{"run", "--ui-addr", "10.1.2.3:9091", "--ui-basic-auth", filepath.Join(e.files, "missing")}, "no such file"},
	} {
		_, _, code, err := e.run(t.Context(), tc.args...)
		if code == 0 || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: exit %d, %v; want an error saying %q", tc.args, code, err, tc.want)
		}
	}
}

// TestWebViewOnTheMetricsAddress: --ui-addr equal to --metrics-addr hands the view to the
// metrics server (one port serves both), which serves it on every path but its own.
func TestWebViewOnTheMetricsAddress(t *testing.T) {
	e := newCLIEnv(t)
	e.writeStatus("shop", "sha256:1", spec.PhaseReady, "1/1 services converged")
	o := &options{status: e.status, specs: e.specs, uiAddr: "127.0.0.1:9", metricsAddr: "127.0.0.1:9"}
	h, err := startWebView(t.Context(), o, nil, logr.Discard())
	if err != nil || h == nil {
		t.Fatalf("startWebView = %v, %v; want the view's handler for the metrics server", h, err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/apps/shop", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "1/1 services converged") {
		t.Errorf("GET /apps/shop = %d\n%s", rec.Code, rec.Body.String())
	}
}

// TestLeaseTiming: flags that would let a cut-off leader act after another replica may take
// the lease are refused, naming the sum; the defaults pass with a second to spare.
func TestLeaseTiming(t *testing.T) {
	for _, tc := range []struct {
		lease, renew, retry time.Duration
		refused             string
	}{
		{15 * time.Second, 10 * time.Second, time.Second, ""},
		{15 * time.Second, 14 * time.Second, time.Second, "= 18s after its last renew"},
		{15 * time.Second, 11 * time.Second, time.Second, "= 15s after its last renew"},
		{10 * time.Second, 10 * time.Second, time.Second, "< --lease-duration"},
		{15 * time.Second, 5 * time.Second, 5 * time.Second, "< --lease-renew-deadline"},
		{15 * time.Second, 10 * time.Second, 0, "0 <"},
		{15500 * time.Millisecond, 10 * time.Second, time.Second, "whole seconds"},
		// Passes the sum, but client-go refuses a renew deadline within 1.2 retry periods
		// (its jitter) only once the replica runs, naming no flag.
		{20 * time.Second, 5500 * time.Millisecond, 5 * time.Second, "--lease-renew-deadline (5.5s) must be more than 1.2 times"},
	} {
		err := leaseTiming(tc.lease, tc.renew, tc.retry)
		if tc.refused == "" && err != nil || tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)) {
			t.Errorf("lease %s, renew %s, retry %s: %v, want refused %q", tc.lease, tc.renew, tc.retry, err, tc.refused)
		}
	}
}

// TestRequestOutcomeAfterALaterRun: backup --wait finds its request handled while lastBackup
// already shows a later run (a scheduled backup right after it); the request's own outcome is
// read from the store: a backup made on request since the request was written, or none.
func TestRequestOutcomeAfterALaterRun(t *testing.T) {
	token := time.Date(2026, 1, 1, 10, 59, 59, 0, time.UTC)
	later := &spec.BackupRun{ID: spec.NewBackupID(token.Add(time.Minute)), Trigger: "schedule"}
	for _, tc := range []struct {
		name    string
		trigger string
		request string
		at      time.Time
		code    int
	}{
		{"made for the request", "request", token.Format(time.RFC3339Nano), token.Add(time.Second), 0},
		{"another request's", "request", "2026-01-01T10:00:00Z", token.Add(time.Second), exitFailed},
		{"a scheduled one", "schedule", "", token.Add(time.Second), exitFailed},
	} {
		o := &options{backups: t.TempDir()}
		p, err := spec.BackupStore{Dir: o.backups}.Begin("a", spec.NewBackupID(tc.at), "o1")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Commit(&spec.BackupManifest{App: "a", ID: spec.NewBackupID(tc.at), Trigger: tc.trigger, Request: tc.request, Time: tc.at}); err != nil {
			t.Fatal(err)
		}
		cmd := &cobra.Command{}
		var out bytes.Buffer
		cmd.SetOut(&out)
		err = requestOutcome(cmd, o, "a", token.Format(time.RFC3339Nano), later)
		code := 0
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else if err != nil {
			code = -1
		}
		if code != tc.code {
			t.Errorf("%s: exit %d (%v, %q), want %d", tc.name, code, err, out.String(), tc.code)
		}
	}
}

// TestWaitsEndWhenTheSpecGoes: apply --wait, and backup --wait, end with exit 1 saying so when
// the spec is deleted (or, for a request, replaced by one without it) while they wait, instead
// of running to their timeout.
func TestWaitsEndWhenTheSpecGoes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   func(e *cliEnv, path string) []string
		change func(e *cliEnv, path string)
		want   string
	}{
		{"apply --wait, spec deleted", func(_ *cliEnv, path string) []string { return []string{"apply", path, "--wait", "--timeout", "20s"} },
			func(e *cliEnv, _ string) { _ = spec.Unplace(e.specs, "ch-3") }, "was deleted while waiting"},
		{"backup --wait, spec deleted", func(*cliEnv, string) []string { return []string{"backup", "ch-3", "--wait", "--timeout", "20s"} },
			func(e *cliEnv, _ string) { _ = spec.Unplace(e.specs, "ch-3") }, "its spec was deleted before the request was carried out"},
		{"backup --wait, spec replaced", func(*cliEnv, string) []string { return []string{"backup", "ch-3", "--wait", "--timeout", "20s"} },
			func(e *cliEnv, path string) {
				if _, _, code, err := e.run(context.Background(), "apply", path); code != 0 {
					t.Error(err)
				}
			}, "replaced by one without the request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCLIEnv(t)
			path, _ := e.specFile("ch-3", body)
			if !strings.HasPrefix(tc.name, "apply") {
				if _, _, code, err := e.run(context.Background(), "apply", path); code != 0 {
					t.Fatal(err)
				}
			}
			go func() {
				time.Sleep(5 * waitPoll)
				tc.change(e, path)
			}()
			_, _, code, err := e.run(context.Background(), tc.args(e, path)...)
			if code != exitFailed || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("exit %d: %v; want exit 1 saying %q (a timeout is exit 2)", code, err, tc.want)
			}
		})
	}
}

// TestLeaseRefusal: the janitor does not run beside any live lease; once does not run beside
// its own owner's replicas (it would act on their apps with their leader), and runs beside
// another owner's.
func TestLeaseRefusal(t *testing.T) {
	lease := func(owner string) string {
		return controller.LeaseName(owner) + " (held by r1, renewed 2026-12-03T10:00:00Z)"
	}
	for _, tc := range []struct {
		command string
		live    []string
		want    string
	}{
		{"janitor", nil, ""},
		{"janitor", []string{lease("x")}, "the janitor sweeps what no running reconciler holds"},
		{"once", nil, ""},
		{"once", []string{lease("x"), lease("ci2")}, ""},
		{"once", []string{lease("x"), lease("ci")}, "replicas of owner ci lead on this swarm (" + lease("ci") + "): once would act"},
		{"run", []string{lease("x"), lease("ci")}, "replicas of owner ci lead on this swarm (" + lease("ci") + "): run would act"},
	} {
		err := leaseRefusal(tc.live, "ci", tc.command)
		var ee *exitError
		if tc.want == "" && err != nil || tc.want != "" && (!errors.As(err, &ee) || ee.code != exitFailed || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s beside %v: %v, want %q", tc.command, tc.live, err, tc.want)
		}
	}
}

// TestRequestOfTheDeployedHolder: two specs map to one stack; the one deployed there (its
// status says so) holds it for the reconciler, whatever the files' age, so a backup request
// for it is recorded, and one for the other is refused naming the holder.
func TestRequestOfTheDeployedHolder(t *testing.T) {
	e := newCLIEnv(t)
	for i, app := range []string{"first", "holder"} {
		if err := spec.Place(e.specs, app, []byte(body+"domain: shop.example.org\n")); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(time.Duration(i-2) * time.Hour) // the holder's file is the newer: edited since
		if err := os.Chtimes(filepath.Join(e.specs, app+".yml"), at, at); err != nil {
			t.Fatal(err)
		}
	}
	e.writeStatus("holder", "sha256:1", spec.PhaseReady, "ok")
	st, _ := spec.ReadStatus(e.status, "holder")
	st.Domain, st.Stack = "shop.example.org", "shop_example_org"
	if err := spec.WriteStatus(e.status, st); err != nil {
		t.Fatal(err)
	}
	if _, _, code, err := e.run(context.Background(), "backup", "holder"); code != 0 {
		t.Errorf("backup of the deployed holder: exit %d, %v", code, err)
	}
	if _, _, code, err := e.run(context.Background(), "backup", "first"); code == 0 || !strings.Contains(err.Error(), `app "holder"`) {
		t.Errorf("backup of the other: exit %d, %v; want refused naming holder", code, err)
	}
}

// TestBackupWaitThroughAReplacedSpec: a spec replaced while the reconciler runs the request's
// backup does not undo the request: backup --wait waits for its end and reports it. A run of
// it cut short (Failed, the request not handled: made again only while the spec asks) is not
// waited for: the wait ends saying the request is gone.
func TestBackupWaitThroughAReplacedSpec(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state spec.RunState
		code  int
		want  string
	}{{"running", spec.RunRunning, 0, "completed: 2 files"}, {"cut short", spec.RunFailed, exitFailed, "replaced by one without the request"}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCLIEnv(t)
			path, _ := e.specFile("ch-4", body)
			if _, _, code, err := e.run(context.Background(), "apply", path); code != 0 {
				t.Fatal(err)
			}
			go func() {
				token := ""
				for token == "" {
					time.Sleep(waitPoll)
					if d, err := spec.LoadApp(e.specs, "ch-4", spec.Defaults{}); err == nil && d != nil && d.Spec != nil && d.Spec.Backup != nil {
						token = d.Spec.Backup.RequestedAt
					}
				}
				e.writeStatus("ch-4", "sha256:2", spec.PhaseReady, "backing up as requested")
				st, _ := spec.ReadStatus(e.status, "ch-4")
				st.LastBackup = &spec.BackupRun{ID: "20261203T100000.000Z", Trigger: "request", Request: token, State: tc.state, Started: time.Now()}
				_ = spec.WriteStatus(e.status, st)
				if _, _, code, err := e.run(context.Background(), "apply", path); code != 0 { // the request is gone from the spec
					t.Error(err)
				}
				if tc.state != spec.RunRunning {
					return
				}
				time.Sleep(5 * waitPoll)
				done := time.Now()
				st.LastHandledBackupAt, st.LastBackup.State, st.LastBackup.Finished, st.LastBackup.Message = token, spec.RunCompleted, &done, "2 files"
				_ = spec.WriteStatus(e.status, st)
			}()
			stdout, _, code, err := e.run(context.Background(), "backup", "ch-4", "--wait", "--timeout", "20s")
			if code != tc.code || !(strings.Contains(stdout, tc.want) || err != nil && strings.Contains(err.Error(), tc.want)) {
				t.Errorf("backup --wait through a replaced spec: exit %d, %v, %q; want exit %d with %q", code, err, stdout, tc.code, tc.want)
			}
		})
	}
}

// TestOwnerName: --owner goes into labels and backup file names: no path, and not the
// janitor's own label, (janitor).
func TestOwnerName(t *testing.T) {
	e := newCLIEnv(t)
	for _, tc := range []struct {
		owner string
		ok    bool
	}{{"ci-1", true}, {"CI", true}, {"ci..1", true}, {"(janitor)", false}, {"a/b", false}, {"../x", false}, {"/../../x", false}, {"..", false}} {
		_, _, code, err := e.run(t.Context(), "status", "--owner", tc.owner)
		if tc.ok != (code == 0) || !tc.ok && (err == nil || !strings.Contains(err.Error(), "--owner")) {
			t.Errorf("--owner %q: exit %d, err %v; want accepted %v", tc.owner, code, err, tc.ok)
		}
	}
}

// TestWaitCouldNotIsNotFailed: wait exits 3 when it could not wait (an unknown --for, a flag,
// an argument too many, a bad duration), not the 1 that says the app failed.
func TestWaitCouldNotIsNotFailed(t *testing.T) {
	e := newCLIEnv(t)
	for _, args := range [][]string{{"wait", "ch-1", "--for", "redy"}, {"wait", "ch-1", "--no-such-flag"}, {"wait", "ch-1", "ch-2"}, {"wait", "ch-1", "--timeout", "soon"}} {
		if _, _, code, err := e.run(context.Background(), args...); code != exitNoWait || err == nil {
			t.Errorf("%v: exit %d (%v); want %d", args, code, err, exitNoWait)
		}
	}
}

// TestDiffFailedIsNotDrift: diff exits 1 only for changes pending; a diff it could not make (a
// spec that does not parse, no recipe, no engine, a flag or an argument too many) exits 2, as
// kubectl diff exits above 1.
func TestDiffFailedIsNotDrift(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/reconciler-test.sock")
	e := newCLIEnv(t)
	good, _ := e.specFile("ch-d", body)
	bad, _ := e.specFile("ch-b", "recipe: [\n")
	for _, args := range [][]string{{"diff", good}, {"diff", bad}, {"diff", good, "--no-such-flag"}, {"diff", good, bad}} {
		if _, _, code, err := e.run(context.Background(), args...); code != exitDiffFailed || err == nil {
			t.Errorf("%v: exit %d (%v); want %d with the error", args, code, err, exitDiffFailed)
		}
	}
}
