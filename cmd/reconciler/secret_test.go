package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/swarm"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/swarm-reconciler/reconciler/locks"
	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

// secretRecipe makes the recipe "sec" at tag 1.0.0 under recipesDir: db_password is generated,
// api_key is generate=false, plain is a file-backed secret (nothing to insert).
func secretRecipe(t *testing.T, recipesDir string) {
	t.Helper()
	dir := filepath.Join(recipesDir, "sec")
	files := map[string]string{
		".env.sample": "SECRET_DB_PASSWORD_VERSION=v1\nSECRET_API_KEY_VERSION=v1 # generate=false\n",
		"plain.txt":   "plain",
		"compose.yml": `version: "3.8"
services:
  app:
    image: nginx:1.27
    secrets: [db_password, api_key, plain]
secrets:
  db_password:
    external: true
    name: ${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION}
  api_key:
    external: true
    name: ${STACK_NAME}_api_key_${SECRET_API_KEY_VERSION}
  plain:
    file: plain.txt
`,
	}
	commitRecipe(t, dir, files)
}

// commitRecipe makes dir a git repository of files, committed and tagged 1.0.0.
func commitRecipe(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	h := commitFiles(t, repo, dir, "recipe", files)
	if _, err := repo.CreateTag("1.0.0", h, nil); err != nil {
		t.Fatal(err)
	}
}

// commitFiles writes files into the worktree dir of repo and commits everything there.
func commitFiles(t *testing.T, repo *git.Repository, dir, msg string, files map[string]string) plumbing.Hash {
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "test", Email: "test@example.org", When: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// secretEnv is a CLI environment with the recipe and the spec of app "s1" placed.
func secretEnv(t *testing.T) *cliEnv {
	e := newCLIEnv(t)
	secretRecipe(t, e.files)
	path, _ := e.specFile("s1", "recipe: sec\nversion: 1.0.0\ndomain: s1.example.org\nenv:\n  SECRET_DB_PASSWORD_VERSION: v4\n")
	if _, _, code, err := e.run(context.Background(), "apply", path); code != 0 {
		t.Fatal(err)
	}
	return e
}

// TestSecretInsertArguments: what fails before the engine is asked, with errors that say why.
func TestSecretInsertArguments(t *testing.T) {
	e := secretEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"secret", "insert", "s1"}, "accepts 2 arg(s)"},
		{[]string{"secret", "insert", "Bad_App", "api_key"}, "Bad_App"},
		{[]string{"secret", "insert", "nope", "api_key"}, "no spec for it in " + e.specs},
		{[]string{"secret", "insert", "s1", "plain"}, `has no secret "plain"; its secrets are: api_key (generate=false), db_password`},
		{[]string{"secret", "insert", "s1", "api-key"}, `has no secret "api-key"; its secrets are: api_key (generate=false), db_password`},
		{[]string{"secret", "insert", "s1", "api_key", "--version", ""}, "--version: give the version"},
		{[]string{"secret", "insert", "s1", "api_key", "--version", "v 2"}, "--version v 2"},
	} {
		stdout, _, code, err := e.run(ctx, tc.args...)
		if code != 1 || err == nil || !strings.Contains(err.Error(), tc.want) || stdout != "" {
			t.Errorf("%v: exit %d, %v, stdout %q; want exit 1 with %q", tc.args, code, err, stdout, tc.want)
		}
	}
}

// TestSecretToInsert: the secret's full name follows the spec's env, the recipe's .env.sample
// or --version; its labels are those the reconciler gives the app's objects, owner included.
func TestSecretToInsert(t *testing.T) {
	e := secretEnv(t)
	defer manifests.Cleanup()
	o := &options{specs: e.specs, recipes: e.files}
	for _, tc := range []struct{ name, version, want string }{
		{"api_key", "", "s1_example_org_api_key_v1"},         // .env.sample
		{"db_password", "", "s1_example_org_db_password_v4"}, // the spec's env
		{"api_key", "v2", "s1_example_org_api_key_v2"},
		{"db_password", "v5", "s1_example_org_db_password_v5"},
	} {
		g, err := secretToInsert(context.Background(), o, "s1", tc.name, tc.version)
		if err != nil {
			t.Fatalf("%s --version %q: %v", tc.name, tc.version, err)
		}
		if g.Name != tc.want || g.ID != tc.name {
			t.Errorf("%s --version %q: %s (%s), want %s", tc.name, tc.version, g.Name, g.ID, tc.want)
		}
		for k, v := range map[string]string{manifests.LabelApp: "s1", manifests.LabelOwner: locks.SpecDirID(e.specs),
			manifests.LabelNamespace: "s1_example_org", manifests.LabelDomain: "s1.example.org"} {
			if g.Labels[k] != v {
				t.Errorf("%s: label %s=%q, want %q (labels %v)", g.Name, k, g.Labels[k], v, g.Labels)
			}
		}
	}
}

