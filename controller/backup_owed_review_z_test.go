package controller

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/spec"
)

// TestOwedRetryEndsAtTTLExpiry: an app Failed by an interrupted restore that still owes a
// post-hook is reaped by its ttl (a Failed app is reaped too). Expired is a teardown: the
// containers the pre-hook changed are gone. The owed retry must end there, not go on every
// 10 s with its note in the Expired message and the app never settled (review Z1).
func TestOwedRetryEndsAtTTLExpiry(t *testing.T) {
	f, _, _ := killedInMaintenance(t, swarm.TaskStateReady)
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || len(stillOwedPostHooks(st)) == 0 {
		t.Fatalf("setup: %s %s", st.Phase, st.Message)
	}
	// The spec gets a ttl (or had one): a new attempt of the same app; the ttl passes.
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+1\nttl: 1h\nbackup: {requestedAt: r1, restore: {requestedAt: r2}}\n")
	f.settle("a")
	f.now = f.now.Add(2 * time.Hour)
	st = f.settleAs("a", spec.PhaseExpired, time.Minute, 20)
	if st.Phase != spec.PhaseExpired {
		t.Fatalf("not expired: %s %s", st.Phase, st.Message)
	}
	f.now = f.now.Add(time.Minute)
	res, err := f.r.Reconcile(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	st, _ = spec.ReadStatus(f.r.StatusDir, "a")
	d, _ := f.r.loadSpec("a")
	t.Logf("expired: %q; owed %q; requeue %s; settled %v", st.Message, stillOwedPostHooks(st), res.RequeueAfter, settled(d, nil, st, f.now, 0))
	if res.RequeueAfter == owedRetry || strings.Contains(st.Message, postHooksNote) || len(stillOwedPostHooks(st)) > 0 || !settled(d, nil, st, f.now, 0) {
		t.Errorf("an Expired (torn down) app still retries its owed post-hook every %s, for good: message %q, owed %q", res.RequeueAfter, st.Message, stillOwedPostHooks(st))
	}
}

// TestOwedPostHookNotRunInTheMovedStack: a domain change is a move: a new stack, with new
// (empty) volumes, and the old stack, whose container the pre-hook changed, torn down. The
// post-hook an interrupted restore still owes must not run in the new stack's container
// (review Z2).
func TestOwedPostHookNotRunInTheMovedStack(t *testing.T) {
	f, fb, _ := killedInMaintenance(t, swarm.TaskStateReady)
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || len(stillOwedPostHooks(st)) == 0 {
		t.Fatalf("setup: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+1\ndomain: b.example.org\nbackup: {requestedAt: r1, restore: {requestedAt: r2}}\n")
	st = f.settleAs("a", spec.PhaseReady, 10*time.Second, 30)
	t.Logf("after the move: %s %s %q (ran %q)", st.Stack, st.Phase, st.Message, fb.ran)
	for _, r := range fb.ran {
		if strings.HasSuffix(r, ": maint off") && !strings.HasPrefix(r, "a_test_") {
			t.Errorf("the owed post-hook of the old stack's restore ran in the new stack's container: %q", r)
		}
	}
}

// TestOwedPostHookGoneFromTheRecipe: the owed post-hook is no longer in the recipe the app
// now runs (a new version dropped the restore hooks, or renamed the service). Nothing is left
// to run: the service is owed no more, not tried again every 10 s for good (review Z3).
func TestOwedPostHookGoneFromTheRecipe(t *testing.T) {
	f, fb, _ := killedInMaintenance(t, swarm.TaskStateReady)
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || len(stillOwedPostHooks(st)) == 0 {
		t.Fatalf("setup: %s %s", st.Phase, st.Message)
	}
	// Release 1.0.0+2 of the recipe has no restore hooks.
	dir := filepath.Join(f.r.RecipesDir, "bkm")
	compose := strings.ReplaceAll(strings.ReplaceAll(backupCompose, "echo:%s", "echo:1.0.0"), "hello %s", "hello 1.0.0+2")
	compose = strings.Replace(compose, "        backupbot.restore.post-hook: \"load\"\n", "", 1)
	if err := os.WriteFile(filepath.Join(dir, "compose.yml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, dir, "commit", "-qam", "1.0.0+2")
	gitIn(t, dir, "tag", "-a", "1.0.0+2", "-m", "1.0.0+2")
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+2\nbackup: {requestedAt: r1, restore: {requestedAt: r2}}\n")
	if st = f.settleAs("a", spec.PhaseReady, 10*time.Second, 30); st.Phase != spec.PhaseReady {
		t.Fatalf("the release without the hook: %s %s", st.Phase, st.Message)
	}
	n := len(fb.ran)
	var after []time.Duration
	for range 3 {
		f.now = f.now.Add(owedRetry)
		res, err := f.r.Reconcile(t.Context(), "a")
		if err != nil {
			t.Fatal(err)
		}
		after = append(after, res.RequeueAfter)
	}
	st, _ = spec.ReadStatus(f.r.StatusDir, "a")
	t.Logf("%s %q owed %q requeues %v ran %q", st.Phase, st.Message, stillOwedPostHooks(st), after, fb.ran[n:])
	if len(stillOwedPostHooks(st)) > 0 || after[2] == owedRetry {
		t.Errorf("a post-hook the recipe no longer has stays owed: passes every %s for good (%s %q)", after[2], st.Phase, st.Message)
	}
}

// TestRefusedRestoreKeepsTheOwedPostHook: the backup tier's restore killed after its
// pre-hook, no container of the service to run the owed post-hook in (the retry). A
// `reconciler restore` is refused, the app being Failed by the tier (refuseRequests): the
// refusal that replaces lastRestore must carry postHooksOwed over, or the post-hook never
// runs (review Z4).
func TestRefusedRestoreKeepsTheOwedPostHook(t *testing.T) {
	f, fb := newBackupFixture(t, nil)
	makeRecipeOf(t, f.r.RecipesDir, "bkm", maintCompose, "1.0.0+1")
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+1\ntier: backup\n")
	seed(f, fb)
	killedAt(f, "restore pre-hook app")
	between := unhealthyNow(t, f, swarm.TaskStateReady)
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || len(stillOwedPostHooks(st)) == 0 {
		t.Fatalf("setup: %s %s owed %q", st.Phase, st.Message, stillOwedPostHooks(st))
	}
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+1\ntier: backup\nbackup: {restore: {requestedAt: r9}}\n")
	st = f.settle("a")
	t.Logf("after the refused request: %s %q; last restore %q owed %q", st.Phase, st.Message, st.LastRestore.Message, stillOwedPostHooks(st))
	// A container of the service runs again.
	f.engine.mu.Lock()
	for i, tk := range f.engine.tasks {
		if tk.ID == between {
			f.engine.tasks[i].Status = swarm.TaskStatus{State: swarm.TaskStateRunning, Timestamp: f.now, ContainerStatus: &swarm.ContainerStatus{ContainerID: "c-" + tk.ID}}
		}
	}
	f.engine.mu.Unlock()
	f.now = f.now.Add(time.Minute)
	f.settle("a")
	if !slices.Contains(fb.ran, "a_test_app: maint off") {
		t.Errorf("the owed post-hook was dropped by the refused restore request: never ran (ran %q)", fb.ran)
	}
}

// TestTeardownEndsTheOwedRetry: a teardown (spec deleted) ends the retry: the new life's
// containers never get the post-hook (review Z: no test held this before).
func TestTeardownEndsTheOwedRetry(t *testing.T) {
	f, fb, _ := killedInMaintenance(t, swarm.TaskStateReady)
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || len(stillOwedPostHooks(st)) == 0 {
		t.Fatalf("setup: %s %s", st.Phase, st.Message)
	}
	if err := os.Remove(filepath.Join(f.r.SpecsDir, "a.yml")); err != nil {
		t.Fatal(err)
	}
	if st = f.settleAs("a", spec.PhaseDeleted, 10*time.Second, 30); st.Phase != spec.PhaseDeleted {
		t.Fatalf("teardown: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+1\n")
	st = f.settleAs("a", spec.PhaseReady, 10*time.Second, 30)
	if slices.Contains(fb.ran, "a_test_app: maint off") || len(stillOwedPostHooks(st)) > 0 {
		t.Errorf("the earlier life's owed post-hook ran in the new life (ran %q; %s %q)", fb.ran, st.Phase, st.Message)
	}
}

// TestNoStaleSourceCommitAfterAFetchThatDidNotAnswer: the status after a ref fetch that did
// not answer (Deploying, "not fetched yet, retrying") records the new generation; it must not
// keep the previous attempt's sourceCommit, which the next pass (and render, diff, secret
// insert) would take for the new attempt's pinned commit, deploying the old ref's commit for
// the new ref for good (review Z7).
func TestNoStaleSourceCommitAfterAFetchThatDidNotAnswer(t *testing.T) {
	f := newFixture(t)
	forks := t.TempDir()
	makeRecipe(t, forks, "echo", "1.0.0+1")
	dir := filepath.Join(forks, "echo")
	gitIn(t, dir, "commit", "-q", "--allow-empty", "-m", "pull request 1")
	gitIn(t, dir, "update-ref", "refs/pull/1/head", "HEAD")
	gitIn(t, dir, "commit", "-q", "--allow-empty", "-m", "pull request 2")
	gitIn(t, dir, "update-ref", "refs/pull/2/head", "HEAD")
	// The fork served over HTTP (git http-backend); down is a remote that fails for a while.
	var down atomic.Bool
	backend := &cgi.Handler{Path: filepath.Join(strings.TrimSpace(gitOut(t, dir, "--exec-path")), "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + forks, "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	defer srv.Close()
	source := srv.URL + "/echo"
	f.writeSpec("a", "recipe: echo\nsource: "+source+"\nref: refs/pull/1/head\n")
	st1 := f.settle("a")
	if st1.Phase != spec.PhaseReady || st1.SourceCommit == "" {
		t.Fatalf("%s: %s", st1.Phase, st1.Message)
	}
	// The spec moves to pull request 2; the remote does not answer the first fetch.
	f.writeSpec("a", "recipe: echo\nsource: "+source+"\nref: refs/pull/2/head\n")
	down.Store(true)
	if _, err := f.r.Reconcile(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	mid, _ := spec.ReadStatus(f.r.StatusDir, "a")
	d, _ := spec.Load(f.r.SpecsDir, "a", f.r.Defaults)
	t.Logf("after the fetch that did not answer: %s %q; sourceCommit %.7s (pr1 %.7s); DeployedCommit %q", mid.Phase, mid.Message, mid.SourceCommit, st1.SourceCommit, d.DeployedCommit(mid))
	if c := d.DeployedCommit(mid); c != "" {
		t.Errorf("DeployedCommit of the new attempt is %.7s, pull request 1's (the previous attempt's): render/diff/secret insert and the next pass read it", c)
	}
	down.Store(false)
	f.now = f.now.Add(5 * time.Second)
	st := f.settle("a")
	want := strings.TrimSpace(gitOut(t, dir, "rev-parse", "refs/pull/2/head"))
	if st.SourceCommit != want {
		t.Errorf("spec asks for refs/pull/2/head (%.7s); the app deployed %.7s, pull request 1's commit (%s %q)", want, st.SourceCommit, st.Phase, st.Message)
	}
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestOwedPostHookJobHoldsNoDeploySlot: a new attempt of an app that still owes a restore
// post-hook leaves Pending without a plan to apply (its services are as deployed) while its
// pass runs the owed job: it needs a deploy slot as any such attempt does, and waits in the
// queue while the only one is held by another app.
func TestOwedPostHookJobHoldsNoDeploySlot(t *testing.T) {
	f, _, _ := killedInMaintenance(t, swarm.TaskStateReady)
	if st := f.settle("a"); st.Phase != spec.PhaseFailed || len(stillOwedPostHooks(st)) == 0 {
		t.Fatalf("setup: %s %s", st.Phase, st.Message)
	}
	f.r.MaxDeploying = 1
	f.r.slots.record("other", 1, true, false, "g")
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+1\ntimeout: 11m\n")
	if _, err := f.r.Reconcile(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	st, err := spec.ReadStatus(f.r.StatusDir, "a")
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != spec.PhasePending || !strings.Contains(st.Message, "queued") {
		t.Errorf("the only deploy slot held by another app: %s %q, want Pending, queued", st.Phase, st.Message)
	}
}
