package webview

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/swarm-reconciler/reconciler/spec"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// viewFixture is a web view of a temporary status and spec directory.
type viewFixture struct {
	t      *testing.T
	status string
	specs  string
	srv    *Server
}

func newView(t *testing.T) *viewFixture {
	t.Helper()
	f := &viewFixture{t: t, status: t.TempDir(), specs: t.TempDir()}
	f.srv = New(f.status, f.specs, spec.Defaults{DomainSuffix: "example.org"}, logr.Discard())
	f.srv.Now = func() time.Time { return t0 }
	return f
}

// status writes app's status in phase with message, first deployed ago before t0.
func (f *viewFixture) write(app string, phase spec.Phase, message string, ago time.Duration) *spec.Status {
	f.t.Helper()
	first := t0.Add(-ago)
	st := &spec.Status{App: app, Phase: phase, Message: message, Recipe: "custom-html", Version: "1.7.1+1.27.2",
		FirstDeployedAt: &first, UpdatedAt: t0, History: []spec.HistoryEntry{{Time: first, Phase: phase, Message: message}}}
	if err := spec.WriteStatus(f.status, st); err != nil {
		f.t.Fatal(err)
	}
	return st
}

func (f *viewFixture) get(path string) (int, string) {
	f.t.Helper()
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

func TestIndexShowsEveryAppWithItsPhase(t *testing.T) {
	f := newView(t)
	f.write("alpha", spec.PhaseReady, "all 1 services converged", 3*time.Hour)
	f.write("beta", spec.PhaseFailed, "image x:1 cannot be pulled", 20*time.Minute)
	f.write("gamma", spec.PhaseDeploying, "0/1 tasks running", 30*time.Second)
	code, body := f.get("/")
	if code != 200 {
		t.Fatalf("GET / = %d\n%s", code, body)
	}
	for _, want := range []string{
		`<tr id="app-alpha" data-app="alpha" data-phase="Ready">`,
		`<a href="/apps/alpha">alpha</a>`,
		`<span class="phase ok">Ready</span>`,
		`<span class="phase bad">Failed</span>`,
		`<span class="phase busy">Deploying</span>`,
		`image x:1 cannot be pulled`,
		`<time datetime="2026-12-01T09:00:00Z">3h</time>`,
		`<span id="shown">3</span> of <span id="of">3</span> apps`,
		`data-phase="Failed">Failed <span class="n">1</span>`,
		`<th scope="col">Phase</th>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %s", want)
		}
	}
	// Failed before Ready in the counts: what wants an eye first.
	if strings.Index(body, `data-phase="Failed">Failed`) > strings.Index(body, `data-phase="Ready">Ready`) {
		t.Error("counts: Failed should come before Ready")
	}
}

func TestIndexFilters(t *testing.T) {
	f := newView(t)
	f.write("ci-one", spec.PhaseReady, "ok", time.Hour)
	f.write("ci-two", spec.PhaseFailed, "no", time.Hour)
	f.write("prod-web", spec.PhaseReady, "ok", time.Hour)
	for _, tc := range []struct {
		query     string
		want, not []string
	}{
		{"/?phase=Ready", []string{"app-ci-one", "app-prod-web", "in phase Ready"}, []string{"app-ci-two"}},
		{"/?q=CI-", []string{"app-ci-one", "app-ci-two", "whose name holds “CI-”"}, []string{"app-prod-web"}},
		{"/?phase=Ready&q=ci", []string{"app-ci-one", `<span id="shown">1</span> of <span id="of">3</span>`}, []string{"app-ci-two", "app-prod-web"}},
		{"/?phase=Deleted", []string{"No app matches the filter."}, []string{"app-ci-one"}},
		{"/?phase=<script>", []string{"app-ci-one", "app-ci-two", "app-prod-web"}, []string{"<script>"}},
	} {
		code, body := f.get(tc.query)
		if code != 200 {
			t.Fatalf("GET %s = %d", tc.query, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s lacks %s", tc.query, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(body, n) {
				t.Errorf("GET %s has %s", tc.query, n)
			}
		}
	}
}

func TestIndexOfNothing(t *testing.T) {
	f := newView(t)
	if code, body := f.get("/"); code != 200 || !strings.Contains(body, "No app yet") {
		t.Fatalf("GET / of an empty directory = %d\n%s", code, body)
	}
	f.srv.StatusDir = filepath.Join(f.status, "missing")
	if code, body := f.get("/"); code != 500 || !strings.Contains(body, "is --status the reconciler&#39;s status directory?") {
		t.Fatalf("GET / of a missing directory = %d\n%s", code, body)
	}
}

func TestAppPageTellsTheWholeStory(t *testing.T) {
	f := newView(t)
	st := f.write("shop", spec.PhaseDegraded, "1/2 tasks running", 48*time.Hour)
	exit := 3
	st.Services = []spec.ServiceStatus{{Name: "shop_example_org_app", Image: "nginx:1.27", Running: 1, Desired: 2,
		Tasks: []spec.TaskStatus{{ID: "k2v9x0abcdefghijk", State: "failed", Error: "task: non-zero exit (3)", ExitCode: &exit,
			Since: t0.Add(-time.Minute), Node: "worker-2", Logs: []string{"starting", "config <broken> at line 3"}}}}}
	st.Conditions = []spec.Condition{{Type: "Ready", Status: "False", Reason: "TasksFailing", Message: "1/2 tasks running", LastTransitionTime: t0}}
	st.History = append(st.History, spec.HistoryEntry{Time: t0.Add(-time.Minute), Phase: spec.PhaseDegraded, Message: "1/2 tasks running"})
	done := t0.Add(-time.Hour)
	st.LastBackup = &spec.BackupRun{ID: "20261201T110000Z", Trigger: "schedule", State: spec.RunCompleted, Started: t0.Add(-61 * time.Minute),
		Finished: &done, Volumes: []spec.VolumeRun{{Name: "shop_example_org_data"}}, Files: 12, Bytes: 4096,
		Hooks: []spec.HookRun{{Service: "db", Hook: "pre-hook", ExitCode: 0}}}
	st.Overlays = []spec.OverlayRef{{Name: "overlays/shop.ci.yml", SHA256: "0123456789abcdef0123"}}
	if err := spec.WriteStatus(f.status, st); err != nil {
		t.Fatal(err)
	}
	specText := "recipe: custom-html\nversion: 1.7.1+1.27.2\nenv:\n  SMTP_PASSWORD: hunter2-do-not-show\n  LETS_ENCRYPT_ENV: production\n"
	if err := os.WriteFile(filepath.Join(f.specs, "shop.yml"), []byte(specText), 0o644); err != nil {
		t.Fatal(err)
	}
	code, body := f.get("/apps/shop")
	if code != 200 {
		t.Fatalf("GET /apps/shop = %d\n%s", code, body)
	}
	for _, want := range []string{
		`<h1>shop <span class="phase warn">Degraded</span></h1>`,
		`<span class="phase warn">1 of 2</span>`,
		`<h3>Tasks of shop_example_org_app</h3>`,
		`<code>k2v9x0abcdef</code>`, `<td>3</td>`, `<td>worker-2</td>`,
		"config &lt;broken&gt; at line 3",
		`<th scope="row">Ready</th><td>False</td><td>TasksFailing</td>`,
		`20261201T110000Z`, `shop_example_org_data`, `pre-hook in db: exit 0`,
		`overlays/shop.ci.yml <code title="SHA-256">0123456789ab</code>`,
		`LETS_ENCRYPT_ENV: production`, `SMTP_PASSWORD: &#34;(hidden)&#34;`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /apps/shop lacks %s", want)
		}
	}
	if strings.Contains(body, "hunter2") {
		t.Error("the page shows a secret env value")
	}
	// The history, newest first.
	if a, b := strings.Index(body, "1/2 tasks running</span></li>"), strings.LastIndex(body, "1/2 tasks running</span></li>"); a < 0 || a == b {
		t.Errorf("history: want two entries, newest first\n%s", body)
	}
}

