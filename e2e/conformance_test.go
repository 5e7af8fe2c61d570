package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/manifests"
)

// The conformance test of DESIGN.md ("Testing"): each real-world recipe of ../shared/recipes is
// deployed twice on the swarm, through the reconciler and through `docker stack deploy` of the
// same compose files with the same env, and the service specs swarm stores for the two are
// compared field by field. The differences allowed are the ones DESIGN.md names:
//
//   - labels the reconciler adds (swarm-reconciler.*) on services, networks, configs and
//     secrets, and on the stack's named volumes (VolumeOptions.Labels of mounts);
//   - the recipe labels abra stamps on the app service (coop-cloud.<stack>.recipe, .version,
//     .chaos, .chaos-version), which replace a version label the compose file declares itself;
//   - the app env that abra exposes on the app service (every app env variable the service does
//     not set itself), with the app env's values;
//   - object IDs, versions and timestamps: secret and config references are compared by name
//     and target, network attachments by network name; the VXLAN ID swarm allocates to each
//     overlay network is left out like its ID;
//   - the stack name itself, which differs by construction: both stacks are compared with
//     their name replaced by "<stack>" (DOMAIN is the same for both).
//
// Images cannot be pulled here, so the echo test image is tagged as every image the recipes
// name (tags that already exist are left alone) and removed again at the end; tasks run the
// echo binary or fail to start, which does not matter: only the stored specs are compared.

// confSharedRecipes is where the shared recipes are, relative to this package's folder.
const confSharedRecipes = "../../shared/recipes"

// confLabel marks what this test creates itself outside the two stacks (the secrets that
// docker stack deploy needs to exist, an external network that was missing), for cleanup.
const confLabel = "swarm-reconciler-e2e.conformance"

// confSharedDir returns the shared recipes folder. Where it does not exist (a user's own clone)
// the test is skipped, unless CI is set: then it fails.
func confSharedDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(confSharedRecipes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("conformance recipes not found at %s (CI is set, so this is a failure): %v", dir, err)
		}
		t.Skipf("conformance recipes not found at %s: they exist only in the project's own workspace (%v); with CI set this fails", dir, err)
	}
	return dir
}

// confCase is one deploy to compare: a recipe with spec env overrides.
type confCase struct {
	name   string // subtest name
	prefix string // app name prefix
	recipe string
	env    map[string]string
	// overlay, when set, is a CI's compose overlay: the spec names it (overlays: - file:), and
	// docker stack deploy gets it as one more -c after the recipe's files.
	overlay string
}

// confOverlay is the overlay of the "+ overlay" cases: what a CI's compose.ccci.yml does to a
// recipe (a test-only host port, an env value, lower limits, a shorter healthcheck start).
const confOverlay = `version: "3.8"
services:
  app:
    environment:
      - CI_RUN=conformance
    ports:
      - target: 80
        published: 28080
        mode: host
    deploy:
      resources:
        limits:
          memory: 256M
    healthcheck:
      start_period: 5s
`

// confBrokenOverlay is left out of bonfire's "every overlay" case: its app service uses the
// secret github_client_secret but the file declares oauth_client_secret, so docker stack
// deploy refuses it ("undefined secret"), and so does the reconciler (manifests' own
// conformance test checks that).
const confBrokenOverlay = "compose.auth.github.yml"

