package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests in this file are the e2e evidence of issue 13's first step: recipes cloned from
// --recipe-url on first use, versions fetched when a spec names one the repository lacks, over
// git's smart HTTP served on loopback by `git http-backend`.

// gitRemote serves the repositories under root over git's smart HTTP on loopback, and counts
// the clones and fetches (upload-pack ref advertisements) of each.
type gitRemote struct {
	url string
	mu  sync.Mutex
	n   map[string]int
	// token, when set, is required as the password of HTTP basic auth.
	token string
}

func serveGit(t testing.TB, root string) *gitRemote { return serveGitAuth(t, root, "") }

// serveGitAuth is serveGit requiring token as the basic-auth password ("" for none).
func serveGitAuth(t testing.TB, root, token string) *gitRemote {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git: %v", err)
	}
	r := &gitRemote{n: map[string]int{}, token: token}
	backend := &cgi.Handler{Path: gitBin, Args: []string{"http-backend"}, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, pass, _ := req.BasicAuth(); r.token != "" && pass != r.token {
			w.Header().Set("WWW-Authenticate", `Basic realm="recipes"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		if strings.HasSuffix(req.URL.Path, "/info/refs") && req.URL.Query().Get("service") == "git-upload-pack" {
			repo := strings.TrimSuffix(strings.TrimPrefix(req.URL.Path, "/"), "/info/refs")
			r.mu.Lock()
			r.n[repo]++
			r.mu.Unlock()
		}
		backend.ServeHTTP(w, req)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	r.url = "http://" + ln.Addr().String()
	return r
}

// commitRemoteRecipe makes dir a recipe repository of one echo service, tagged miniRelease,
// to be served as a remote.
func commitRemoteRecipe(t testing.TB, dir, name string) {
	t.Helper()
	commitRecipe(t, dir, miniRelease, echoRecipeFiles(name, "", fmt.Sprintf(`services:
  app:
    image: %s
    environment:
      - MESSAGE=hello from %s
      - PORT=8080
    deploy:
      labels:
        - "coop-cloud.${STACK_NAME}.version=%s"
`, echoImage, name, miniRelease), nil))
}

func (r *gitRemote) sessions(repo string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[repo]
}

// TestRecipeCloneAndFetch: ten apps of a recipe that is not under --recipes, applied at once,
// make one clone from --recipe-url and all deploy Ready; a tag pushed to the remote after the
// clone is fetched when a spec names it.
func TestRecipeCloneAndFetch(t *testing.T) {
	t.Parallel()
	remotes := t.TempDir()
	const name = "e2e-remote"
	dir := filepath.Join(remotes, name)
	commitRemoteRecipe(t, dir, name)
	remote := serveGit(t, remotes)
	h := newHarness(t)
	h.startWith(nil, "--recipe-url", remote.url+"/{recipe}")

	apps := make([]*testApp, 10)
	gens := make([]string, len(apps))
	for i := range apps {
		apps[i] = h.newApp(fmt.Sprintf("rmt%d", i))
	}
	for i, a := range apps {
		gens[i] = h.writeSpec(a.name, a.specOf(name, miniRelease))
	}
	for i, a := range apps {
		h.waitPhase(a.name, gens[i], "Ready")
	}
	if n := remote.sessions(name); n != 1 {
		t.Errorf("the remote saw %d clones or fetches for ten apps, want 1", n)
	}

	// A release tagged on the remote after the clone.
	const next = "1.0.1+1"
	for _, args := range [][]string{{"commit", "-q", "--allow-empty", "-m", "chore: release " + next}, {"tag", "-a", next, "-m", "release " + next}} {
		if err := git(dir, args...); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	s := h.waitPhase(apps[0].name, h.writeSpec(apps[0].name, apps[0].specOf(name, next)), "Ready")
	if n := remote.sessions(name); n != 2 {
		t.Errorf("the remote saw %d sessions after one new version, want 2 (the clone, one fetch)", n)
	}
	t.Logf("%s fetched and Ready in %s: %s", next, time.Since(start).Round(time.Millisecond), s.Message)
}

// TestRecipeRemoteUnreachable: a remote that does not answer (a closed loopback port) keeps the
// app Deploying until its timeout, then Failed naming the URL without its credentials; an app
// of a recipe already under --recipes is not held up.
func TestRecipeRemoteUnreachable(t *testing.T) {
	t.Parallel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	h.startWith(nil, "--recipe-url", fmt.Sprintf("http://ci:t0ken-e2e@127.0.0.1:%d/{recipe}.git", port), "--fetch-timeout", "2s")
	far, near := h.newApp("far"), h.newApp("near")
	gen := h.writeSpec(far.name, far.specOf("e2e-unreachable", miniRelease, "timeout: 8s"))
	h.waitPhase(near.name, h.writeSpec(near.name, near.spec(h.recipe.first().Version)), "Ready")
	start := time.Now()
	s := h.waitPhase(far.name, gen, "Failed")
	want := fmt.Sprintf("recipe e2e-unreachable could not be fetched: clone http://127.0.0.1:%d/e2e-unreachable.git", port)
	if !strings.Contains(s.Message, want) {
		t.Errorf("message %q lacks %q", s.Message, want)
	}
	var log []string
	for _, line := range h.recLogSince(0) {
		if !strings.HasPrefix(line, "=== e2e:") { // the harness's own line, with the flags it passed
			log = append(log, line)
		}
	}
	for _, text := range append([]string{string(s.raw)}, log...) {
		if strings.Contains(text, "t0ken-e2e") || strings.Contains(text, "ci:") {
			t.Fatalf("the credentials appear in the status or the log: %s", text)
		}
	}
	t.Logf("Failed %s after Ready of the other app: %s", time.Since(start).Round(time.Millisecond), s.Message)
}

// TestRecipeRemoteToken: a remote that needs a token: without it the app is Failed
// ("authentication required") at once; with --git-credentials holding it, Ready; the token
// appears in no status or log.
func TestRecipeRemoteToken(t *testing.T) {
	t.Parallel()
	remotes := t.TempDir()
	const name, token = "e2e-private", "tok-e2e-5ecr3t"
	commitRemoteRecipe(t, filepath.Join(remotes, name), name)
	remote := serveGitAuth(t, remotes, token)
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "127.0.0.1.token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		flags []string
		phase string
		want  string
	}{
		{"without", nil, "Failed", "authentication required"},
		{"with", []string{"--git-credentials", creds}, "Ready", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.startWith(nil, append([]string{"--recipe-url", remote.url + "/{recipe}"}, tc.flags...)...)
			a := h.newApp("tok")
			s := h.waitPhase(a.name, h.writeSpec(a.name, a.specOf(name, miniRelease)), tc.phase)
			if !strings.Contains(s.Message, tc.want) {
				t.Errorf("message %q lacks %q", s.Message, tc.want)
			}
			for _, text := range append([]string{string(s.raw)}, h.recLogSince(0)...) {
				if strings.Contains(text, token) {
					t.Fatalf("the token appears in the status or the log: %s", text)
				}
			}
		})
	}
}

// TestRecipeSourceRef: a commit that exists only on a pull-request ref of a fork, named by the
// spec's source and ref, deploys with the chaos labels naming it; the fork as a file:// remote
// deploys its release tag.
func TestRecipeSourceRef(t *testing.T) {
	t.Parallel()
	remotes := t.TempDir()
	const name = "e2e-fork"
	dir := filepath.Join(remotes, name)
	commitRemoteRecipe(t, dir, name)
	for _, args := range [][]string{{"commit", "-q", "--allow-empty", "-m", "the pull request"}, {"update-ref", "refs/pull/5/head", "HEAD"}, {"reset", "-q", "--hard", "HEAD~1"}} {
		if err := git(dir, args...); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("git", "-C", dir, "rev-parse", "refs/pull/5/head").Output()
	if err != nil {
		t.Fatal(err)
	}
	commit := strings.TrimSpace(string(out))
	remote := serveGit(t, remotes)
	h := startHarness(t)
	a := h.newApp("fork")
	body := fmt.Sprintf("recipe: %s\nsource: %s/%s\nref: refs/pull/5/head\ntimeout: %s\nenv:\n  PORT: \"%d\"\n", name, remote.url, name, specTimeout, a.port)
	s := h.waitPhase(a.name, h.writeSpec(a.name, []byte(body)), "Ready")
	if !strings.Contains(string(s.raw), `"sourceCommit": "`+commit+`"`) {
		t.Errorf("status does not record the pull request's commit %s:\n%s", commit, s)
	}
	svc := a.appService(t)
	if got := svc.Spec.Labels["coop-cloud."+a.stack()+".chaos-version"]; got != commit[:7] {
		t.Errorf("chaos-version label %q, want %s", got, commit[:7])
	}
	// The pull request moves on; the app runs the commit its attempt began with, and render says
	// so: not the commit the ref points at now.
	for _, args := range [][]string{{"checkout", "-q", "--detach", "refs/pull/5/head"}, {"commit", "-q", "--allow-empty", "-m", "pushed later"}, {"update-ref", "refs/pull/5/head", "HEAD"}, {"checkout", "-q", "-"}} {
		if err := git(dir, args...); err != nil {
			t.Fatal(err)
		}
	}
	if r := h.cli(time.Minute, "render", h.specPath(a.name)); r.code != 0 || !strings.Contains(r.stdout, commit[:7]) {
		t.Errorf("render after the ref moved: want the deployed commit %s named: %s", commit[:7], r)
	}

	// The same fork as a file:// remote, at its release tag: read by go-git in process.
	b := h.newApp("forkf")
	body = fmt.Sprintf("recipe: %s\nsource: file://%s\nversion: %q\ntimeout: %s\nenv:\n  PORT: \"%d\"\n", name, dir, miniRelease, specTimeout, b.port)
	s = h.waitPhase(b.name, h.writeSpec(b.name, []byte(body)), "Ready")
	if got := b.appService(t).Spec.Labels["coop-cloud."+b.stack()+".version"]; got != miniRelease {
		t.Errorf("file:// source: version label %q, want %s\n%s", got, miniRelease, s)
	}
}
