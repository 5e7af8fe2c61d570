package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// appService returns the app's one service, <stack>_app, failing unless it is the only one.
func (a *testApp) appService(t testing.TB) swarm.Service {
	t.Helper()
	services, err := suite.docker.ServiceList(context.Background(), swarm.ServiceListOptions{
		Filters: filters.NewArgs(filters.Arg("label", appLabel+"="+a.name)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(services) != 1 || services[0].Spec.Name != a.stack()+"_app" {
		var names []string
		for _, s := range services {
			names = append(names, s.Spec.Name)
		}
		t.Fatalf("app %s: want exactly the service %s_app labelled %s=%s, have %v", a.name, a.stack(), appLabel, a.name, names)
	}
	return services[0]
}

// checkAnswers fails the test unless the app answers GET / with the message of version and
// serves its swarm config and its generated secret (of the length .env.sample asks for).
func (a *testApp) checkAnswers(t testing.TB, version string) {
	t.Helper()
	ctx := context.Background()
	if err := waitHTTP(ctx, a.port, "/", a.h.recipe.message(version)); err != nil {
		t.Error(err)
	}
	if err := waitHTTP(ctx, a.port, "/config", configContent); err != nil {
		t.Error(err)
	}
	if err := waitHTTP(ctx, a.port, "/secret", fmt.Sprint(secretLength)); err != nil {
		t.Error(err)
	}
}

// TestInstallReady: a spec for the first release reaches Ready for its own generation after
// exactly one deploy, as the stack and service DESIGN.md names, labelled as abra would, and
// the app answers with that release's message (not the working tree's).
func TestInstallReady(t *testing.T) {
	h := startHarness(t)
	a := h.newApp("e2e-install")
	version := h.recipe.first().Version

	s := a.deploy(version)
	if s.Deploys != 1 {
		t.Errorf("deploys = %d after one install, want 1; status:\n%s", s.Deploys, s)
	}
	if s.Stack != a.stack() {
		t.Errorf("status stack = %q, want %q (the domain %s.%s with dots as underscores)", s.Stack, a.stack(), a.name, domainSuffix)
	}
	svc := a.appService(t)
	wantLabels := map[string]string{
		appLabel:                               a.name,
		namespaceLabel:                         a.stack(),
		"coop-cloud." + a.stack() + ".recipe":  h.recipe.Name,
		"coop-cloud." + a.stack() + ".version": version,
	}
	for _, k := range sortedKeys(wantLabels) {
		if got := svc.Spec.Labels[k]; got != wantLabels[k] {
			t.Errorf("service %s: label %s = %q, want %q", svc.Spec.Name, k, got, wantLabels[k])
		}
	}
	if img := svc.Spec.TaskTemplate.ContainerSpec.Image; !strings.HasPrefix(img, echoImage) {
		t.Errorf("service %s runs image %q, want %s", svc.Spec.Name, img, echoImage)
	}
	a.checkAnswers(t, version)
}

// TestUpgradeInPlace: editing version of a Ready app upgrades the same service in place;
// the new generation is Ready after the second deploy and the new release answers.
func TestUpgradeInPlace(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	a := h.newApp("e2e-upgrade")
	from, to := h.recipe.first().Version, h.recipe.latest().Version

	a.deploy(from)
	a.checkAnswers(t, from)
	before := a.appService(t)

	gen := h.writeSpec(a.name, a.spec(to))
	s := h.waitPhase(a.name, gen, "Ready")
	if s.Deploys != 2 {
		t.Errorf("deploys = %d after install and upgrade, want 2; status:\n%s", s.Deploys, s)
	}
	after := a.appService(t)
	if after.ID != before.ID {
		t.Errorf("service %s was replaced (ID %s -> %s), want an in-place update", after.Spec.Name, before.ID, after.ID)
	}
	if after.Version.Index == before.Version.Index {
		t.Errorf("service %s: Version.Index unchanged (%d) after the upgrade", after.Spec.Name, after.Version.Index)
	}
	if got := after.Spec.Labels["coop-cloud."+a.stack()+".version"]; got != to {
		t.Errorf("service %s: version label %q after the upgrade, want %q", after.Spec.Name, got, to)
	}
	if after.UpdateStatus == nil || after.UpdateStatus.State != swarm.UpdateStateCompleted {
		t.Errorf("service %s: update status %+v at Ready, want completed", after.Spec.Name, after.UpdateStatus)
	}
	a.checkAnswers(t, to)
}

// TestRestartLeavesConvergedAppsUntouched: a reconciler stopped with SIGTERM and started
// again adopts its Ready apps (one installed, one upgraded) without updating any service or
// counting a deploy.
func TestRestartLeavesConvergedAppsUntouched(t *testing.T) {
	h := startHarness(t)
	installed := h.newApp("e2e-restart-i")
	upgraded := h.newApp("e2e-restart-u")
	installed.deploy(h.recipe.first().Version)
	upgraded.deploy(h.recipe.first().Version)
	upgraded.deploy(h.recipe.latest().Version)

	type snapshot struct {
		status  appStatus
		indexes map[string]uint64
	}
	take := func(a *testApp) snapshot {
		s, _, err := h.readStatus(a.name)
		if err != nil {
			t.Fatal(err)
		}
		return snapshot{s, h.indexes(a.name)}
	}
	apps := []*testApp{installed, upgraded}
	before := map[string]snapshot{}
	for _, a := range apps {
		before[a.name] = take(a)
	}

	if err := h.stop(); err != nil {
		t.Errorf("reconciler on SIGTERM: %v, want a clean exit 0", err)
	}
	h.recAwaitReadyz(h.recStart()) // the start-up pass has looked at every app
	time.Sleep(3 * resync)         // and three resyncs

	for _, a := range apps {
		after := take(a)
		b := before[a.name]
		if after.status.Phase != "Ready" || after.status.ObservedGeneration != b.status.ObservedGeneration {
			t.Errorf("app %s after restart: phase %s generation %s, want Ready %s; status:\n%s",
				a.name, after.status.Phase, after.status.ObservedGeneration, b.status.ObservedGeneration, after.status)
		}
		if after.status.Deploys != b.status.Deploys {
			t.Errorf("app %s: deploys %d -> %d across a restart, want unchanged", a.name, b.status.Deploys, after.status.Deploys)
		}
		if !maps.Equal(after.indexes, b.indexes) {
			t.Errorf("app %s: service Version.Index moved across a restart: %v -> %v", a.name, b.indexes, after.indexes)
		}
	}
	if !h.running() {
		t.Errorf("the restarted reconciler exited: %v", h.exit)
	}
}

// TestInvalidSpecLeavesOtherAppsAlone: a spec with an unknown field is Invalid with a message
// naming the field and creates nothing, while a Ready app of the same reconciler is not
// touched. An invalid edit of the live app does not touch it either, and restoring its spec
// (the same generation as before) deploys nothing.
func TestInvalidSpecLeavesOtherAppsAlone(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	good := h.newApp("e2e-good")
	bad := h.newApp("e2e-bad")
	version := h.recipe.first().Version

	goodSpec := good.spec(version)
	goodGen := h.writeSpec(good.name, goodSpec)
	ready := h.waitPhase(good.name, goodGen, "Ready")
	idx := h.indexes(good.name)

	const field = "replicaCount"
	gen := h.writeSpec(bad.name, bad.spec(version, field+": 3"))
	s := h.waitPhase(bad.name, gen, "Invalid")
	if !strings.Contains(s.Message, field) {
		t.Errorf("app %s: Invalid message %q does not name the unknown field %q", bad.name, s.Message, field)
	}
	time.Sleep(2 * resync)
	h.assertNoResidue(bad.name)
	assertUntouched(t, h, good, ready, idx)

	// An invalid edit of the live app: reported, nothing touched.
	gen = h.writeSpec(good.name, good.spec(version, field+": 3"))
	s = h.waitPhase(good.name, gen, "Invalid")
	if !strings.Contains(s.Message, field) {
		t.Errorf("app %s: Invalid message %q does not name the unknown field %q", good.name, s.Message, field)
	}
	time.Sleep(2 * resync)
	if got := h.indexes(good.name); !maps.Equal(got, idx) {
		t.Errorf("app %s: an invalid edit moved service Version.Index: %v -> %v", good.name, idx, got)
	}
	good.checkAnswers(t, version)

	// Back to the deployed spec: Ready again without a deploy.
	h.writeSpec(good.name, goodSpec)
	h.waitPhase(good.name, goodGen, "Ready")
	assertUntouched(t, h, good, ready, idx)
}

// assertUntouched fails unless app is still Ready for the same generation with the same
// deploy count and service versions as before.
func assertUntouched(t *testing.T, h *harness, a *testApp, before appStatus, idx map[string]uint64) {
	t.Helper()
	s, _, err := h.readStatus(a.name)
	if err != nil {
		t.Fatal(err)
	}
	if s.Phase != "Ready" || s.ObservedGeneration != before.ObservedGeneration || s.Deploys != before.Deploys {
		t.Errorf("app %s: want still Ready, generation %s, deploys %d; status:\n%s", a.name, before.ObservedGeneration, before.Deploys, s)
	}
	if got := h.indexes(a.name); !maps.Equal(got, idx) {
		t.Errorf("app %s: service Version.Index moved: %v -> %v", a.name, idx, got)
	}
}

// TestUnknownVersion: a spec naming a version the recipe does not have ends Invalid or Failed
// with a message naming the version, and nothing is created for the app.
func TestUnknownVersion(t *testing.T) {
	h := startHarness(t)
	a := h.newApp("e2e-nover")
	const version = "9.9.9+9.9"

	gen := h.writeSpec(a.name, a.spec(version))
	s := h.waitPhase(a.name, gen, "Invalid", "Failed")
	if !strings.Contains(s.Message, version) {
		t.Errorf("app %s: %s message %q does not name the version %s", a.name, s.Phase, s.Message, version)
	}
	h.assertNoResidue(a.name)
	time.Sleep(2 * resync) // retries, resyncs: still nothing
	h.assertNoResidue(a.name)
}

// TestBadSpecs: each malformed input of DESIGN.md's "Bad input" ends in a final phase with a
// message naming what is wrong, creates nothing, and leaves a Ready app alone.
func TestBadSpecs(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	good := h.newApp("e2e-bystander")
	version := h.recipe.first().Version
	ready := good.deploy(version)
	idx := h.indexes(good.name)

	cases := []struct {
		name    string
		spec    func(a *testApp) []byte
		phases  []string
		mention []string // the message must contain one of them
	}{
		{
			name:    "not YAML",
			spec:    func(*testApp) []byte { return []byte("recipe: [unclosed\nversion: {\n") },
			phases:  []string{"Invalid"},
			mention: []string{"yaml", "YAML", "line"},
		},
		{
			name:    "missing version",
			spec:    func(a *testApp) []byte { return []byte("recipe: " + recipeName + "\n") },
			phases:  []string{"Invalid"},
			mention: []string{"version"},
		},
		{
			name:    "unknown recipe",
			spec:    func(*testApp) []byte { return []byte("recipe: no-such-recipe\nversion: " + version + "\n") },
			phases:  []string{"Invalid", "Failed"},
			mention: []string{"no-such-recipe"},
		},
		{
			name:    "path-like recipe",
			spec:    func(*testApp) []byte { return []byte("recipe: ../" + recipeName + "\nversion: " + version + "\n") },
			phases:  []string{"Invalid"},
			mention: []string{"../" + recipeName},
		},
		{
			name:    "env key not a variable name",
			spec:    func(a *testApp) []byte { return a.spec(version, "  BAD-KEY: x") },
			phases:  []string{"Invalid"},
			mention: []string{"BAD-KEY"},
		},
		{
			name:    "stack of another app",
			spec:    func(a *testApp) []byte { return a.spec(version, "domain: "+good.name+"."+domainSuffix) },
			phases:  []string{"Invalid"},
			mention: []string{good.stack(), good.name},
		},
		{
			name:    "domain not a DNS name",
			spec:    func(a *testApp) []byte { return a.spec(version, "domain: not_a..domain") },
			phases:  []string{"Invalid"},
			mention: []string{"not_a..domain"},
		},
	}
	type pending struct {
		app *testApp
		gen string
	}
	var apps []pending
	for _, c := range cases {
		a := h.newApp("e2e-badspec")
		apps = append(apps, pending{a, h.writeSpec(a.name, c.spec(a))})
	}
	for i, c := range cases {
		a, gen := apps[i].app, apps[i].gen
		s, err := h.awaitStatus(a.name, "a final phase", func(s appStatus) (bool, string) {
			if s.ObservedGeneration != gen {
				return false, ""
			}
			for _, p := range c.phases {
				if s.Phase == p {
					return true, ""
				}
			}
			for _, p := range finalPhases {
				if s.Phase == p {
					return false, "final phase " + p + ", want " + strings.Join(c.phases, "|")
				}
			}
			return false, ""
		})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		t.Logf("%s: %s: %s", c.name, s.Phase, s.Message)
		if !slices.ContainsFunc(c.mention, func(m string) bool { return strings.Contains(s.Message, m) }) {
			t.Errorf("%s: app %s %s with message %q, want a message naming one of %q", c.name, a.name, s.Phase, s.Message, c.mention)
		}
		h.assertNoResidue(a.name)
	}
	assertUntouched(t, h, good, ready, idx)
}

// TestDelete: deleting a Ready app's spec tears it down to phase Deleted; the status file
// stays (saying what was removed) and nothing labelled with the app is left, also a few
// resyncs later.
func TestDelete(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	a := h.newApp("e2e-delete")
	a.deploy(h.recipe.first().Version)
	// Every kind the check below looks for carries the label, or the check proves nothing.
	owned := h.residue(a.name)
	for _, kind := range []string{"service", "network", "volume", "secret", "config", "container"} {
		if !hasKind(owned, kind) {
			t.Errorf("app %s is Ready but no %s of it is found (labelled %s=%s, or a container of its services): %v", a.name, kind, appLabel, a.name, owned)
		}
	}

	h.deleteSpec(a.name)
	s, err := h.waitDeleted(a.name)
	if err != nil {
		t.Fatal(err)
	}
	h.assertNoResidue(a.name)
	if !strings.Contains(strings.Join(s.Removed, "\n"), a.stack()+"_app") {
		t.Errorf("Deleted status does not say the service %s_app was removed: removed = %q", a.stack(), s.Removed)
	}

	time.Sleep(2 * resync)
	s, found, err := h.readStatus(a.name)
	if err != nil || !found || s.Phase != "Deleted" {
		t.Errorf("status of %s a few resyncs after Deleted: found=%v err=%v, want it kept as Deleted:\n%s", a.name, found, err, s)
	}
	h.assertNoResidue(a.name)
}
