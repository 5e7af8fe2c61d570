package e2e

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/manifests"
)

// The generated-secrets evidence of issue 5: a recipe of its own with three abra-style
// secrets, each with different .env.sample modifiers, deployed through the reconciler and
// followed through a restart, an upgrade, a secret version bump and a teardown.

// secRecipeVersions are the releases of the secrets recipe, oldest first.
var secRecipeVersions = []string{"1.0.0+1", "1.1.0+1"}

// secretCase is one generated secret of the secrets recipe: its compose id (also the file
// name under /run/secrets), its version variable, and what .env.sample asks for.
type secretCase struct {
	id, versionVar string
	modifiers      string // the comment after SECRET_<NAME>_VERSION=v1, "" for none
	length         int    // expected length
	alphabet       string // expected characters
	// check is an extra test of a value that does not rely on the product's alphabets.
	check func(value string) string
}

// Character sets, written out here rather than taken from the product where they can be.
const (
	secAlnum   = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	secLiteral = "xyz" // a small literal alphabet: a value of another charset would not fit it
)

// secretCases are the recipe's secrets: the defaults (no modifier: 32 letters and digits),
// abra's named set "special", and a literal alphabet.
func secretCases(t testing.TB) []secretCase {
	special, err := manifests.GeneratedSecret{Charset: "special"}.Alphabet()
	if err != nil {
		t.Fatalf("the product's special charset: %v", err)
	}
	return []secretCase{
		{id: "token", versionVar: "SECRET_TOKEN_VERSION", length: 32, alphabet: secAlnum},
		{id: "api_key", versionVar: "SECRET_API_KEY_VERSION", modifiers: "length=48 charset=special",
			length: 48, alphabet: special,
			check: func(v string) string {
				// Whatever the set holds, "special" is not letters and digits, and never what
				// breaks the env files and shell scripts secrets end up in.
				if i := strings.IndexAny(v, secAlnum); i >= 0 {
					return fmt.Sprintf("has the letter or digit %q: charset=special was not honoured", v[i])
				}
				if i := strings.IndexAny(v, "'\"\\$& \t\n`"); i >= 0 {
					return fmt.Sprintf("has %q, which breaks shell scripts and env files", v[i])
				}
				return ""
			}},
		{id: "pin", versionVar: "SECRET_PIN_VERSION", modifiers: "length=40 charset=" + secLiteral,
			length: 40, alphabet: secLiteral,
			check: func(v string) string {
				// 40 draws from 3 letters: all one letter has odds of 3^-39.
				if strings.Count(v, v[:1]) == len(v) {
					return "is one letter repeated: not random"
				}
				return ""
			}},
	}
}

// checkValue returns what is wrong with a generated value, "" when nothing.
func (c secretCase) checkValue(v string) string {
	var problems []string
	if len(v) != c.length {
		problems = append(problems, fmt.Sprintf("length %d, want %d", len(v), c.length))
	}
	for i := 0; i < len(v); i++ {
		if !strings.ContainsRune(c.alphabet, rune(v[i])) {
			problems = append(problems, fmt.Sprintf("character %q at %d is not in the charset %q", v[i], i, c.alphabet))
			break
		}
	}
	if c.check != nil && len(v) > 0 {
		if p := c.check(v); p != "" {
			problems = append(problems, p)
		}
	}
	return strings.Join(problems, "; ")
}