func TestAppPageErrors(t *testing.T) {
	f := newView(t)
	f.write("nospec", spec.PhaseDeleted, "removed 3 objects", time.Hour)
	if code, body := f.get("/apps/nospec"); code != 200 || !strings.Contains(body, "no spec file") {
		t.Errorf("GET /apps/nospec = %d, want 200 saying there is no spec file\n%s", code, body)
	}
	if code, body := f.get("/apps/ghost"); code != 404 || !strings.Contains(body, `no status for app &#34;ghost&#34;`) {
		t.Errorf("GET /apps/ghost = %d\n%s", code, body)
	}
	if code, _ := f.get("/apps/..%2f..%2fetc%2fpasswd"); code != 404 {
		t.Errorf("GET of a path out of the directory = %d", code)
	}
	if code, _ := f.get("/apps/a%00b"); code != 404 {
		t.Errorf("GET of a name no file can have = %d, want 404", code)
	}
	if code, _ := f.get("/nothing-here"); code != 404 {
		t.Errorf("GET /nothing-here = %d, want 404", code)
	}
}

func TestStaticAssetsAndHeaders(t *testing.T) {
	f := newView(t)
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	h := rec.Header()
	if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers: %v", h)
	}
	for path, ctype := range map[string]string{"/style.css": "text/css", "/live.js": "text/javascript"} {
		rec := httptest.NewRecorder()
		f.srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), ctype) || rec.Body.Len() < 100 {
			t.Errorf("GET %s = %d %q, %d bytes", path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
		}
	}
}