func confCases(t *testing.T, shared string) []confCase {
	t.Helper()
	var overlays []string
	root := filepath.Join(shared, "bonfire")
	for _, pattern := range []string{"compose.*.yml", "*/compose.*.yml"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			rel, _ := filepath.Rel(root, p)
			if rel = filepath.ToSlash(rel); rel != confBrokenOverlay {
				overlays = append(overlays, rel)
			}
		}
	}
	sort.Strings(overlays)
	if len(overlays) < 17 {
		t.Fatalf("found %d bonfire overlays besides %s, want at least 17: %v", len(overlays), confBrokenOverlay, overlays)
	}
	return []confCase{
		{name: "bonfire", prefix: "cf-bf", recipe: "bonfire"},
		{name: "bonfire-every-overlay", prefix: "cf-bfo", recipe: "bonfire", env: map[string]string{
			"COMPOSE_FILE": strings.Join(append([]string{"compose.yml"}, overlays...), ":"),
			// compose.basicauth.yml names its secret without a default version and
			// .env.sample leaves it commented out: enable it as an operator would.
			"SECRET_USERSFILE_VERSION": "v1",
		}},
		{name: "bonfire-ci-overlay", prefix: "cf-bfc", recipe: "bonfire", overlay: confOverlay},
		{name: "custom-php", prefix: "cf-php", recipe: "custom-php"},
		{name: "custom-php-ci-overlay", prefix: "cf-phpc", recipe: "custom-php", overlay: confOverlay},
		{name: "custom-php-smtp-relay", prefix: "cf-phps", recipe: "custom-php", env: map[string]string{
			// The "remote SMTP relay" block of .env.sample, uncommented.
			"COMPOSE_FILE":                 "compose.yml:compose.mailrelay.yml:compose.smtp.yml",
			"SMTP_HOST":                    "mail.example.com",
			"MAIL_FROM":                    "site@example.com",
			"SMTP_PORT":                    "587",
			"SMTP_AUTH":                    "on",
			"SMTP_TLS":                     "on",
			"SECRET_SMTP_PASSWORD_VERSION": "v1",
		}},
		{name: "gaseous", prefix: "cf-gas", recipe: "gaseous"},
	}
}

// confImportRecipe makes <recipesDir>/<name> a git repository of the shared recipe folder: one
// commit, then an annotated tag per line of its TAGS file (a made-up release tag when it lists
// none). It returns the newest tag.
func confImportRecipe(t *testing.T, shared, recipesDir, name string) string {
	t.Helper()
	dir := filepath.Join(recipesDir, name)
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(shared, name))); err != nil {
		t.Fatalf("copy recipe %s: %v", name, err)
	}
	tags, err := confReadTags(filepath.Join(shared, name, "TAGS"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) == 0 {
		tags = []string{"0.0.1+conformance"}
	}
	steps := [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"commit", "-q", "-m", "import " + name + " from the shared conformance recipes"},
	}
	for _, tag := range tags {
		steps = append(steps, []string{"tag", "-a", tag, "-m", "release " + tag})
	}
	for _, args := range steps {
		if err := git(dir, args...); err != nil {
			t.Fatal(err)
		}
	}
	return tags[len(tags)-1]
}

// confReadTags reads a TAGS file: one tag a line, # comments.
func confReadTags(path string) ([]string, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var tags []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			tags = append(tags, line)
		}
	}
	return tags, sc.Err()
}

func TestConformanceStackDeploy(t *testing.T) {
	shared := confSharedDir(t)
	needBinary(t)
	ctx := context.Background()
	start := time.Now()
	cases := confCases(t, shared)

	// Render every case once, only to learn the images to tag and the external networks that
	// must exist before either deploy.
	dir := t.TempDir()
	versions := map[string]string{}
	images, externals := map[string]bool{}, map[string]bool{}
	for _, c := range cases {
		if versions[c.recipe] == "" {
			versions[c.recipe] = confImportRecipe(t, shared, dir, c.recipe)
		}
		r, err := manifests.Render(ctx, dir, manifests.Request{App: "conformance", Recipe: c.recipe,
			Version: versions[c.recipe], Domain: "conformance." + domainSuffix, Stack: "conformance_e2e_test", Env: c.env})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, ref := range r.Images {
			images[ref] = true
		}
		for _, n := range r.ExternalNetworks {
			externals[n] = true
		}
	}
	runID := randomSuffix()
	confTagImages(t, ctx, slices.Sorted(maps.Keys(images)))
	confEnsureNetworks(t, ctx, slices.Sorted(maps.Keys(externals)), runID)

	t.Run("group", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				confRun(t, shared, c)
			})
		}
	})
	t.Logf("conformance of %d deploys: %s", len(cases), time.Since(start).Round(time.Second))
}

