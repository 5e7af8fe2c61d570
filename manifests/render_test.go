package manifests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

const composeV1 = `version: "3.8"
services:
  app:
    image: nginx:1.0
    environment:
      - GREETING=${GREETING}
    configs:
      - source: conf
        target: /etc/conf
configs:
  conf:
    name: ${STACK_NAME}_conf_${CONF_VERSION}
    file: conf.txt
`

const composeV2 = `version: "3.8"
services:
  app:
    image: nginx:2.0
    environment:
      - GREETING=${GREETING}
    configs:
      - source: conf
        target: /etc/conf
  worker:
    image: busybox:2
configs:
  conf:
    name: ${STACK_NAME}_conf_${CONF_VERSION}
    file: conf.txt
`

// fixture is a recipe "demo" with two annotated releases, a lightweight tag, and an unreleased
// commit on top.
type fixture struct {
	recipesDir     string
	repo           *testRepo
	c1, c2, c3     plumbing.Hash
	tagOld, tagNew string
	lightweight    string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{recipesDir: t.TempDir(), tagOld: "1.0.0+1.0", tagNew: "1.1.0+2.0", lightweight: "1.1.1+2.0"}
	f.repo = newTestRepo(t, f.recipesDir, "demo")
	f.c1 = f.repo.commit(map[string]string{
		".env.sample": "GREETING=hello\n",
		"abra.sh":     "export CONF_VERSION=v1\n",
		"compose.yml": composeV1,
		"conf.txt":    "conf one",
	})
	f.repo.tag(f.tagOld, f.c1, true)
	f.c2 = f.repo.commit(map[string]string{
		"abra.sh":     "export CONF_VERSION=v2\n",
		"compose.yml": composeV2,
		"conf.txt":    "conf two",
	})
	f.repo.tag(f.tagNew, f.c2, true)
	f.repo.tag(f.lightweight, f.c2, false)
	f.c3 = f.repo.commit(map[string]string{"conf.txt": "conf three"})
	return f
}

func (f *fixture) render(t *testing.T, version string, env map[string]string) (*Rendered, error) {
	t.Helper()
	return Render(context.Background(), f.recipesDir, Request{App: "demo-app", Recipe: "demo", Version: version,
		Domain: "demo.example.org", Stack: "demo_example_org", Env: env})
}