// makeSecretsRecipe creates <recipesDir>/<name>: an echo recipe whose app uses every secret
// of cases, each declared external and named the abra way, with one annotated tag per entry
// of secRecipeVersions (whose MESSAGE differs, so an upgrade restarts the task).
func makeSecretsRecipe(t testing.TB, recipesDir, name, img string, cases []secretCase) string {
	t.Helper()
	dir := filepath.Join(recipesDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sample := []string{
		"TYPE=" + name, "",
		"DOMAIN=" + name + ".example.com",
		"LETS_ENCRYPT_ENV=production", "",
		"PORT=18080", "",
	}
	for _, c := range cases {
		line := c.versionVar + "=v1"
		if c.modifiers != "" {
			line += " # " + c.modifiers
		}
		sample = append(sample, line)
	}
	files := map[string]string{
		".env.sample": strings.Join(sample, "\n") + "\n",
		"README.md":   "# " + name + "\n\nAn e2e test recipe: the echo server with generated secrets.\n",
	}
	for file, content := range files {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := git(dir, "init", "-q", "-b", "main"); err != nil {
		t.Fatal(err)
	}
	for _, version := range secRecipeVersions {
		var uses, decls strings.Builder
		for _, c := range cases {
			fmt.Fprintf(&uses, "      - %s\n", c.id)
			fmt.Fprintf(&decls, "  %s:\n    external: true\n    name: ${STACK_NAME}_%s_${%s}\n", c.id, c.id, c.versionVar)
		}
		compose := fmt.Sprintf(`version: "3.8"

services:
  app:
    image: %s
    environment:
      - MESSAGE=%s
      - PORT=8080
      - SECRET_FILE=/run/secrets/%s
    ports:
      - target: 8080
        published: ${PORT}
        protocol: tcp
        mode: host
    secrets:
%s    deploy:
      replicas: 1
      restart_policy:
        condition: on-failure
      update_config:
        order: stop-first
        failure_action: rollback
      labels:
        - "coop-cloud.${STACK_NAME}.version=%s"

secrets:
%s`, img, secMessage(name, version), cases[0].id, uses.String(), version, decls.String())
		if err := os.WriteFile(filepath.Join(dir, "compose.yml"), []byte(compose), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"add", "-A"},
			{"commit", "-q", "-m", "chore: release " + version},
			{"tag", "-a", version, "-m", "release " + version},
		} {
			if err := git(dir, args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func secMessage(recipe, version string) string { return "hello from " + recipe + " " + version }

// secSpec is the spec of app for version of the secrets recipe, with extra env entries.
func secSpec(a *testApp, recipe, version string, env map[string]string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "recipe: %s\nversion: %q\ntimeout: %s\nenv:\n  PORT: %q\n", recipe, version, specTimeout, fmt.Sprint(a.port))
	for _, k := range sortedKeys(env) {
		fmt.Fprintf(&b, "  %s: %q\n", k, env[k])
	}
	return []byte(b.String())
}

// secretEvents records the engine's secret events (create, update, remove) by secret name
// from a start time on, so a test can count how often each of its secrets was created.
type secretEvents struct {
	mu     sync.Mutex
	byName map[string][]string // name -> actions in order
	err    error
}

func watchSecretEvents(t testing.TB, since time.Time) *secretEvents {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := &secretEvents{byName: map[string][]string{}}
	msgs, errs := suite.docker.Events(ctx, events.ListOptions{
		// Since replays what happened between since and the subscription: nothing is missed.
		Since:   fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: filters.NewArgs(filters.Arg("type", string(events.SecretEventType))),
	})
	go func() {
		for {
			select {
			case m := <-msgs:
				w.mu.Lock()
				name := m.Actor.Attributes["name"]
				w.byName[name] = append(w.byName[name], string(m.Action))
				w.mu.Unlock()
			case err := <-errs:
				if ctx.Err() == nil {
					w.mu.Lock()
					w.err = err
					w.mu.Unlock()
				}
				return
			}
		}
	}()
	return w
}

// actions returns the actions seen for the secret name.
func (w *secretEvents) actions(name string) ([]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.byName[name]), w.err
}

// secretObjects maps the name of every secret labelled for app to the secret.
func secretObjects(t testing.TB, app string) map[string]swarm.Secret {
	t.Helper()
	secrets, err := suite.docker.SecretList(context.Background(), swarm.SecretListOptions{
		Filters: filters.NewArgs(filters.Arg("label", appLabel+"="+app)),
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]swarm.Secret{}
	for _, s := range secrets {
		out[s.Spec.Name] = s
	}
	return out
}

// secretIdentity is what must not move while a secret is kept: a re-created secret has a new
// ID and CreatedAt, an updated one a new Version.
func secretIdentity(s swarm.Secret) string {
	return fmt.Sprintf("id=%s created=%s updated=%s version=%d", s.ID, s.CreatedAt.Format(time.RFC3339Nano),
		s.UpdatedAt.Format(time.RFC3339Nano), s.Version.Index)
}

// readSecretValue polls GET /secret-value/<id> on port until it answers 200 and accept takes
// the body, for at most within; it returns the last body (accepted or not) and an error
// saying what it saw when accept never took it.
func readSecretValue(port int, id string, within time.Duration, accept func(string) bool) (string, error) {
	var code int
	var body string
	var err error
	deadline := time.Now().Add(within)
	for {
		code, body, err = httpGet(port, "/secret-value/"+id)
		if err == nil && code == http.StatusOK && accept(body) {
			return body, nil
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err == nil && code == http.StatusNotFound && strings.Contains(body, "404 page not found") {
		return body, fmt.Errorf("GET /secret-value/%s: the test image has no such endpoint: was %s rebuilt by a run of an older tree?", id, echoImage)
	}
	return body, fmt.Errorf("GET 127.0.0.1:%d/secret-value/%s: last answer %d %q, error %v", port, id, code, body, err)
}

// leakForms are the ways a value could show up in a text: as itself, base64 (how the Engine
// API carries secret data in JSON), hex, and a Go byte slice printed with %v.
func leakForms(value string) map[string]string {
	b := []byte(value)
	return map[string]string{
		"raw":    value,
		"base64": base64.RawStdEncoding.EncodeToString(b), // a prefix of the padded form too
		"hex":    hex.EncodeToString(b),
		"bytes":  strings.Trim(fmt.Sprint(b), "[]"),
	}
}

// findLeaks returns where in text (named where) any form of any value shows up.
func findLeaks(where, text string, values map[string]string) []string {
	var found []string
	for _, label := range sortedKeys(values) {
		forms := leakForms(values[label])
		for _, form := range sortedKeys(forms) {
			if strings.Contains(text, forms[form]) {
				found = append(found, fmt.Sprintf("%s holds the value of %s (%s)", where, label, form))
			}
		}
	}
	return found
}

// leakScan looks for every form (leakForms) of every value in the harness's log, in every
// status file, and in outputs (what -> text); it fails the test naming each place a value
// shows up, and says what it read.
func leakScan(t *testing.T, h *harness, values map[string]string, outputs map[string]string) {
	t.Helper()
	logText, err := os.ReadFile(h.logPath)
	if err != nil {
		t.Error(err)
		return
	}
	if len(logText) == 0 {
		t.Errorf("the reconciler log %s is empty: nothing to check", h.logPath)
	}
	leaks := findLeaks("the reconciler log "+h.logPath, string(logText), values)
	statusFiles := 0
	err = filepath.WalkDir(h.status, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			var b []byte
			if b, err = os.ReadFile(path); err == nil {
				statusFiles++
				leaks = append(leaks, findLeaks("status file "+path, string(b), values)...)
			}
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
	if statusFiles == 0 {
		t.Errorf("no status file in %s: nothing to check", h.status)
	}
	for _, where := range sortedKeys(outputs) {
		leaks = append(leaks, findLeaks(where, outputs[where], values)...)
	}
	for _, l := range leaks {
		t.Error("secret value leaked: " + l)
	}
	t.Logf("leak check: %d values in 4 forms each, against the log (%d bytes), %d status files and %d command outputs: %d leaks",
		len(values), len(logText), statusFiles, len(outputs), len(leaks))
}

// TestGeneratedSecrets follows the abra-style generated secrets of one app through its life:
//
//   - install: each secret is created once, labelled for the app and its stack, with the
//     length and charset its .env.sample modifiers ask for (no modifier: 32 letters and
//     digits; charset=special; a literal alphabet) and mounted into the app;
//   - SIGTERM and restart of the reconciler: the same secret objects (ID, CreatedAt, Version)
//     and the same values, no service update;
//   - upgrade to the next tag: the same secrets and values in the new task;
//   - SECRET_PIN_VERSION bumped in the spec env: a new secret <stack>_pin_v2 with a new value
//     of the same length and charset, mounted in place of v1; the others untouched;
//   - spec deleted: every secret of the app is gone, each created and removed exactly once
//     according to the engine's event stream;
//   - no value, in any of the forms leakForms lists, in the reconciler's log, in any status
//     file, in `reconciler render`, `diff`, `status -o json` output, or in the service spec.
func TestGeneratedSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := time.Now()

	// The echo image this run built, under a tag of this test's own: another run that
	// rebuilds echoImage from an older tree (without /secret-value) cannot swap it under us.
	img := "swarm-reconciler-e2e/echo:secrets-" + randomSuffix()
	if err := suite.docker.ImageTag(ctx, echoImage, img); err != nil {
		t.Fatalf("tag %s as %s: %v", echoImage, img, err)
	}
	t.Cleanup(func() { // registered first, so it runs after the apps' cleanups
		if _, err := suite.docker.ImageRemove(context.Background(), img, image.RemoveOptions{}); err != nil {
			t.Logf("untag %s: %v", img, err)
		}
	})

	seen := watchSecretEvents(t, start)
	h := startHarness(t)
	cases := secretCases(t)
	const secRecipe = "e2e-secrets"
	makeSecretsRecipe(t, h.recipes, secRecipe, img, cases)
	a := h.newApp("e2e-secret")
	stack := a.stack()
	nameOf := func(c secretCase, version string) string { return stack + "_" + c.id + "_" + version }
	byID := map[string]secretCase{}
	for _, c := range cases {
		byID[c.id] = c
	}

	values := map[string]string{} // "<id> <version>" -> value, every value seen: none may leak
	var outputs []struct{ where, text string }
	keepOutput := func(where, text string) { outputs = append(outputs, struct{ where, text string }{where, text}) }

	// readValues reads every secret of the app as its running task sees it, checks each
	// value against its case, and returns them by id.
	readValues := func(step string, versions map[string]string) map[string]string {
		t.Helper()
		got := map[string]string{}
		for _, c := range cases {
			v, err := readSecretValue(a.port, c.id, time.Minute, func(string) bool { return true })
			if err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			if p := c.checkValue(v); p != "" {
				t.Errorf("%s: secret %s (.env.sample modifiers %q): %s", step, nameOf(c, versions[c.id]), c.modifiers, p)
			}
			got[c.id] = v
			values[c.id+" "+versions[c.id]] = v
		}
		return got
	}
	// checkObjects compares the app's secrets with want (name -> identity, "" for any) and
	// returns the secrets.
	checkObjects := func(step string, want map[string]string) map[string]swarm.Secret {
		t.Helper()
		have := secretObjects(t, a.name)
		for name, id := range want {
			s, ok := have[name]
			switch {
			case !ok:
				t.Errorf("%s: secret %s missing (have %v)", step, name, sortedKeys(have))
			case id != "" && secretIdentity(s) != id:
				t.Errorf("%s: secret %s changed: %s, was %s", step, name, secretIdentity(s), id)
			}
		}
		for name := range have {
			if _, ok := want[name]; !ok {
				t.Errorf("%s: unexpected secret %s labelled %s=%s", step, name, appLabel, a.name)
			}
		}
		return have
	}
	identities := func(secrets map[string]swarm.Secret) map[string]string {
		out := map[string]string{}
		for name, s := range secrets {
			out[name] = secretIdentity(s)
		}
		return out
	}
	// cliOutputs runs render, diff and status -o json and keeps their output for the leak
	// check; render must succeed and list the generated secrets.
	cliOutputs := func(step string, wantGenerated []string) {
		t.Helper()
		r := h.cli(time.Minute, "render", h.specPath(a.name))
		if r.code != 0 {
			t.Errorf("%s: render: %s", step, r)
		}
		for _, name := range wantGenerated {
			if !strings.Contains(r.stdout, `"name": "`+name+`"`) {
				t.Errorf("%s: render does not list the generated secret %s:\n%s", step, name, r.stdout)
			}
		}
		keepOutput(step+": render", r.stdout+r.stderr)
		d := h.cli(time.Minute, "diff", h.specPath(a.name))
		keepOutput(step+": diff", d.stdout+d.stderr)
		s := h.cli(time.Minute, "status", a.name, "-o", "json")
		keepOutput(step+": status -o json", s.stdout+s.stderr)
		if svc, raw, err := suite.docker.ServiceInspectWithRaw(ctx, stack+"_app", swarm.ServiceInspectOptions{}); err != nil {
			t.Errorf("%s: inspect service %s_app: %v", step, stack, err)
		} else {
			keepOutput(step+": service "+svc.Spec.Name+" as stored by swarm", string(raw))
		}
	}

	// No value anywhere the reconciler writes or prints. Deferred, so that it also runs over
	// what was written up to a step that failed the test.
	complete := false
	defer func() {
		if complete && len(values) != 4 {
			t.Errorf("checked %d values for leaks, want 4 (3 at install and the bumped pin): %v", len(values), sortedKeys(values))
		}
		texts := map[string]string{}
		for _, o := range outputs {
			texts[o.where] = o.text
		}
		leakScan(t, h, values, texts)
	}()

	// Install.
	v1 := map[string]string{"token": "v1", "api_key": "v1", "pin": "v1"}
	gen := h.writeSpec(a.name, secSpec(a, secRecipe, secRecipeVersions[0], nil))
	h.waitPhase(a.name, gen, "Ready")
	if err := waitHTTP(ctx, a.port, "/", secMessage(secRecipe, secRecipeVersions[0])); err != nil {
		t.Fatal(err)
	}
	wantNames := map[string]string{}
	for _, c := range cases {
		wantNames[nameOf(c, "v1")] = ""
	}
	installed := checkObjects("install", wantNames)
	for name, s := range installed {
		for k, want := range map[string]string{appLabel: a.name, namespaceLabel: stack} {
			if got := s.Spec.Labels[k]; got != want {
				t.Errorf("install: secret %s: label %s = %q, want %q", name, k, got, want)
			}
		}
	}
	ids := identities(installed)
	first := readValues("install", v1)
	t.Logf("install: %d secrets created (%s), values checked", len(installed), strings.Join(sortedKeys(installed), ", "))
	cliOutputs("install", sortedKeys(installed))

	// SIGTERM, restart: nothing regenerated, nothing updated.
	indexes := h.indexes(a.name)
	before, _, err := h.readStatus(a.name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.stop(); err != nil {
		t.Errorf("reconciler on SIGTERM: %v, want a clean exit 0", err)
	}
	h.recAwaitReadyz(h.recStart()) // the start-up pass has looked at every app
	time.Sleep(3 * resync)         // and three resyncs
	after := h.waitPhase(a.name, gen, "Ready")
	if after.Deploys != before.Deploys {
		t.Errorf("restart: deploys %d -> %d, want unchanged", before.Deploys, after.Deploys)
	}
	if got := h.indexes(a.name); fmt.Sprint(got) != fmt.Sprint(indexes) {
		t.Errorf("restart: service Version.Index moved: %v -> %v", indexes, got)
	}
	checkObjects("restart", ids)
	for id, v := range readValues("restart", v1) {
		if v != first[id] {
			t.Errorf("restart: secret %s serves a different value than before the restart", nameOf(byID[id], "v1"))
		}
	}
	t.Logf("restart: secrets and values unchanged")

	// Upgrade to the next release: the new task mounts the same secrets.
	gen = h.writeSpec(a.name, secSpec(a, secRecipe, secRecipeVersions[1], nil))
	h.waitPhase(a.name, gen, "Ready")
	if err := waitHTTP(ctx, a.port, "/", secMessage(secRecipe, secRecipeVersions[1])); err != nil {
		t.Fatal(err)
	}
	checkObjects("upgrade", ids)
	for id, v := range readValues("upgrade", v1) {
		if v != first[id] {
			t.Errorf("upgrade to %s: secret %s serves a different value than before the upgrade", secRecipeVersions[1], nameOf(byID[id], "v1"))
		}
	}
	t.Logf("upgrade to %s: secrets and values unchanged", secRecipeVersions[1])

	// Bump the pin's version in the spec env: a new secret, a new value, mounted instead.
	pin := byID["pin"]
	v2 := map[string]string{"token": "v1", "api_key": "v1", "pin": "v2"}
	gen = h.writeSpec(a.name, secSpec(a, secRecipe, secRecipeVersions[1], map[string]string{pin.versionVar: "v2"}))
	h.waitPhase(a.name, gen, "Ready")
	have := secretObjects(t, a.name)
	newPin, ok := have[nameOf(pin, "v2")]
	if !ok {
		t.Fatalf("bump %s=v2: no secret %s (have %v)", pin.versionVar, nameOf(pin, "v2"), sortedKeys(have))
	}
	if old, ok := have[nameOf(pin, "v1")]; ok {
		if old.ID == newPin.ID {
			t.Errorf("bump: %s and %s are one object", nameOf(pin, "v1"), nameOf(pin, "v2"))
		}
		t.Logf("bump: the old secret %s is kept (as abra does) until teardown", old.Spec.Name)
	}
	for _, c := range cases {
		if c.id == pin.id {
			continue
		}
		name := nameOf(c, "v1")
		if s, ok := have[name]; !ok {
			t.Errorf("bump of %s: secret %s is gone", pin.versionVar, name)
		} else if secretIdentity(s) != ids[name] {
			t.Errorf("bump of %s: secret %s changed: %s, was %s", pin.versionVar, name, secretIdentity(s), ids[name])
		}
	}
	svc, _, err := suite.docker.ServiceInspectWithRaw(ctx, stack+"_app", swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mounted []string
	for _, ref := range svc.Spec.TaskTemplate.ContainerSpec.Secrets {
		mounted = append(mounted, ref.SecretName)
		if ref.File != nil && ref.File.Name == pin.id && (ref.SecretName != newPin.Spec.Name || ref.SecretID != newPin.ID) {
			t.Errorf("bump: /run/secrets/%s is %s (%s), want %s (%s)", pin.id, ref.SecretName, ref.SecretID, newPin.Spec.Name, newPin.ID)
		}
	}
	t.Logf("bump: the service mounts %v", mounted)
	// The task restarts with the new secret; wait until it answers with another value.
	bumped, err := readSecretValue(a.port, pin.id, time.Minute, func(v string) bool { return v != first[pin.id] })
	values[pin.id+" v2"] = bumped
	if err != nil {
		t.Errorf("bump %s=v2: the app still serves the v1 value of /run/secrets/%s: %v", pin.versionVar, pin.id, err)
	}
	for id, v := range readValues("bump", v2) {
		if id != pin.id && v != first[id] {
			t.Errorf("bump of %s: secret %s serves a different value", pin.versionVar, nameOf(byID[id], "v1"))
		}
	}
	t.Logf("bump: %s has a new value", nameOf(pin, "v2"))
	cliOutputs("bump", []string{nameOf(byID["token"], "v1"), nameOf(byID["api_key"], "v1"), nameOf(pin, "v2")})
	names := sortedKeys(have) // every secret the app ever had

	// Teardown: every secret is removed.
	h.deleteSpec(a.name)
	if _, err := h.waitDeleted(a.name); err != nil {
		t.Fatal(err)
	}
	h.assertNoResidue(a.name)
	for _, name := range names {
		if _, _, err := suite.docker.SecretInspectWithRaw(ctx, name); err == nil {
			t.Errorf("teardown: secret %s still exists", name)
		}
	}
	// Each secret was created once and removed once; the events of the removal may arrive
	// a moment after the objects are gone.
	var history map[string][]string
	err = poll(ctx, 15*time.Second, func() (bool, error) {
		history = map[string][]string{}
		done := true
		for _, name := range names {
			acts, err := seen.actions(name)
			if err != nil {
				return false, err
			}
			history[name] = acts
			done = done && slices.Contains(acts, "remove")
		}
		return done, nil
	})
	if err != nil {
		t.Errorf("secret events: %v; seen: %v", err, history)
	}
	for _, name := range names {
		if want := []string{"create", "remove"}; !slices.Equal(history[name], want) {
			t.Errorf("secret %s: engine events %v, want %v (created once, never updated, removed at teardown)", name, history[name], want)
		}
	}
	t.Logf("teardown: %d secrets removed; engine events %v", len(names), history)
	complete = true
}