// confTagImages tags the echo image as each ref that is not present yet, and removes those tags
// when the test ends.
func confTagImages(t *testing.T, ctx context.Context, refs []string) {
	t.Helper()
	for _, ref := range refs {
		if _, err := suite.docker.ImageInspect(ctx, ref); err == nil {
			t.Logf("image %s is present on this node: used as it is and left in place", ref)
			continue
		} else if !cerrdefs.IsNotFound(err) {
			t.Fatalf("inspect image %s: %v", ref, err)
		}
		t.Cleanup(func() {
			if _, err := suite.docker.ImageRemove(context.Background(), ref, image.RemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
				t.Errorf("cleanup: remove image tag %s: %v", ref, err)
			}
		})
		if err := suite.docker.ImageTag(ctx, echoImage, ref); err != nil {
			t.Fatalf("tag %s as %s: %v", echoImage, ref, err)
		}
	}
	t.Logf("tagged %s as %d recipe images", echoImage, len(refs))
}

// confEnsureNetworks makes sure each external network exists (Co-op Cloud's traefik creates
// "proxy" on a real server), creating the missing ones and removing those when the test ends.
func confEnsureNetworks(t *testing.T, ctx context.Context, names []string, runID string) {
	t.Helper()
	for _, name := range names {
		n, err := suite.docker.NetworkInspect(ctx, name, network.InspectOptions{})
		if err == nil {
			if n.Scope != "swarm" {
				t.Fatalf("external network %s exists with scope %q, not swarm: stack deploys cannot use it", name, n.Scope)
			}
			continue
		}
		if !cerrdefs.IsNotFound(err) {
			t.Fatalf("inspect network %s: %v", name, err)
		}
		resp, err := suite.docker.NetworkCreate(ctx, name, network.CreateOptions{
			Driver: "overlay", Attachable: true, Labels: map[string]string{confLabel: runID},
		})
		if err != nil {
			t.Fatalf("create external network %s: %v", name, err)
		}
		t.Cleanup(func() {
			// The stacks are gone by now, but a stopped task may still hold an endpoint.
			var last error
			err := poll(context.Background(), time.Minute, func() (bool, error) {
				last = suite.docker.NetworkRemove(context.Background(), resp.ID)
				return last == nil || cerrdefs.IsNotFound(last), nil
			})
			if err != nil {
				t.Errorf("cleanup: remove network %s that this test created: %v (last error: %v)", name, err, last)
			}
		})
	}
}

