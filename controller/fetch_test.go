package controller

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

// TestRecipeFromRemote: a recipe missing under --recipes is cloned from --recipe-url and
// deploys; a remote that does not answer keeps the app Deploying, retrying, until its timeout,
// then Failed naming the URL without credentials, and another app is not held up by it.
func TestRecipeFromRemote(t *testing.T) {
	f := newFixture(t)
	remotes := t.TempDir()
	makeRecipe(t, remotes, "far", "1.0.0+1")
	f.r.Remote = &manifests.Remote{URLTemplate: "file://" + remotes + "/{recipe}"}
	f.writeSpec("a", "recipe: far\nversion: 1.0.0+1\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("cloned recipe: %s: %s", st.Phase, st.Message)
	}
	if _, err := manifests.Tags(f.r.RecipesDir, "far"); err != nil {
		t.Errorf("the clone is not under --recipes: %v", err)
	}

	f.r.Remote = &manifests.Remote{URLTemplate: "http://ci:tok3n@127.0.0.1:1/{recipe}.git", Timeout: time.Second}
	f.writeSpec("b", "recipe: nowhere\nversion: 1.0.0\ntimeout: 5s\n")
	if _, err := f.r.Reconcile(t.Context(), "b"); err != nil {
		t.Fatalf("a remote that does not answer is the app's wait, not an error: %v", err)
	}
	st, _ := spec.ReadStatus(f.r.StatusDir, "b")
	if st.Phase != spec.PhaseDeploying || !strings.Contains(st.Message, "not fetched yet, retrying: clone http://127.0.0.1:1/nowhere.git") {
		t.Fatalf("first pass: %s: %s", st.Phase, st.Message)
	}
	f.writeSpec("c", "recipe: echo\nversion: 1.0.0+1\n")
	if st := f.settle("c"); st.Phase != spec.PhaseReady {
		t.Errorf("another app: %s: %s", st.Phase, st.Message)
	}
	f.now = f.now.Add(10 * time.Second)
	st = f.settle("b")
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "recipe nowhere could not be fetched: clone http://127.0.0.1:1/nowhere.git") {
		t.Fatalf("past the timeout: %s: %s", st.Phase, st.Message)
	}
	if strings.Contains(st.Message, "tok3n") {
		t.Errorf("the credentials are in the status: %s", st.Message)
	}
	if left, _ := filepath.Glob(filepath.Join(f.r.RecipesDir, ".nowhere*")); len(left) != 0 {
		t.Errorf("failed clones left %v", left)
	}
}

// TestRunningAppOutlivesAFetchFailure: a Ready app whose recipe came from a remote, long past
// its timeout; the reconciler restarts with its recipes directory empty while the remote does
// not answer (the network comes up after it). The app runs as deployed: Degraded, saying so,
// never Failed (final for its generation); once the remote answers, Ready again.
func TestRunningAppOutlivesAFetchFailure(t *testing.T) {
	f := newFixture(t)
	remotes := t.TempDir()
	makeRecipe(t, remotes, "far", "1.0.0+1")
	reachable := &manifests.Remote{URLTemplate: "file://" + remotes + "/{recipe}"}
	f.r.Remote = reachable
	f.writeSpec("a", "recipe: far\nversion: 1.0.0+1\ntimeout: 15s\n")
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("cloned recipe: %s: %s", st.Phase, st.Message)
	}
	f.now = f.now.Add(time.Hour)
	f.r.forget("a") // the restart: nothing remembered, the clone gone, the remote silent
	if err := os.RemoveAll(filepath.Join(f.r.RecipesDir, "far")); err != nil {
		t.Fatal(err)
	}
	f.r.Remote = &manifests.Remote{URLTemplate: "http://127.0.0.1:1/{recipe}.git", Timeout: time.Second}
	f.engine.resetCalls()
	res, err := f.r.Reconcile(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	st, _ := spec.ReadStatus(f.r.StatusDir, "a")
	if st.Phase != spec.PhaseDegraded || !strings.Contains(st.Message, "running as deployed, but recipe far could not be fetched") || res.RequeueAfter != fetchRetry {
		t.Fatalf("a remote that does not answer: %s %q, again in %s", st.Phase, st.Message, res.RequeueAfter)
	}
	if w := f.engine.writes(); len(w) > 0 {
		t.Errorf("the running app was changed: %v", w)
	}
	f.r.Remote = reachable
	f.now = f.now.Add(fetchRetry)
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Errorf("the remote back: %s %s", st.Phase, st.Message)
	}
}