func TestHideSecrets(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "env:\n  DB_PASSWORD: s3cret\n  HOST: db\n", "env:\n  DB_PASSWORD: \"(hidden)\"\n  HOST: db\n"},
		{"quoted with a comment", "env:\n  API_TOKEN: \"a \\\" b\" # why\n", "env:\n  API_TOKEN: \"(hidden)\" # why\n"},
		{"single quoted", "env:\n  secret_key: 'it''s'\n", "env:\n  secret_key: \"(hidden)\"\n"},
		{"block scalar", "env:\n  PRIVATE_KEY: |\n    line1\n    line2\n  HOST: db\n", "env:\n  PRIVATE_KEY: \"(hidden)\"\n  HOST: db\n"},
		{"plain over two lines", "env:\n  AUTH: one\n    two\nrecipe: x\n", "env:\n  AUTH: \"(hidden)\"\nrecipe: x\n"},
		{"json", `{"recipe": "x", "env": {"PASSWORD": "p, q", "HOST": "db"}}`, `{"recipe": "x", "env": {"PASSWORD": "(hidden)", "HOST": "db"}}`},
		{"flow plain", "env: {TOKEN: abc, HOST: db}\n", "env: {TOKEN: \"(hidden)\", HOST: db}\n"},
		{"no env", "recipe: x\nversion: 1\n", "recipe: x\nversion: 1\n"},
		{"characters before the value", "env: {CLÉ_SECRET: s3cret, HÔTE: db}\n", "env: {CLÉ_SECRET: \"(hidden)\", HÔTE: db}\n"},
		{"secret-looking keys elsewhere are the spec's own", "recipe: x\nbackup:\n  keep: 3\n", "recipe: x\nbackup:\n  keep: 3\n"},
		{"does not parse", "env:\n  PASSWORD: [oops\n", "(the spec file does not parse, so it is not shown: `reconciler validate` says why)"},
		{"two on one line, json", `{"env": {"DB_PASSWORD": "correct-horse", "API_TOKEN": "tok-0123", "HOST": "db"}}`,
			`{"env": {"DB_PASSWORD": "(hidden)", "API_TOKEN": "(hidden)", "HOST": "db"}}`},
		{"two on one line, flow", "env: {DB_PASSWORD: correct-horse, API_TOKEN: tok-0123}\n", "env: {DB_PASSWORD: \"(hidden)\", API_TOKEN: \"(hidden)\"}\n"},
		{"a source URL's user info", "recipe: x\nsource: https://ci:tok3n@git.example.org/me/x.git\n", "recipe: x\nsource: https://git.example.org/me/x.git\n"},
		{"a health URL's user info", "health:\n  - http: \"https://admin:pw@{domain}/\"\n    ok: [200]\n", "health:\n  - http: \"https://{domain}/\"\n    ok: [200]\n"},
		{"a URL without user info", "source: https://git.example.org/x.git\n", "source: https://git.example.org/x.git\n"},
		{"an inline overlay's environment", "overlays:\n  - inline: |\n      services:\n        app:\n          environment:\n            DB_PASSWORD: s3cret\n            HOST: db\n        db:\n          environment: [POSTGRES_PASSWORD=pw, LANG=C]\n  - file: ci.yml\n",
			"overlays:\n  - inline: |\n      services:\n        app:\n          environment:\n            DB_PASSWORD: \"(hidden)\"\n            HOST: db\n        db:\n          environment: [\"POSTGRES_PASSWORD=(hidden)\", LANG=C]\n  - file: ci.yml\n"},
		{"an inline overlay's environment as a block list", "overlays:\n- inline: |\n    services:\n      app:\n        environment:\n          - API_KEY=k3y\n          - LANG=C\n",
			"overlays:\n- inline: |\n    services:\n      app:\n        environment:\n          - \"API_KEY=(hidden)\"\n          - LANG=C\n"},
		{"an inline overlay sharing its environment through an anchor", "overlays:\n  - inline: |\n      x-env: &env\n        DB_PASSWORD: s3cret\n      secrets:\n        db_password: {external: true}\n      services:\n        app:\n          environment: *env\n        db:\n          environment:\n            <<: *env\n",
			"overlays:\n  - inline: |\n      x-env: &env\n        DB_PASSWORD: \"(hidden)\"\n      secrets:\n        db_password: {external: true}\n      services:\n        app:\n          environment: *env\n        db:\n          environment:\n            <<: *env\n"},
		{"an inline overlay that is not a literal block", "overlays:\n  - inline: \"services: {app: {environment: {DB_PASSWORD: s3cret}}}\"\nrecipe: x\n", "overlays:\n  - inline: \"(hidden)\"\nrecipe: x\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hideSecrets([]byte(tc.in)); got != tc.want {
				t.Errorf("hideSecrets(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzHideSecrets: whatever the value under a secret-looking env key, and however it is
// written, the output still parses as the spec, with "(hidden)" as that value.
func FuzzHideSecrets(f *testing.F) {
	f.Add("DB_PASSWORD", "s3cret", "plain")
	f.Add("API_TOKEN", "abc def", "double")
	f.Add("KEY", "x'y", "single")
	f.Add("PRIVATE_KEY", "l1\nl2", "block")
	f.Add("\x00KEY", "0000", "plain")        // the value's digits are also in the key's escape
	f.Add("PASS\U0004b741", "0000", "plain") // yaml counts columns in characters, not bytes
	f.Add("DB_PASSWORD", "correct-horse-battery", "pair")
	f.Fuzz(func(t *testing.T, key, value, style string) {
		if !spec.SecretName(key) || strings.TrimSpace(value) == "" || len(value) < 4 {
			return
		}
		var doc string
		v, _ := json.Marshal(value)
		switch style {
		case "block":
			doc = "env:\n  " + key + ": |\n    " + strings.ReplaceAll(value, "\n", "\n    ") + "\n"
		case "single":
			doc = "env:\n  " + key + ": '" + strings.ReplaceAll(value, "'", "''") + "'\n"
		case "pair": // two on one line: the second is found where it was before the first was hidden
			doc = `{"env": {` + string(must(json.Marshal(key))) + ": " + string(v) + ", " + string(must(json.Marshal(key+"_2"))) + ": " + string(v) + "}}\n"
		default:
			doc = "env:\n  " + string(must(json.Marshal(key))) + ": " + string(v) + "\n"
		}
		var parsed struct {
			Env map[string]string `yaml:"env"`
		}
		if err := yaml.Unmarshal([]byte(doc), &parsed); err != nil || parsed.Env[key] != value || style == "pair" && parsed.Env[key+"_2"] != value {
			return // not the document meant
		}
		// The property: the output is still the spec, with "(hidden)" where the value was.
		out := hideSecrets([]byte(doc))
		var shown struct {
			Env map[string]string `yaml:"env"`
		}
		if err := yaml.Unmarshal([]byte(out), &shown); err != nil {
			t.Fatalf("the output does not parse (%v):\n%s\nfrom\n%s", err, out, doc)
		}
		if got := shown.Env[key]; got != "(hidden)" || len(shown.Env) != len(parsed.Env) || style == "pair" && shown.Env[key+"_2"] != "(hidden)" {
			t.Fatalf("env %q shows %q (env %v) in\n%s\nfrom\n%s", key, got, shown.Env, out, doc)
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(file, []byte("# operators\nops:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := ReadUsers(file)
	if err != nil {
		t.Fatal(err)
	}
	f := newView(t)
	f.srv.Users = users
	for _, tc := range []struct {
		user, pass string
		set        bool
		want       int
	}{
		{"", "", false, 401}, {"ops", "wrong", true, 401}, {"nobody", "right", true, 401}, {"ops", "right", true, 200},
	} {
		req := httptest.NewRequest("GET", "/", nil)
		if tc.set {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		rec := httptest.NewRecorder()
		f.srv.Handler().ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s:%s = %d, want %d", tc.user, tc.pass, rec.Code, tc.want)
		}
		if tc.want == 401 && !strings.Contains(rec.Header().Get("WWW-Authenticate"), "Basic") {
			t.Errorf("401 without a Basic challenge")
		}
	}
	for content, want := range map[string]string{
		"ops:plaintext\n":                      "not a bcrypt hash",
		"ops:$apr1$x$y\n":                      "not a bcrypt hash",
		"just-a-name\n":                        "want user:bcrypt-hash",
		"# nobody\n":                           "names no user",
		":" + string(hash) + "\n":              "want user:bcrypt-hash",
		"ops:" + string(hash) + "\nbad line\n": "line 2",
	} {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadUsers(file); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadUsers(%q) = %v, want an error saying %q", content, err, want)
		}
	}
}

func TestCheckExposure(t *testing.T) {
	for _, tc := range []struct {
		addr string
		auth bool
		ok   bool
	}{
		{"127.0.0.1:9091", false, true}, {"localhost:9091", false, true}, {"[::1]:9091", false, true},
		{"0.0.0.0:9091", false, false}, {":9091", false, false}, {"10.0.0.5:9091", false, false},
		{"0.0.0.0:9091", true, true}, {"nonsense", false, false},
	} {
		if err := CheckExposure(tc.addr, tc.auth); (err == nil) != tc.ok {
			t.Errorf("CheckExposure(%q, auth %v) = %v", tc.addr, tc.auth, err)
		}
	}
}

// TestEventsStreamChangedApps: a status file written while a page listens arrives as an "app"
// event with the app's new row and the counts; a stream of one app gets only that app's.
func TestEventsStreamChangedApps(t *testing.T) {
	f := newView(t)
	f.write("alpha", spec.PhaseDeploying, "0/1 tasks running", time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	watching := make(chan error, 1)
	go func() { watching <- f.srv.Watch(ctx) }()
	ts := httptest.NewServer(f.srv.Handler())
	defer ts.Close()

	all := openStream(t, ctx, ts.URL+"/events")
	one := openStream(t, ctx, ts.URL+"/events?app=beta")
	// The watch may start after the streams: write until an event comes.
	deadline := time.Now().Add(10 * time.Second)
	var got update
	for time.Now().Before(deadline) {
		f.write("alpha", spec.PhaseReady, "all 1 services converged", time.Minute)
		select {
		case got = <-all:
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	if got.App != "alpha" || got.Phase != "Ready" || !strings.Contains(got.Row, `<span class="phase ok">Ready</span>`) ||
		!strings.Contains(got.Counts, `data-phase="Ready">Ready <span class="n">1</span>`) || got.Total != 1 {
		t.Fatalf("event = %+v", got)
	}
	f.write("beta", spec.PhaseFailed, "no", time.Minute)
	select {
	case u := <-one:
		if u.App != "beta" || u.Phase != "Failed" || u.Total != 2 {
			t.Fatalf("one app's stream: %+v", u)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event on the stream of beta")
	}
	if err := spec.RemoveStatus(f.status, "beta"); err != nil {
		t.Fatal(err)
	}
	for u := range all {
		if u.App == "beta" && u.Row == "" {
			break // removed: no row
		}
	}
	cancel()
	if err := <-watching; err != nil {
		t.Fatal(err)
	}
}

// TestEventsBurstKeepsStreams: a batch of changes larger than a stream's buffer (a resync, a
// node down: 200 apps at once) ends no stream; the page that follows one app gets its update.
func TestEventsBurstKeepsStreams(t *testing.T) {
	f := newView(t)
	var apps []string
	for i := range 200 {
		app := fmt.Sprintf("app-%03d", i)
		apps = append(apps, app)
		f.write(app, spec.PhaseDegraded, "node n2 is down", time.Hour)
	}
	ts := httptest.NewServer(f.srv.Handler())
	defer ts.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel() // before the server's Close, which waits for the stream to end
	one := openStream(t, ctx, ts.URL+"/events?app=app-199")
	for !f.srv.hub.listening() {
		time.Sleep(time.Millisecond)
	}
	f.srv.hub.publish(f.srv.updates(apps)) // what watch does with one batch
	select {
	case u, ok := <-one:
		if !ok || u.App != "app-199" {
			t.Fatalf("the stream of app-199 after a burst of 200: %+v, open %v", u, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event for app-199")
	}
}

// openStream reads the "app" events of an event stream into a channel.
func openStream(t *testing.T, ctx context.Context, url string) <-chan update {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("GET %s: Content-Type %q", url, ct)
	}
	out := make(chan update, 16)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "app":
				var u update
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &u) == nil {
					out <- u
				}
			}
		}
	}()
	return out
}

// TestPagesAreValidHTML runs tidy (Debian's tidy package) over every page: no errors. Without
// tidy the test is skipped, unless CI is set: then it fails.
func TestPagesAreValidHTML(t *testing.T) {
	tidy, err := exec.LookPath("tidy")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tidy is not installed (CI is set, so this is a failure): apt-get install tidy")
		}
		t.Skip("tidy is not installed: apt-get install tidy; with CI set this fails")
	}
	f := newView(t)
	f.write("alpha", spec.PhaseReady, "all <1> services & more", time.Hour)
	st := f.write("beta", spec.PhaseFailed, "no", time.Hour)
	exit := 1
	st.Services = []spec.ServiceStatus{{Name: "beta_app", Image: "x:1", Desired: 1, Tasks: []spec.TaskStatus{{ID: "t1", State: "failed", ExitCode: &exit, Logs: []string{"a", "b"}}}}}
	st.Conditions = []spec.Condition{{Type: "Ready", Status: "False", Reason: "Failed", Message: "no", LastTransitionTime: t0}}
	done := t0
	st.LastBackup = &spec.BackupRun{ID: "b1", Trigger: "tier", State: spec.RunCompleted, Started: t0, Finished: &done}
	st.LastRestore = &spec.BackupRun{ID: "b1", Trigger: "tier", State: spec.RunFailed, Started: t0, Message: "hook failed"}
	st.Nodes = []spec.NodeVolumes{{ID: "n2", Hostname: "worker", Volumes: []string{"v1"}}}
	st.Removed = []string{"service beta_old"}
	if err := spec.WriteStatus(f.status, st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.specs, "beta.yml"), []byte("recipe: x\nversion: \"1\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/?phase=Ready", "/?phase=Deleted", "/apps/alpha", "/apps/beta", "/apps/nobody"} {
		_, body := f.get(path)
		cmd := exec.Command(tidy, "-errors", "-quiet", "--show-warnings", "yes", "-utf8")
		cmd.Stdin = strings.NewReader(body)
		out, err := cmd.CombinedOutput()
		// tidy exits 1 for warnings, 2 for errors; every warning fails the test too, but for
		// attributes HTML5 and ARIA allow that its list lacks.
		if code := cmd.ProcessState.ExitCode(); code >= 2 || (err != nil && code < 0) {
			t.Errorf("tidy of %s: exit %d\n%s", path, code, out)
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line == "" {
				continue
			}
			if strings.Contains(line, `proprietary attribute "aria-current"`) {
				t.Logf("tidy of %s (an ARIA 1.1 attribute tidy 5.6 does not know): %s", path, line)
				continue
			}
			t.Errorf("tidy of %s: %s", path, line)
		}
	}
}

// inlineOverlay is a spec whose one overlay is the compose text overlay, inline.
func inlineOverlay(overlay string) string {
	var b strings.Builder
	b.WriteString("recipe: x\noverlays:\n  - inline: |\n")
	for l := range strings.Lines(overlay) {
		b.WriteString("      " + l)
	}
	return b.String()
}

// TestHideSecretsInOverlays: in an inline overlay, the secret-named environment values are
// hidden, also through a scalar anchor and over several lines of a list item, and the text
// still parses; the rest (scripts, labels, whose values are no env) is shown as written.
func TestHideSecretsInOverlays(t *testing.T) {
	for _, tc := range []struct {
		name, overlay, secret string
	}{
		{"a scalar anchor", "x-db: &dbpw hunter2-correct-horse\nservices:\n  app:\n    environment:\n      DB_PASSWORD: *dbpw\n  db:\n    environment:\n      POSTGRES_PASSWORD: *dbpw\n", "hunter2"},
		{"a list item over two lines", "services:\n  app:\n    environment:\n      - API_KEY=first-half\n        second-half\n      - LANG=C\n", "half"},
		{"a script in a list", "services:\n  app:\n    entrypoint:\n      - /bin/sh\n      - -c\n      - |\n        cp /run/secrets/db_password /tmp/pw\n        exec app --port=80\n", ""},
		{"labels", "services:\n  app:\n    deploy:\n      labels:\n        - \"traefik.http.routers.app.tls.certresolver=production\"\n        - traefik.http.middlewares.sso.forwardauth.address=http://authelia:9091/api/verify\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := inlineOverlay(tc.overlay)
			got := hideSecrets([]byte(in))
			switch {
			case tc.secret == "" && got != in:
				t.Errorf("changed what holds no secret:\n%s", got)
			case tc.secret != "" && (strings.Contains(got, tc.secret) || !strings.Contains(got, "(hidden)")):
				t.Errorf("shows %q:\n%s", tc.secret, got)
			}
			var spec struct{ Overlays []struct{ Inline string } }
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(got), &spec); err != nil || yaml.Unmarshal([]byte(spec.Overlays[0].Inline), &doc) != nil {
				t.Errorf("what is shown does not parse (%v):\n%s", err, got)
			}
		})
	}
}