func TestRenderVersions(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, version string
		commit        plumbing.Hash
		chaos         bool
		image, conf   string
		services      int
	}{
		{"old annotated tag", f.tagOld, f.c1, false, "nginx:1.0", "conf one", 1},
		{"new annotated tag", f.tagNew, f.c2, false, "nginx:2.0", "conf two", 2},
		{"lightweight tag", f.lightweight, f.c2, false, "nginx:2.0", "conf two", 2},
		{"full commit", f.c3.String(), f.c3, true, "nginx:2.0", "conf three", 2},
		{"abbreviated commit", f.c1.String()[:7], f.c1, true, "nginx:1.0", "conf one", 1},
		{"upper-case commit", strings.ToUpper(f.c1.String()[:10]), f.c1, true, "nginx:1.0", "conf one", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := f.render(t, tc.version, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Commit != tc.commit.String() || r.Chaos != tc.chaos {
				t.Errorf("commit %s chaos %v, want %s %v", r.Commit, r.Chaos, tc.commit, tc.chaos)
			}
			wantRev := fmt.Sprintf("demo@%s (%s)", tc.version, tc.commit.String()[:7])
			if r.Revision != wantRev {
				t.Errorf("revision %q, want %q", r.Revision, wantRev)
			}
			if len(r.Images) == 0 || r.Images[len(r.Images)-1] != tc.image {
				t.Errorf("images %v, want %s last", r.Images, tc.image)
			}
			if len(r.Configs) != 1 || string(r.Configs[0].Data) != tc.conf {
				t.Errorf("configs %+v, want data %q", r.Configs, tc.conf)
			}
			svcs, err := r.Services(context.Background(), PlaceholderResolver())
			if err != nil {
				t.Fatal(err)
			}
			if len(svcs) != tc.services {
				t.Errorf("%d services, want %d", len(svcs), tc.services)
			}
			app := svcs["demo_example_org_app"]
			wantChaos := "false"
			if tc.chaos {
				wantChaos = tc.commit.String()[:7]
			}
			if got := app.Labels["coop-cloud.demo_example_org.chaos-version"]; got != wantChaos {
				t.Errorf("chaos-version label %q, want %q", got, wantChaos)
			}
			if got := app.Labels["coop-cloud.demo_example_org.version"]; got != tc.version {
				t.Errorf("version label %q, want %q", got, tc.version)
			}
			if !slices.Contains(app.TaskTemplate.ContainerSpec.Env, "GREETING=hello") {
				t.Errorf("app env %v lacks GREETING=hello", app.TaskTemplate.ContainerSpec.Env)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	f := newFixture(t)
	if err := os.MkdirAll(filepath.Join(f.recipesDir, "plain"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, recipe, version string
		env                   map[string]string
		want                  []string
	}{
		{name: "unknown version lists tags", recipe: "demo", version: "9.9.9",
			want: []string{`unknown version "9.9.9"`, "1.0.0+1.0, 1.1.0+2.0, 1.1.1+2.0"}},
		{name: "unknown hash", recipe: "demo", version: "abcdef0",
			want: []string{`unknown version "abcdef0"`}},
		{name: "branch names are not versions", recipe: "demo", version: "master",
			want: []string{`unknown version "master"`}},
		{name: "version that is no ref name", recipe: "demo", version: "../../config",
			want: []string{`version "../../config" cannot name a git tag or commit`}},
		{name: "unknown recipe", recipe: "nope", version: "1.0.0",
			want: []string{`unknown recipe "nope"`, f.recipesDir}},
		{name: "not a git repository", recipe: "plain", version: "1.0.0",
			want: []string{`unknown recipe "plain"`, f.recipesDir}},
		{name: "path-like recipe", recipe: "../demo", version: f.tagOld,
			want: []string{"not a plain folder name"}},
		{name: "missing compose file", recipe: "demo", version: f.tagOld,
			env:  map[string]string{"COMPOSE_FILE": "compose.yml:compose.nope.yml"},
			want: []string{`COMPOSE_FILE names "compose.nope.yml"`}},
		{name: "compose file outside the recipe", recipe: "demo", version: f.tagOld,
			env:  map[string]string{"COMPOSE_FILE": "../demo/compose.yml"},
			want: []string{"leaves the recipe"}},
		{name: "config name version unset", recipe: "demo", version: f.tagOld,
			env:  map[string]string{"CONF_VERSION": ""},
			want: []string{`config name "demo_example_org_conf_"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(context.Background(), f.recipesDir, Request{App: "a", Recipe: tc.recipe, Version: tc.version,
				Domain: "demo.example.org", Stack: "demo_example_org", Env: tc.env})
			if !errors.Is(err, ErrInput) {
				t.Fatalf("err = %v, want ErrInput", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestUnknownVersionListsNewestTen(t *testing.T) {
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "many")
	h := repo.commit(map[string]string{"compose.yml": composeV1})
	for i := 1; i <= 12; i++ {
		repo.tag(fmt.Sprintf("1.%d.0+x", i), h, true)
	}
	_, err := Render(context.Background(), recipesDir, Request{App: "a", Recipe: "many", Version: "2.0.0", Domain: "d", Stack: "s"})
	if err == nil || !strings.Contains(err.Error(), "newest 10 of 12") || !strings.Contains(err.Error(), "1.3.0+x, 1.4.0+x") ||
		strings.Contains(err.Error(), "1.2.0+x") || !strings.HasSuffix(err.Error(), "1.12.0+x") {
		t.Fatalf("err = %v, want the newest ten tags in semver order", err)
	}
}

func TestRenderIgnoresWorkingTree(t *testing.T) {
	f := newFixture(t)
	// A checkout of something else, with uncommitted edits and stray files.
	f.repo.write(map[string]string{
		"compose.yml": "this: is [not valid compose",
		".env.sample": "GREETING=dirty\n",
		"conf.txt":    "dirty",
		"stray.yml":   "x: y",
	})
	r, err := f.render(t, f.tagOld, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Configs[0].Data) != "conf one" || r.Env["GREETING"] != "hello" {
		t.Errorf("render read the working tree: config %q, GREETING %q", r.Configs[0].Data, r.Env["GREETING"])
	}
	b, err := os.ReadFile(filepath.Join(f.repo.dir, "compose.yml"))
	if err != nil || string(b) != "this: is [not valid compose" {
		t.Errorf("render changed the working tree: %q, %v", b, err)
	}
}

func TestCleanupRemovesTheExports(t *testing.T) {
	f := newFixture(t)
	tmp := privateTmp(t)
	if _, err := f.render(t, f.tagNew, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.render(t, "9.9.9", nil); err == nil {
		t.Fatal("want an error")
	}
	if left, _ := os.ReadDir(tmp); len(left) != 1 {
		t.Errorf("in TMPDIR: %v, want the one export kept for the next render", left)
	}
	Cleanup()
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left behind in TMPDIR after Cleanup: %v", left)
	}
}

func TestConcurrentRenders(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		version, image, conf := f.tagOld, "nginx:1.0", "conf one"
		if i%2 == 1 {
			version, image, conf = f.tagNew, "nginx:2.0", "conf two"
		}
		wg.Go(func() {
			r, err := f.render(t, version, nil)
			if err != nil {
				errs <- err
				return
			}
			if !slices.Contains(r.Images, image) || string(r.Configs[0].Data) != conf {
				errs <- fmt.Errorf("%s rendered images %v config %q", version, r.Images, r.Configs[0].Data)
			}
			// Services of one render, concurrently: no shared state may race.
			var inner sync.WaitGroup
			for range 2 {
				inner.Go(func() {
					if _, err := r.Services(context.Background(), PlaceholderResolver()); err != nil {
						errs <- err
					}
				})
			}
			inner.Wait()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestComposeFileOverlays(t *testing.T) {
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "ov")
	h := repo.commit(map[string]string{
		".env.sample": `COMPOSE_FILE="compose.yml"
COMPOSE_FILE="$COMPOSE_FILE:compose.extra.yml"
#COMPOSE_FILE="$COMPOSE_FILE:compose.off.yml"
`,
		"compose.yml": `version: "3.8"
services:
  app:
    image: nginx:1
    environment: [BASE=1]
`,
		"compose.extra.yml": `version: "3.8"
services:
  app:
    environment: [EXTRA=1]
    configs: [sub]
configs:
  sub:
    file: sub/file.txt
`,
		"sub/file.txt": "from the first file's folder",
		"compose.off.yml": `version: "3.8"
services:
  off:
    image: busybox:1
`,
		"compose.v37.yml": `version: "3.7"
services:
  app:
    environment: [V=1]
`,
	})
	repo.tag("1.0.0+1", h, true)
	render := func(env map[string]string) (*Rendered, error) {
		return Render(context.Background(), recipesDir, Request{App: "a", Recipe: "ov", Version: "1.0.0+1",
			Domain: "ov.example.org", Stack: "ov_example_org", Env: env})
	}

	r, err := render(nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Env["COMPOSE_FILE"] != "compose.yml:compose.extra.yml" {
		t.Errorf("COMPOSE_FILE = %q", r.Env["COMPOSE_FILE"])
	}
	svcs, err := r.Services(context.Background(), PlaceholderResolver())
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 {
		t.Errorf("services %v, want only app (compose.off.yml is commented out)", keys(svcs))
	}
	env := svcs["ov_example_org_app"].TaskTemplate.ContainerSpec.Env
	if !slices.Contains(env, "BASE=1") || !slices.Contains(env, "EXTRA=1") {
		t.Errorf("app env %v, want BASE and EXTRA merged", env)
	}
	if len(r.Configs) != 1 || string(r.Configs[0].Data) != "from the first file's folder" {
		t.Errorf("configs %+v", r.Configs)
	}

	r, err = render(map[string]string{"COMPOSE_FILE": "compose.yml:compose.off.yml"})
	if err != nil {
		t.Fatal(err)
	}
	if svcs, _ := r.Services(context.Background(), PlaceholderResolver()); len(svcs) != 2 || len(r.Configs) != 0 {
		t.Errorf("spec COMPOSE_FILE not used: services %v, configs %d", keys(svcs), len(r.Configs))
	}

	_, err = render(map[string]string{"COMPOSE_FILE": "compose.yml:compose.v37.yml"})
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "different versions") {
		t.Errorf("err = %v, want ErrInput about different versions", err)
	}
}

func TestDockerComposeYmlFallback(t *testing.T) {
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "old")
	h := repo.commit(map[string]string{"docker-compose.yml": composeV1, "conf.txt": "x", "abra.sh": "export CONF_VERSION=v1\n"})
	repo.tag("0.1.0+1", h, false)
	r, err := Render(context.Background(), recipesDir, Request{App: "a", Recipe: "old", Version: "0.1.0+1", Domain: "d", Stack: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Images) != 1 || r.Images[0] != "nginx:1.0" {
		t.Errorf("images %v", r.Images)
	}
}

func TestGeneratedSecretErrors(t *testing.T) {
	compose := `version: "3.8"
services:
  app:
    image: nginx:1
    secrets: [pw]
secrets:
  pw:
    external: true
    name: ${STACK_NAME}_a_rather_long_secret_name_${SECRET_PW_VERSION}
`
	tests := []struct {
		name, sample string
		env          map[string]string
		stack        string
		want         string
	}{
		{name: "name over 64", sample: "SECRET_PW_VERSION=v1\n", stack: strings.Repeat("s", 40), want: "over swarm's limit of 64"},
		{name: "version unset", sample: "#SECRET_PW_VERSION=v1\n", stack: "s", want: "set SECRET_PW_VERSION (e.g. v1) in the spec env"},
		{name: "bad length", sample: "SECRET_PW_VERSION=v1 # length=many\n", stack: "s", want: "length=many is not a number"},
		{name: "length swarm refuses", sample: "SECRET_PW_VERSION=v1 # length=512000\n", stack: "s", want: "length=512000 is not a number from 0 to 511999"},
		{name: "bad charset", sample: "SECRET_PW_VERSION=v1 # charset=default,emoji\n", stack: "s", want: `unknown character set "emoji"`},
		{name: "bad generate", sample: "SECRET_PW_VERSION=v1 # generate=maybe\n", stack: "s", want: "generate=maybe must be true or false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recipesDir := t.TempDir()
			repo := newTestRepo(t, recipesDir, "sec")
			repo.commit(map[string]string{"compose.yml": compose, ".env.sample": tc.sample})
			head, _ := repo.repo.Head()
			_, err := Render(context.Background(), recipesDir, Request{App: "a", Recipe: "sec", Version: head.Hash().String(),
				Domain: "d", Stack: tc.stack, Env: tc.env})
			if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInput containing %q", err, tc.want)
			}
		})
	}

	// A commented-out version line still gives its modifiers once the spec enables it.
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "sec")
	h := repo.commit(map[string]string{"compose.yml": compose, ".env.sample": "#SECRET_PW_VERSION=v1 # length=77\n"})
	r, err := Render(context.Background(), recipesDir, Request{App: "a", Recipe: "sec", Version: h.String(),
		Domain: "d", Stack: "s", Env: map[string]string{"SECRET_PW_VERSION": "v3"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GeneratedSecrets) != 1 || r.GeneratedSecrets[0].Name != "s_a_rather_long_secret_name_v3" || r.GeneratedSecrets[0].Length != 77 {
		t.Errorf("generated %+v", r.GeneratedSecrets)
	}
}

func TestTagsAndPreviousTag(t *testing.T) {
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "tags")
	h := repo.commit(map[string]string{"compose.yml": composeV1})
	for _, tag := range []string{"1.10.0+2", "1.9.0+1", "1.9.0+1.27.10", "1.9.0+1.27.9", "2.0.0-rc.1+x", "2.0.0+x", "latest", "0.1.0+a"} {
		repo.tag(tag, h, tag != "1.9.0+1")
	}
	tags, err := Tags(recipesDir, "tags")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0.1.0+a", "1.9.0+1", "1.9.0+1.27.9", "1.9.0+1.27.10", "1.10.0+2", "2.0.0-rc.1+x", "2.0.0+x"}
	if !slices.Equal(tags, want) {
		t.Errorf("Tags = %v\nwant   %v", tags, want)
	}
	for version, want := range map[string]string{
		"2.0.0+x":    "2.0.0-rc.1+x",
		"1.10.0+2":   "1.9.0+1.27.10",
		"1.9.5+z":    "1.9.0+1.27.10", // not a tag itself: the release just below
		"3.0.0":      "2.0.0+x",
		"1.9.0+1.27": "1.9.0+1", // same recipe version, older upstream
	} {
		got, err := PreviousTag(recipesDir, "tags", version)
		if err != nil || got != want {
			t.Errorf("PreviousTag(%s) = %q, %v; want %q", version, got, err, want)
		}
	}
	for _, version := range []string{"0.1.0+a", "latest"} {
		if _, err := PreviousTag(recipesDir, "tags", version); !errors.Is(err, ErrInput) {
			t.Errorf("PreviousTag(%s) err = %v, want ErrInput", version, err)
		}
	}
	if _, err := Tags(recipesDir, "missing"); !errors.Is(err, ErrInput) {
		t.Errorf("Tags of a missing recipe: %v, want ErrInput", err)
	}
}

func TestRenderMissingConfigFile(t *testing.T) {
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "nofile")
	h := repo.commit(map[string]string{"compose.yml": composeV1, "abra.sh": "export CONF_VERSION=v1\n"})
	_, err := Render(context.Background(), recipesDir, Request{App: "a", Recipe: "nofile", Version: h.String(), Domain: "d", Stack: "s"})
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "open conf.txt") || strings.Contains(err.Error(), os.TempDir()) {
		t.Fatalf("err = %v, want ErrInput naming conf.txt relative to the recipe", err)
	}
}

func TestRenderSymlinks(t *testing.T) {
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "links")
	repo.write(map[string]string{"compose.yml": `version: "3.8"
services:
  app:
    image: nginx:1
configs:
  inside:
    file: inside.txt
`, "abra.sh": "", "real/conf.txt": "real content"})
	for name, target := range map[string]string{"inside.txt": "real/conf.txt", "outside.txt": "/etc/hostname", "up.txt": "../links/real/conf.txt"} {
		if err := os.Symlink(target, filepath.Join(repo.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	h := repo.commit(nil)
	r, err := Render(context.Background(), recipesDir, Request{App: "a", Recipe: "links", Version: h.String(), Domain: "d", Stack: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Configs) != 1 || string(r.Configs[0].Data) != "real content" {
		t.Errorf("configs %+v, want the in-tree symlink followed", r.Configs)
	}
	for _, name := range []string{"outside.txt", "up.txt"} {
		_, err := Render(context.Background(), recipesDir, Request{App: "a", Recipe: "links", Version: h.String(), Domain: "d", Stack: "s",
			Env: map[string]string{"COMPOSE_FILE": "compose.yml:" + name}})
		if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), fmt.Sprintf("COMPOSE_FILE names %q", name)) {
			t.Errorf("a symlink leaving the recipe (%s) was exported: err = %v", name, err)
		}
	}
}

// TestSpecOverlays: a spec's overlays merge after COMPOSE_FILE, in order, as more -c files:
// interpolated with the app's env, taking the recipe's version when they declare none;
// what docker refuses in one is said naming it and the line of the field.
func TestSpecOverlays(t *testing.T) {
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "sov")
	h := repo.commit(map[string]string{
		".env.sample": "GREETING=hi\n",
		"compose.yml": `version: "3.8"
services:
  app:
    image: nginx:1
    environment: [BASE=1]
`,
	})
	repo.tag("1.0.0+1", h, true)
	render := func(overlays ...Overlay) (*Rendered, error) {
		return Render(context.Background(), recipesDir, Request{App: "a", Recipe: "sov", Version: "1.0.0+1",
			Domain: "sov.example.org", Stack: "sov_example_org", Overlays: overlays})
	}
	r, err := render(
		Overlay{Name: "overlays/ci.yml", Data: []byte("version: \"3.8\"\nservices:\n  app:\n    environment:\n      - CI=${GREETING}\n    ports: [{target: 80, published: 18080, mode: host}]\n")},
		Overlay{Name: "inline[1]", Line: 7, Data: []byte("services:\n  app:\n    environment: [CI=second]\n    deploy: {resources: {limits: {memory: 256M}}}\n")},
	)
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := r.Services(context.Background(), PlaceholderResolver())
	if err != nil {
		t.Fatal(err)
	}
	app := svcs["sov_example_org_app"]
	env := app.TaskTemplate.ContainerSpec.Env
	if !slices.Contains(env, "BASE=1") || !slices.Contains(env, "CI=second") || slices.Contains(env, "CI=hi") {
		t.Errorf("env %v: want BASE from the recipe and CI from the last overlay", env)
	}
	if ports := app.EndpointSpec.Ports; len(ports) != 1 || ports[0].PublishedPort != 18080 || ports[0].PublishMode != "host" {
		t.Errorf("ports %+v, want the first overlay's host port", ports)
	}
	if lim := app.TaskTemplate.Resources.Limits; lim == nil || lim.MemoryBytes != 256<<20 {
		t.Errorf("limits %+v, want 256M from the inline overlay", lim)
	}

	r, err = render(Overlay{Name: "overlays/ci.yml", Data: []byte("services:\n  app:\n    environment:\n      - CI=${GREETING}\n")})
	if err != nil {
		t.Fatal(err)
	}
	if svcs, _ := r.Services(context.Background(), PlaceholderResolver()); !slices.Contains(svcs["sov_example_org_app"].TaskTemplate.ContainerSpec.Env, "CI=hi") {
		t.Errorf("overlay not interpolated with the app env: %v", svcs["sov_example_org_app"].TaskTemplate.ContainerSpec.Env)
	}

	for _, tc := range []struct {
		name string
		o    Overlay
		want []string
	}{
		{"yaml", Overlay{Name: "overlays/bad.yml", Data: []byte("services:\n  app: [\n")}, []string{"overlay overlays/bad.yml does not parse", "line"}},
		{"schema", Overlay{Name: "overlays/schema.yml", Data: []byte("services:\n  app:\n    deploy:\n      replicaz: 2\n")},
			[]string{"overlay overlays/schema.yml, line 3:", "replicaz"}},
		{"schema inline", Overlay{Name: "inline[0]", Line: 10, Data: []byte("services:\n  app:\n    ports: {a: b}\n")},
			[]string{"overlay inline[0], line 13 of the spec:", "ports"}},
		{"version", Overlay{Name: "overlays/v.yml", Data: []byte("version: \"3.7\"\nservices: {}\n")}, []string{"declares compose version 3.7", `give it version "3.8"`}},
		{"no such service", Overlay{Name: "overlays/new.yml", Data: []byte("services:\n  apq: {environment: [A=1]}\n")},
			[]string{"overlay overlays/new.yml, line 2: services.apq: the recipe has no service apq", "(app)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(tc.o)
			if !errors.Is(err, ErrInput) {
				t.Fatalf("err = %v, want ErrInput", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to say %q", err, w)
				}
			}
		})
	}
}
