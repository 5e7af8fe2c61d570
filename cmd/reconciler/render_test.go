package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

// TestRenderShowsBackupPlan: render prints the backup plan the recipe's backupbot labels
// declare (services, volumes, paths, hooks), and none for a recipe without them.
func TestRenderShowsBackupPlan(t *testing.T) {
	e := newCLIEnv(t)
	defer manifests.Cleanup()
	commitRecipe(t, filepath.Join(e.files, "bk"), map[string]string{
		".env.sample": "TYPE=bk\n",
		"compose.yml": `version: "3.8"
services:
  db:
    image: postgres:16
    volumes: [db-data:/var/lib/postgresql/data]
    deploy:
      labels:
        backupbot.backup: "true"
        backupbot.backup.pre-hook: "/pg_backup.sh backup"
        backupbot.backup.volumes.db-data.path: "backup.sql"
volumes:
  db-data:
`,
	})
	secretRecipe(t, e.files)
	for _, tc := range []struct{ recipe, want string }{
		{"bk", `{"services":[{"name":"db","volumes":[{"name":"db-data","full":"b1_example_org_db-data","target":"/var/lib/postgresql/data","paths":["backup.sql"]}],"preHook":"/pg_backup.sh backup"}]}`},
		{"sec", "null"},
	} {
		path, _ := e.specFile("b1", "recipe: "+tc.recipe+"\nversion: 1.0.0\ndomain: b1.example.org\n")
		stdout, stderr, code, err := e.run(context.Background(), "render", path)
		if code != 0 {
			t.Fatalf("render %s: exit %d %v\n%s", tc.recipe, code, err, stderr)
		}
		var out struct{ Backup json.RawMessage }
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatal(err)
		}
		got := "null"
		if len(out.Backup) > 0 {
			var compact bytes.Buffer
			if err := json.Compact(&compact, out.Backup); err != nil {
				t.Fatal(err)
			}
			got = compact.String()
		}
		if got != tc.want {
			t.Errorf("%s: backup\n got %s\nwant %s", tc.recipe, got, tc.want)
		}
	}
}

// TestPolicyInRenderAndValidate: render and validate --policy report what the deploy policy
// denies, naming the service, the field and how to allow it, and exit 1; privileged allows it.
func TestPolicyInRenderAndValidate(t *testing.T) {
	e := newCLIEnv(t)
	defer manifests.Cleanup()
	commitRecipe(t, filepath.Join(e.files, "sock"), map[string]string{
		".env.sample": "TYPE=sock\n",
		"compose.yml": "version: \"3.8\"\nservices:\n  app:\n    image: nginx:1\n    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n",
	})
	path, _ := e.specFile("p1", "recipe: sock\nversion: 1.0.0\ndomain: p1.example.org\n")
	const want = "service app: volumes: /var/run/docker.sock:/var/run/docker.sock: the Docker socket controls the host: baseline denies it (to allow it: --policy privileged)"
	for _, args := range [][]string{{"render", path}, {"validate", "--policy", "baseline", path}} {
		_, stderr, code, _ := e.run(context.Background(), args...)
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%v: exit %d, stderr:\n%s", args, code, stderr)
		}
	}
	for _, args := range [][]string{{"render", "--policy", "privileged", path}, {"validate", "--policy", "privileged", path}, {"validate", path}} {
		if _, stderr, code, _ := e.run(context.Background(), args...); code != 0 {
			t.Errorf("%v: exit %d, stderr:\n%s", args, code, stderr)
		}
	}
}

// TestDiffReadsTheSpecAsTheReconciler: the Desired diff hands the controller is the one the
// reconciler reads from the spec directory: the overlays, and the generation they are part of.
func TestDiffReadsTheSpecAsTheReconciler(t *testing.T) {
	e := newCLIEnv(t)
	if err := os.MkdirAll(filepath.Join(e.specs, "overlays"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.specs, "overlays", "img.yml"), []byte("services:\n  app:\n    image: nginx:1.27.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.specs, "ov.yml")
	if err := os.WriteFile(path, []byte(body+"overlays:\n  - file: overlays/img.yml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := &options{specs: e.specs, status: e.status, recipes: e.files}
	f, err := readDeployedSpec(path, o)
	if err != nil {
		t.Fatal(err)
	}
	got := desiredOf(f, path)
	want, err := spec.Load(e.specs, "ov", o.defaults())
	if err != nil || want == nil || want.Err != nil {
		t.Fatalf("load: %v %+v", err, want)
	}
	if got.Generation != want.Generation || len(got.Overlays) != 1 || len(want.Overlays) != 1 || string(got.Overlays[0].Data) != string(want.Overlays[0].Data) {
		t.Errorf("diff's spec: generation %s, %d overlays; the reconciler's: generation %s, %d overlays", got.Generation, len(got.Overlays), want.Generation, len(want.Overlays))
	}
}

// TestRenderStampsTheOwner: render prints the objects the reconciler of --specs (or --owner)
// would create: with its owner label, and so with the spec hash the reconciler stamps. Without
// it a user comparing render's output with `docker service inspect` sees a label and a hash
// that differ on every service.
func TestRenderStampsTheOwner(t *testing.T) {
	e := newCLIEnv(t)
	defer manifests.Cleanup()
	secretRecipe(t, e.files)
	path, _ := e.specFile("o1", "recipe: sec\nversion: 1.0.0\ndomain: o1.example.org\nenv:\n  SECRET_API_KEY_VERSION: v1\n")
	stdout, stderr, code, err := e.run(context.Background(), "render", "--owner", "ci-1", path)
	if code != 0 {
		t.Fatalf("render: exit %d %v\n%s", code, err, stderr)
	}
	var out rendering
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	for name, s := range out.Services {
		if got := s.Labels[manifests.LabelOwner]; got != "ci-1" {
			t.Errorf("service %s: owner label %q, want ci-1", name, got)
		}
		if got, want := s.Labels[manifests.LabelSpecHash], manifests.SpecHash(s); got != want {
			t.Errorf("service %s: spec hash %s, want %s", name, got, want)
		}
	}
	for _, s := range out.Secrets {
		if got := s.Labels[manifests.LabelOwner]; got != "ci-1" {
			t.Errorf("secret %s: owner label %q, want ci-1", s.Name, got)
		}
	}
}