// TestRecipeFromSourceRef: an app whose spec names a source and a pull-request ref deploys the
// commit the ref points at, with the chaos labels; the commit is pinned for the generation, so
// the ref moving on the remote changes nothing until the spec changes.
func TestRecipeFromSourceRef(t *testing.T) {
	f := newFixture(t)
	forks := t.TempDir()
	makeRecipe(t, forks, "echo", "1.0.0+1")
	dir := filepath.Join(forks, "echo")
	gitIn(t, dir, "commit", "-q", "--allow-empty", "-m", "the pull request")
	gitIn(t, dir, "update-ref", "refs/pull/1/head", "HEAD")
	source := "file://" + dir
	f.writeSpec("a", "recipe: echo\nsource: "+source+"\nref: refs/pull/1/head\n")
	st := f.settle("a")
	if st.Phase != spec.PhaseReady || st.SourceCommit == "" || st.Source != source {
		t.Fatalf("%s: %s (source %q commit %q)", st.Phase, st.Message, st.Source, st.SourceCommit)
	}
	if !strings.Contains(st.LastAppliedRevision, st.SourceCommit[:7]) {
		t.Errorf("revision %q does not name the commit %s", st.LastAppliedRevision, st.SourceCommit)
	}
	var label string
	for _, svc := range f.engine.services {
		if svc.Spec.Name == "a_test_app" {
			label = svc.Spec.Labels["coop-cloud.a_test.chaos-version"]
		}
	}
	if got := label; got != st.SourceCommit[:7] {
		t.Errorf("chaos-version label %q, want %s", got, st.SourceCommit[:7])
	}
	if _, err := manifests.Tags(f.r.RecipesDir, "echo"); err != nil {
		t.Fatal(err) // the catalogue's echo is still there, untouched
	}

	gitIn(t, dir, "commit", "-q", "--allow-empty", "-m", "pushed later")
	gitIn(t, dir, "update-ref", "refs/pull/1/head", "HEAD")
	f.r.forget("a") // a restart: nothing remembered but the status
	f.engine.resetCalls()
	if st2 := f.settle("a"); st2.SourceCommit != st.SourceCommit || len(f.engine.writes()) != 0 {
		t.Errorf("the moved ref changed the app: commit %s -> %s, writes %v", st.SourceCommit, st2.SourceCommit, f.engine.writes())
	}
	// diff renders what a pass deploys: the pinned commit, not the ref's new one (whose
	// chaos-version label would show as a change the reconciler never makes).
	d, err := spec.Load(f.r.SpecsDir, "a", f.r.Defaults)
	if err != nil || d == nil || d.Spec == nil {
		t.Fatalf("load: %v %+v", err, d)
	}
	f.r.forget("a")
	if got, err := f.r.Diff(t.Context(), d); err != nil || len(got) != 0 {
		t.Errorf("diff after the ref moved: %v, %d changes %+v; want none", err, len(got), got)
	}
	// A new generation that asks for nothing else (a comment, a request) is the same attempt:
	// the ref stays pinned.
	f.writeSpec("a", "recipe: echo\nsource: "+source+"\nref: refs/pull/1/head\n# a comment\n")
	if st3 := f.settle("a"); st3.SourceCommit != st.SourceCommit || len(f.engine.writes()) != 0 {
		t.Errorf("a spec edit that changes nothing moved the app: commit %s -> %s, writes %v", st.SourceCommit, st3.SourceCommit, f.engine.writes())
	}
}

// TestStatusHoldsNoURLCredentials: the user info of a spec's source URL and of a health probe's
// URL reaches neither the status (a 0644 file, status -o json, the web view) nor its history.
func TestStatusHoldsNoURLCredentials(t *testing.T) {
	f := newFixture(t)
	forks := t.TempDir()
	makeRecipe(t, forks, "echo", "1.0.0+1")
	dir := filepath.Join(forks, "echo")
	gitIn(t, dir, "update-ref", "refs/pull/1/head", "HEAD")
	f.writeSpec("a", "recipe: echo\nsource: file://ci:tok3nSECRET@"+dir+"\nref: refs/pull/1/head\n")
	st := f.settle("a")
	if st.Phase != spec.PhaseReady || st.Source != "file://"+dir {
		t.Errorf("%s %q, source %q; want Ready from file://%s", st.Phase, st.Message, st.Source, dir)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer srv.Close()
	probe := strings.Replace(srv.URL, "http://", "http://admin:PROBEPASSW0RD@", 1) + "/"
	f.writeSpec("h", fmt.Sprintf("recipe: echo\nversion: 1.0.0+1\ntimeout: 5s\nhealth:\n  - http: %q\n", probe))
	if st := f.settleAs("h", spec.PhaseFailed, time.Second, 20); !strings.Contains(st.Message, "health[0] http "+srv.URL+"/ never passed") {
		t.Errorf("%s %q: want the probe named without its user info", st.Phase, st.Message)
	}
	for _, app := range []string{"a", "h"} {
		data, err := os.ReadFile(filepath.Join(f.r.StatusDir, app+".json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"tok3nSECRET", "PROBEPASSW0RD"} {
			if strings.Contains(string(data), secret) {
				t.Errorf("the status of %s holds %s", app, secret)
			}
		}
	}
}