// TestSecretToInsertUnderTheDeployedDomain: a spec that leaves its domain to the default runs
// under the domain its status records (the reconciler's --domain-suffix): the secret is named
// for that stack, whatever suffix this command was given.
func TestSecretToInsertUnderTheDeployedDomain(t *testing.T) {
	e := secretEnv(t)
	defer manifests.Cleanup()
	path, _ := e.specFile("s2", "recipe: sec\nversion: 1.0.0\n")
	if _, _, code, err := e.run(context.Background(), "apply", path); code != 0 {
		t.Fatal(err)
	}
	o := &options{specs: e.specs, status: e.status, recipes: e.files}
	if g, err := secretToInsert(context.Background(), o, "s2", "api_key", ""); err != nil || g.Name != "s2_api_key_v1" {
		t.Fatalf("before any status: %v, %v; want the name under this command's (empty) suffix", g, err)
	}
	e.writeStatus("s2", "sha256:1", spec.PhaseReady, "ok") // domain s2.example.org
	st, _ := spec.ReadStatus(e.status, "s2")
	st.Domain, st.Stack = "s2.prod.example", "s2_prod_example"
	if err := spec.WriteStatus(e.status, st); err != nil {
		t.Fatal(err)
	}
	g, err := secretToInsert(context.Background(), o, "s2", "api_key", "")
	if err != nil || g.Name != "s2_prod_example_api_key_v1" || g.Labels[manifests.LabelNamespace] != "s2_prod_example" {
		t.Fatalf("deployed under s2.prod.example: %v, %v; want s2_prod_example_api_key_v1", g, err)
	}
}

// TestSecretInsertVersionNotFromEnvironment: RECONCILER_VERSION does not set --version (an
// unusable version there would fail the render); the command goes on to the engine, here
// an address where none answers.
func TestSecretInsertVersionNotFromEnvironment(t *testing.T) {
	e := secretEnv(t)
	t.Setenv("RECONCILER_VERSION", "not a version")
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-engine.sock"))
	root := newRoot(&options{})
	root.SetIn(strings.NewReader("value\n"))
	root.SetArgs([]string{"secret", "insert", "s1", "api_key", "--specs", e.specs, "--recipes", e.files})
	if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "list secrets") ||
		strings.Contains(err.Error(), "not a version") {
		t.Errorf("%v; want the engine asked for s1_example_org_api_key_v1, RECONCILER_VERSION ignored", err)
	}
}

// fakeSecrets is an engine holding secrets. Its name filter matches any name containing the
// filter, as the engine's does more names than the one asked for.
type fakeSecrets struct {
	secrets   []swarm.Secret
	created   []swarm.SecretSpec
	createErr error
}