// confRun deploys one case both ways and compares what swarm stored.
func confRun(t *testing.T, shared string, c confCase) {
	ctx := context.Background()
	start := time.Now()
	h := startHarness(t)
	version := confImportRecipe(t, shared, h.recipes, c.recipe)
	app := c.prefix + "-" + randomSuffix()
	domain := app + "." + domainSuffix
	recStack := strings.ReplaceAll(domain, ".", "_")
	// Not "cli-<app>": the harness takes containers of any service named "...<app>_..." for
	// the app's (appContainers), and swarm may start one of this stack's tasks just as it is
	// removed, after stackRmPoll saw none (CI: "removing by force what the reconciler left:
	// container ... of cli-cf-bf-..._db, Up 1 second").
	cliStack := app + "-cli"
	t.Cleanup(func() { h.cleanupApp(app) })
	t.Cleanup(func() { confRemoveStack(t, cliStack) })

	// The same app env for docker stack deploy, as abra builds it for a stack named cliStack
	// with the same domain; and the external secrets abra would have generated for it.
	var overlays []manifests.Overlay
	if c.overlay != "" {
		// Its own host port, on both sides (one of the two tasks waits for it: the stored
		// specs are what is compared).
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		c.overlay = strings.ReplaceAll(c.overlay, "28080", strconv.Itoa(port))
		overlays = []manifests.Overlay{{Name: "overlays/ci.yml", Data: []byte(c.overlay)}}
	}
	cli, err := manifests.Render(ctx, h.recipes, manifests.Request{App: app, Recipe: c.recipe, Version: version,
		Domain: domain, Stack: cliStack, Env: c.env, Overlays: overlays})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range cli.GeneratedSecrets {
		data := make([]byte, 32)
		rand.Read(data)
		if _, err := suite.docker.SecretCreate(ctx, swarm.SecretSpec{
			Annotations: swarm.Annotations{Name: g.Name, Labels: map[string]string{confLabel: cliStack}},
			Data:        data,
		}); err != nil {
			t.Fatalf("create secret %s for docker stack deploy: %v", g.Name, err)
		}
	}

	var spec strings.Builder
	fmt.Fprintf(&spec, "recipe: %s\nversion: %q\ntimeout: 10m\n", c.recipe, version)
	if len(c.env) > 0 {
		spec.WriteString("env:\n")
		for _, k := range slices.Sorted(maps.Keys(c.env)) {
			fmt.Fprintf(&spec, "  %s: %q\n", k, c.env[k])
		}
	}
	if c.overlay != "" {
		if err := os.MkdirAll(filepath.Join(h.specs, "overlays"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(h.specs, "overlays", "ci.yml"), []byte(c.overlay), 0o644); err != nil {
			t.Fatal(err)
		}
		spec.WriteString("overlays:\n  - file: overlays/ci.yml\n")
	}
	gen := h.writeSpec(app, []byte(spec.String()))
	if c.overlay != "" {
		gen = desiredGeneration(t, h, app) // the overlay's bytes are part of it
	}

	checkout, err := stackCheckout(ctx, recipe{Name: c.recipe, Dir: filepath.Join(h.recipes, c.recipe)}, version, t.TempDir(), cliStack)
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	if c.overlay != "" {
		if err := os.WriteFile(filepath.Join(checkout, "ci-overlay.yml"), []byte(c.overlay), 0o644); err != nil {
			t.Fatal(err)
		}
		extra = append(extra, "ci-overlay.yml")
	}
	if err := confStackDeploy(ctx, checkout, cliStack, cli.Env, extra...); err != nil {
		t.Fatal(err)
	}
	cliSide, err := confCollect(ctx, "docker stack deploy", cliStack)
	if err != nil {
		t.Fatal(err)
	}
	want := len(cliSide.services)
	if want == 0 {
		t.Fatalf("docker stack deploy of %s created no services", cliStack)
	}

	// The reconciler has created every service once a pass after the creation observed them
	// all; its phase depends on the tasks (Deploying while they crash), which do not matter.
	if _, err := h.awaitStatus(app, fmt.Sprintf("all %d services created", want), func(s appStatus) (bool, string) {
		if s.ObservedGeneration != gen {
			return false, ""
		}
		idx, err := serviceIndexes(ctx, suite.docker, app)
		if err == nil && len(idx) >= want && len(s.Services) >= want {
			return true, ""
		}
		if s.Phase == "Invalid" || s.Phase == "Failed" {
			return false, fmt.Sprintf("reached %s with %d of %d services", s.Phase, len(idx), want)
		}
		return false, ""
	}); err != nil {
		t.Fatal(err)
	}
	recSide, err := confCollect(ctx, "reconciler", recStack)
	if err != nil {
		t.Fatal(err)
	}

	cmp := &confComparison{t: t, rec: recSide, cli: cliSide, app: app, recipe: c.recipe, version: version,
		appEnv: cli.Env, norm: strings.NewReplacer(recStack, "<stack>", cliStack, "<stack>")}
	if cmp.netNames, err = confNetworkNames(ctx); err != nil {
		t.Fatal(err)
	}
	cmp.compare()
	t.Logf("%s@%s: %d services, %d networks, %d configs compared (%d fields); allowed differences: %d; deployed and compared in %s",
		c.recipe, version, len(cliSide.services), len(cliSide.networks), len(cliSide.configs), cmp.fields, len(cmp.allowed),
		time.Since(start).Round(100*time.Millisecond))
	for _, a := range cmp.allowed {
		t.Logf("  allowed: %s", a)
	}
}

// confStackDeploy runs `docker stack deploy` of the compose files that COMPOSE_FILE names, in
// checkout, as abra deploys them: the compose files are interpolated with the app env only.
// The docker CLI gets just what it needs to reach the daemon besides; the rest of the test's
// environment (LANG, USER, ...) would leak into ${VAR:-default} and bare `- VAR` entries.
//
// extra are more -c files after them (a CI's overlay).
func confStackDeploy(ctx context.Context, checkout, stack string, appEnv map[string]string, extra ...string) error {
	files := []string{"compose.yml"}
	if cf := strings.TrimSpace(appEnv["COMPOSE_FILE"]); cf != "" {
		files = nil
		for f := range strings.SplitSeq(cf, ":") {
			if f = strings.TrimSpace(f); f != "" {
				files = append(files, f)
			}
		}
	}
	files = append(files, extra...)
	args := []string{"stack", "deploy", "--resolve-image", "never", "--detach=true"}
	for _, f := range files {
		args = append(args, "-c", f)
	}
	args = append(args, stack)
	var env []string
	for _, k := range []string{"PATH", "HOME", "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "DOCKER_API_VERSION"} {
		if v, ok := os.LookupEnv(k); ok {
			if _, clash := appEnv[k]; !clash {
				env = append(env, k+"="+v)
			}
		}
	}
	for k, v := range appEnv {
		env = append(env, k+"="+v)
	}
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Dir = checkout
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// confRemoveStack removes the docker stack deploy stack and the secrets made for it.
func confRemoveStack(t *testing.T, stack string) {
	ctx := context.Background()
	if left, err := labelled(ctx, suite.docker, namespaceLabel, stack); err != nil || len(left) > 0 {
		if err := stackRemove(ctx, stack); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if err := removeLabelled(ctx, suite.docker, confLabel, stack); err != nil {
		t.Errorf("cleanup: secrets of %s: %v", stack, err)
	}
}

// confSide is what swarm stores for one stack.
type confSide struct {
	name     string // who deployed it
	stack    string
	services map[string]swarm.Service   // by name without the stack prefix
	networks map[string]network.Summary // by name without the stack prefix
	configs  map[string]swarm.Config    // by name
	secrets  map[string]swarm.Secret    // by name; only those with the stack label
}

func confCollect(ctx context.Context, name, stack string) (*confSide, error) {
	f := filters.NewArgs(filters.Arg("label", namespaceLabel+"="+stack))
	s := &confSide{name: name, stack: stack, services: map[string]swarm.Service{}, networks: map[string]network.Summary{},
		configs: map[string]swarm.Config{}, secrets: map[string]swarm.Secret{}}
	services, err := suite.docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	for _, svc := range services {
		// The stored spec as inspect shows it, without defaults filled in.
		full, _, err := suite.docker.ServiceInspectWithRaw(ctx, svc.ID, swarm.ServiceInspectOptions{})
		if err != nil {
			return nil, err
		}
		s.services[strings.TrimPrefix(full.Spec.Name, stack+"_")] = full
	}
	networks, err := suite.docker.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	for _, n := range networks {
		s.networks[strings.TrimPrefix(n.Name, stack+"_")] = n
	}
	configs, err := suite.docker.ConfigList(ctx, swarm.ConfigListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	for _, c := range configs {
		s.configs[c.Spec.Name] = c
	}
	secrets, err := suite.docker.SecretList(ctx, swarm.SecretListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	for _, sec := range secrets {
		s.secrets[sec.Spec.Name] = sec
	}
	return s, nil
}

// confNetworkNames maps every network ID to its name: swarm stores a service's network
// attachments by ID.
func confNetworkNames(ctx context.Context) (map[string]string, error) {
	networks, err := suite.docker.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(networks))
	for _, n := range networks {
		names[n.ID] = n.Name
	}
	return names, nil
}

// confComparison compares the reconciler's stack (rec) with docker stack deploy's (cli).
type confComparison struct {
	t                    *testing.T
	rec, cli             *confSide
	app, recipe, version string
	appEnv               map[string]string // the app env of the cli stack
	norm                 *strings.Replacer // both stack names to "<stack>"
	netNames             map[string]string
	fields               int      // leaf values compared
	allowed              []string // differences DESIGN.md allows, as seen
	// ownLabelled counts the reconciler's objects by the set of reconciler labels they carry.
	ownLabelled map[string]int
}

const ownPrefix = "swarm-reconciler."

func (c *confComparison) allow(format string, args ...any) {
	c.allowed = append(c.allowed, fmt.Sprintf(format, args...))
}

func (c *confComparison) compare() {
	c.compareServices()
	c.compareNetworks()
	c.compareConfigs()
	c.compareSecrets()
	for _, keys := range slices.Sorted(maps.Keys(c.ownLabelled)) {
		c.allow("reconciler labels %s on %d objects (services, mounted volumes, networks, configs, secrets)", keys, c.ownLabelled[keys])
	}
}

// ownLabels drops the reconciler's labels from a copy of labels: allowed on the reconciler's
// side, and never expected on docker stack deploy's.
func (c *confComparison) ownLabels(side *confSide, what string, labels map[string]string) map[string]string {
	out := map[string]string{}
	var own []string
	for k, v := range labels {
		if strings.HasPrefix(k, ownPrefix) {
			own = append(own, k)
			continue
		}
		out[k] = v
	}
	sort.Strings(own)
	switch {
	case len(own) == 0:
	case side == c.rec:
		if c.ownLabelled == nil {
			c.ownLabelled = map[string]int{}
		}
		c.ownLabelled[strings.Join(own, ", ")]++
	default:
		c.t.Errorf("%s: docker stack deploy's object carries reconciler labels %v", what, own)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (c *confComparison) compareServices() {
	for _, name := range confUnion(c.rec.services, c.cli.services) {
		rec, inRec := c.rec.services[name]
		cli, inCLI := c.cli.services[name]
		switch {
		case !inRec:
			c.t.Errorf("service %s: docker stack deploy created it, the reconciler did not", name)
			continue
		case !inCLI:
			c.t.Errorf("service %s: the reconciler created it, docker stack deploy did not", name)
			continue
		}
		if got := rec.Spec.Labels[manifests.LabelApp]; got != c.app {
			c.t.Errorf("service %s: label %s = %q, want %q", name, manifests.LabelApp, got, c.app)
		}
		recSpec := c.normService(c.rec, name, rec.Spec)
		cliSpec := c.normService(c.cli, name, cli.Spec)
		c.compareEnv(name, recSpec, cliSpec)
		var diffs []string
		c.diff("service "+name, c.generic(recSpec), c.generic(cliSpec), &diffs)
		for _, d := range diffs {
			c.t.Errorf("%s", d)
		}
	}
}

// abraLabelKeys are the labels abra stamps on the app service (DESIGN.md).
var abraLabelKeys = []string{"recipe", "version", "chaos", "chaos-version"}

// normService returns a copy of spec with what DESIGN.md allows to differ taken out: the
// reconciler's labels, abra's labels on the app service, the IDs in secret and config
// references, network IDs (replaced by names).
func (c *confComparison) normService(side *confSide, name string, spec swarm.ServiceSpec) swarm.ServiceSpec {
	spec = confDeepCopy(spec)
	what := side.name + " service " + name
	labels := c.ownLabels(side, "service "+name, spec.Labels)
	if name == "app" {
		for _, k := range abraLabelKeys {
			key := "coop-cloud." + side.stack + "." + k
			v, ok := labels[key]
			delete(labels, key)
			if side == c.rec {
				want := map[string]string{"recipe": c.recipe, "version": c.version, "chaos": "false"}[k]
				if !ok || (want != "" && v != want) {
					c.t.Errorf("service app: abra label %s = %q (present %v), want %q", key, v, ok, want)
				}
			} else if ok && v != c.version {
				c.allow("service app: the compose file sets %s=%s, which abra (and the reconciler) replace with the deployed version %s",
					c.norm.Replace(key), v, c.version)
			}
		}
	}
	spec.Labels = labels
	//lint:ignore SA1019 an engine of API 1.41 may still fill the service-level field
	serviceNets := spec.Networks
	for i := range serviceNets {
		serviceNets[i].Target = c.netName(serviceNets[i].Target)
	}
	for i := range spec.TaskTemplate.Networks {
		spec.TaskTemplate.Networks[i].Target = c.netName(spec.TaskTemplate.Networks[i].Target)
	}
	if cs := spec.TaskTemplate.ContainerSpec; cs != nil {
		for _, s := range cs.Secrets {
			s.SecretID = ""
		}
		for _, cf := range cs.Configs {
			cf.ConfigID = ""
		}
		for i, m := range cs.Mounts {
			if m.VolumeOptions != nil {
				cs.Mounts[i].VolumeOptions.Labels = c.ownLabels(side, fmt.Sprintf("%s mount %s", what, m.Target), m.VolumeOptions.Labels)
			}
		}
	}
	return spec
}

func (c *confComparison) netName(target string) string {
	if n, ok := c.netNames[target]; ok {
		return n
	}
	return target
}

// compareEnv compares the containers' env as sets (convert sorts it) and takes it out of both
// specs. On the app service the reconciler's may have more: the app env abra exposes, every
// app env variable the service does not set itself, with the app env's value; and it must have
// all of that.
func (c *confComparison) compareEnv(name string, rec, cli swarm.ServiceSpec) {
	if rec.TaskTemplate.ContainerSpec == nil || cli.TaskTemplate.ContainerSpec == nil {
		return // the generic comparison reports the difference
	}
	recEnv, cliEnv := map[string]bool{}, map[string]bool{}
	cliKeys := map[string]bool{}
	for _, e := range rec.TaskTemplate.ContainerSpec.Env {
		recEnv[c.norm.Replace(e)] = true
	}
	for _, e := range cli.TaskTemplate.ContainerSpec.Env {
		e = c.norm.Replace(e)
		cliEnv[e] = true
		k, _, _ := strings.Cut(e, "=")
		cliKeys[k] = true
	}
	exposed := 0
	for _, e := range slices.Sorted(maps.Keys(recEnv)) {
		c.fields++
		if cliEnv[e] {
			continue
		}
		k, v, hasValue := strings.Cut(e, "=")
		appValue, inAppEnv := c.appEnv[k]
		if name == "app" && !cliKeys[k] && inAppEnv && hasValue && v == c.norm.Replace(appValue) {
			exposed++
			continue
		}
		c.t.Errorf("service %s: env %q only in the reconciler's spec", name, e)
	}
	for _, e := range slices.Sorted(maps.Keys(cliEnv)) {
		if !recEnv[e] {
			c.t.Errorf("service %s: env %q only in docker stack deploy's spec", name, e)
		}
	}
	if name == "app" {
		for _, k := range slices.Sorted(maps.Keys(c.appEnv)) {
			if !cliKeys[k] && !recEnv[k+"="+c.norm.Replace(c.appEnv[k])] {
				c.t.Errorf("service app: abra exposes the app env variable %s on the app service; the reconciler's spec does not have it", k)
			}
		}
		if exposed > 0 {
			c.allow("service app: %d app env variables exposed (abra's ExposeAllEnv)", exposed)
		}
	}
	rec.TaskTemplate.ContainerSpec.Env = nil
	cli.TaskTemplate.ContainerSpec.Env = nil
}

func (c *confComparison) compareNetworks() {
	type net struct {
		Name, Driver, Scope              string
		EnableIPv6, Internal, Attachable bool
		Ingress                          bool
		IPAMDriver                       string
		IPAMOptions, Options, Labels     map[string]string
		ConfigOnly                       bool
		ConfigFrom                       string
		IPAMConfigs                      int
	}
	conv := func(side *confSide, name string, n network.Summary) net {
		// Swarm allocates each overlay network its VXLAN ID, as it does its ID and subnet.
		options := maps.Clone(n.Options)
		delete(options, "com.docker.network.driver.overlay.vxlanid_list")
		return net{Name: name, Driver: n.Driver, Scope: n.Scope, EnableIPv6: n.EnableIPv6, Internal: n.Internal,
			Attachable: n.Attachable, Ingress: n.Ingress, IPAMDriver: n.IPAM.Driver, IPAMOptions: n.IPAM.Options,
			Options: options, Labels: c.ownLabels(side, "network "+name, n.Labels), ConfigOnly: n.ConfigOnly,
			ConfigFrom: n.ConfigFrom.Network, IPAMConfigs: len(n.IPAM.Config)}
	}
	for _, name := range confUnion(c.rec.networks, c.cli.networks) {
		rec, inRec := c.rec.networks[name]
		cli, inCLI := c.cli.networks[name]
		if !inRec || !inCLI {
			c.t.Errorf("network %s: created by the reconciler %v, by docker stack deploy %v", name, inRec, inCLI)
			continue
		}
		var diffs []string
		c.diff("network "+name, c.generic(conv(c.rec, name, rec)), c.generic(conv(c.cli, name, cli)), &diffs)
		for _, d := range diffs {
			c.t.Errorf("%s", d)
		}
	}
}

func (c *confComparison) compareConfigs() {
	byName := func(side *confSide) map[string]swarm.ConfigSpec {
		out := map[string]swarm.ConfigSpec{}
		for name, cf := range side.configs {
			spec := confDeepCopy(cf.Spec)
			spec.Labels = c.ownLabels(side, "config "+c.norm.Replace(name), spec.Labels)
			out[c.norm.Replace(name)] = spec
		}
		return out
	}
	rec, cli := byName(c.rec), byName(c.cli)
	for _, name := range confUnion(rec, cli) {
		r, inRec := rec[name]
		l, inCLI := cli[name]
		if !inRec || !inCLI {
			c.t.Errorf("config %s: created by the reconciler %v, by docker stack deploy %v", name, inRec, inCLI)
			continue
		}
		var diffs []string
		c.diff("config "+name, c.generic(r), c.generic(l), &diffs)
		for _, d := range diffs {
			c.t.Errorf("%s", d)
		}
	}
}

// compareSecrets checks the secrets labelled with the stack: docker stack deploy's are the
// file-backed ones; the reconciler's are those plus the secrets it generated (abra's external
// secrets, which this test created for docker stack deploy unlabelled).
func (c *confComparison) compareSecrets() {
	generated := map[string]bool{}
	for _, svc := range c.cli.services {
		if cs := svc.Spec.TaskTemplate.ContainerSpec; cs != nil {
			for _, s := range cs.Secrets {
				if _, fileBacked := c.cli.secrets[s.SecretName]; !fileBacked {
					generated[c.norm.Replace(s.SecretName)] = true
				}
			}
		}
	}
	rec := map[string]swarm.SecretSpec{}
	for name, s := range c.rec.secrets {
		spec := confDeepCopy(s.Spec)
		spec.Labels = c.ownLabels(c.rec, "secret "+c.norm.Replace(name), spec.Labels)
		rec[c.norm.Replace(name)] = spec
	}
	for name, s := range c.cli.secrets {
		name = c.norm.Replace(name)
		r, ok := rec[name]
		if !ok {
			c.t.Errorf("secret %s: docker stack deploy created it, the reconciler did not", name)
			continue
		}
		delete(rec, name)
		spec := confDeepCopy(s.Spec)
		spec.Labels = c.ownLabels(c.cli, "secret "+name, spec.Labels)
		var diffs []string
		c.diff("secret "+name, c.generic(r), c.generic(spec), &diffs)
		for _, d := range diffs {
			c.t.Errorf("%s", d)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(rec)) {
		if !generated[name] {
			c.t.Errorf("secret %s: the reconciler created it, and no service of docker stack deploy's stack uses it as an external secret", name)
		}
	}
	if len(generated) > 0 {
		c.allow("%d external secrets: generated by the reconciler (labelled with the stack), created unlabelled by this test for docker stack deploy", len(generated))
	}
}

// generic turns v into JSON values (maps, slices, strings, numbers, bools) with both stack
// names replaced by "<stack>".
func (c *confComparison) generic(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal([]byte(c.norm.Replace(string(b))), &out); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// diff appends a line per leaf that differs between rec and cli.
func (c *confComparison) diff(path string, rec, cli any, out *[]string) {
	switch r := rec.(type) {
	case map[string]any:
		l, ok := cli.(map[string]any)
		if !ok {
			break
		}
		for _, k := range confUnion(r, l) {
			c.diff(path+"."+k, r[k], l[k], out)
		}
		return
	case []any:
		l, ok := cli.([]any)
		if !ok || len(l) != len(r) {
			break
		}
		for i := range r {
			c.diff(fmt.Sprintf("%s[%d]", path, i), r[i], l[i], out)
		}
		return
	}
	c.fields++
	if !reflect.DeepEqual(rec, cli) {
		*out = append(*out, fmt.Sprintf("%s: reconciler %s, docker stack deploy %s", path, confShow(rec), confShow(cli)))
	}
}

func confShow(v any) string {
	if v == nil {
		return "(absent)"
	}
	b, _ := json.Marshal(v)
	s := string(b)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func confUnion[V1, V2 any](a map[string]V1, b map[string]V2) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return slices.Sorted(maps.Keys(keys))
}

// confDeepCopy copies v through JSON, so that normalising never writes into what was inspected.
func confDeepCopy[T any](v T) T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}