func (f *fakeSecrets) SecretList(_ context.Context, opts swarm.SecretListOptions) ([]swarm.Secret, error) {
	var out []swarm.Secret
	for _, s := range f.secrets {
		for _, name := range opts.Filters.Get("name") {
			if strings.Contains(s.Spec.Name, name) {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

func (f *fakeSecrets) SecretCreate(_ context.Context, spec swarm.SecretSpec) (swarm.SecretCreateResponse, error) {
	if f.createErr != nil {
		return swarm.SecretCreateResponse{}, f.createErr
	}
	spec.Data = append([]byte(nil), spec.Data...)
	f.created = append(f.created, spec)
	return swarm.SecretCreateResponse{ID: "id1"}, nil
}

// TestInsertSecret: one trailing newline dropped, labels as rendered; an existing secret, an
// empty or oversized value changes nothing; the value is in no error.
func TestInsertSecret(t *testing.T) {
	const value = "s3cret-value"
	labels := map[string]string{manifests.LabelApp: "s1", manifests.LabelOwner: "own"}
	g := &manifests.GeneratedSecret{Name: "s1_api_key_v1", ID: "api_key", VersionVar: "SECRET_API_KEY_VERSION", Labels: labels}
	secret := func(name string, labels map[string]string) swarm.Secret {
		return swarm.Secret{ID: "x", Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}}}
	}
	ctx := context.Background()

	for in, want := range map[string]string{value + "\n": value, value: value, value + "\n\n": value + "\n", " " + value + " \r\n": " " + value + " \r"} {
		f := &fakeSecrets{secrets: []swarm.Secret{secret("s1_api_key_v1_old", labels)}}
		id, err := insertSecret(ctx, f, "s1", g, strings.NewReader(in))
		if err != nil || id != "id1" || len(f.created) != 1 {
			t.Fatalf("%q: %q, %v, created %d", in, id, err, len(f.created))
		}
		c := f.created[0]
		if string(c.Data) != want || c.Name != g.Name || c.Labels[manifests.LabelOwner] != "own" || c.Labels[manifests.LabelApp] != "s1" {
			t.Errorf("%q: created %s %v with %q, want %q", in, c.Name, c.Labels, c.Data, want)
		}
	}

	for _, tc := range []struct {
		what string
		f    *fakeSecrets
		in   string
		want []string
	}{
		{"exists, ours", &fakeSecrets{secrets: []swarm.Secret{secret(g.Name, labels)}}, value,
			[]string{"secret s1_api_key_v1 already exists, owned by this app; nothing changed", "docker secret rm s1_api_key_v1",
				"reconciler secret insert s1 api_key --version V, then set SECRET_API_KEY_VERSION: V in the spec's env"}},
		{"exists, unlabelled", &fakeSecrets{secrets: []swarm.Secret{secret(g.Name, nil)}}, value,
			[]string{"already exists, not made by the reconciler (no swarm-reconciler.app label)"}},
		{"exists, another directory's", &fakeSecrets{secrets: []swarm.Secret{secret(g.Name, map[string]string{manifests.LabelApp: "s1", manifests.LabelOwner: "other"})}}, value,
			[]string{`already exists, labelled for app "s1" of spec directory "other"`}},
		{"created meanwhile", &fakeSecrets{createErr: cerrdefs.ErrConflict.WithMessage("secret s1_api_key_v1 already exists")}, value,
			[]string{"secret s1_api_key_v1 already exists; nothing changed"}},
		{"empty", &fakeSecrets{}, "\n", []string{"standard input is empty"}},
		{"too large", &fakeSecrets{}, strings.Repeat("x", maxSecretValue+1), []string{"over swarm's limit for a secret (500 KiB)"}},
		// swarm refuses 500 KiB itself ("less than 500KB"): said here, not by the engine.
		{"exactly the limit", &fakeSecrets{}, strings.Repeat("x", maxSecretValue) + "\n", []string{"over swarm's limit for a secret (500 KiB)"}},
	} {
		in := strings.NewReader(tc.in)
		_, err := insertSecret(ctx, tc.f, "s1", g, in)
		if err == nil {
			t.Errorf("%s: no error", tc.what)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v\nwant %q", tc.what, err, w)
			}
		}
		if strings.Contains(err.Error(), value) || len(tc.f.created) != 0 {
			t.Errorf("%s: the value is in the error, or a secret was created: %v, %d", tc.what, err, len(tc.f.created))
		}
		if strings.HasPrefix(tc.what, "exists") && in.Len() != len(tc.in) {
			t.Errorf("%s: standard input read although nothing is to be created", tc.what)
		}
	}
}

// TestNotTerminal: a file or pipe is read; a device (a terminal shows what is typed) is not.
func TestNotTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "value")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := notTerminal(f); err != nil {
		t.Errorf("regular file: %v", err)
	}
	dev, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if err := notTerminal(dev); err == nil || !strings.Contains(err.Error(), "terminal") {
		t.Errorf("%s: %v, want refused", os.DevNull, err)
	}
}

// TestInsertSecretOfSeveralLines: a value of several lines (a PEM key) gets its lines'
// fingerprints too, so the task logs a status keeps are redacted a line at a time; a value of
// one line gets none.
func TestInsertSecretOfSeveralLines(t *testing.T) {
	const pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nshort\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n"
	g := &manifests.GeneratedSecret{Name: "s1_tls_key_v1", ID: "tls_key", VersionVar: "SECRET_TLS_KEY_VERSION", Labels: map[string]string{manifests.LabelApp: "s1"}}
	for in, lines := range map[string]int{pem: 4, "one line only\n": 0} {
		f := &fakeSecrets{}
		if _, err := insertSecret(context.Background(), f, "s1", g, strings.NewReader(in)); err != nil || len(f.created) != 1 {
			t.Fatalf("%d created: %v", len(f.created), err)
		}
		prints := manifests.ParseLineFingerprints(f.created[0].Labels[manifests.LabelLineFingerprints])
		if len(prints) != lines {
			t.Errorf("%.20q: %d line fingerprints, want %d", in, len(prints), lines)
		}
		for i, l := range []string{"-----BEGIN PRIVATE KEY-----", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj", "-----END PRIVATE KEY-----"}[:lines] {
			if !prints[i].Matches([]byte(l)) {
				t.Errorf("line fingerprint %d does not match %q", i, l)
			}
		}
		if strings.Contains(fmt.Sprint(f.created[0].Labels), "MIIE") {
			t.Errorf("a label holds the value: %v", f.created[0].Labels)
		}
	}
}
