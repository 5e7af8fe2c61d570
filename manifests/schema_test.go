package manifests

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker/cli/cli/compose/loader"
	"github.com/docker/cli/cli/compose/schema"
	composetypes "github.com/docker/cli/cli/compose/types"
)

// The copies must be docker/cli's schemas byte for byte, or skipping docker's validation could
// let through what docker refuses.
func TestEmbeddedSchemasMatchDockerCLI(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/docker/cli").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("cannot find the docker/cli module (CI is set, so this is a failure): %v", err)
		}
		t.Skipf("cannot find the docker/cli module: %v", err)
	}
	theirs, err := filepath.Glob(filepath.Join(dir, "cli", "compose", "schema", "data", "config_schema_v*.json"))
	if err != nil || len(theirs) == 0 {
		t.Fatalf("no schemas in %s: %v", dir, err)
	}
	ours, err := fs.Glob(composeSchemas, "composeschema/config_schema_v*.json")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range theirs {
		name := filepath.Base(p)
		names = append(names, name)
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := composeSchemas.ReadFile("composeschema/" + name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("composeschema/%s differs from docker/cli's (%v): copy it again, see composeschema/README.md", name, err)
		}
	}
	for _, p := range ours {
		if !slices.Contains(names, filepath.Base(p)) {
			t.Errorf("%s is not in docker/cli any more: remove it", p)
		}
	}
}

// What the option decides agrees with docker's own validation, and a refused file gets docker's
// own error.
func TestSkipValidatedSchema(t *testing.T) {
	tests := []struct {
		name, compose string
		env           map[string]string
		valid         bool
	}{
		{name: "valid", valid: true, compose: `version: "3.8"
services:
  app:
    image: nginx:${TAG}
    deploy:
      replicas: ${REPLICAS}
`, env: map[string]string{"TAG": "1", "REPLICAS": "2"}},
		{name: "unknown key", compose: `version: "3.8"
services:
  app:
    image: nginx
    bogus: 1
`},
		{name: "interpolated value of the wrong type", compose: `version: "3.8"
services:
  app:
    image: nginx
    ports:
      - "${PORT}"
`, env: map[string]string{"PORT": "not a port"}},
		{name: "version without a schema copy", valid: true, compose: `version: "3"
services:
  app:
    image: nginx
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dict, err := loader.ParseYAML([]byte(tc.compose))
			if err != nil {
				t.Fatal(err)
			}
			details := composetypes.ConfigDetails{WorkingDir: t.TempDir(), Environment: tc.env,
				ConfigFiles: []composetypes.ConfigFile{{Filename: "compose.yml", Config: dict}}, Version: schema.Version(dict)}
			var skipped bool
			_, got := loader.Load(details, skipValidatedSchema(details), func(o *loader.Options) { skipped = o.SkipValidation })
			_, want := loader.Load(details)
			if (got == nil) != tc.valid || (want == nil) != tc.valid {
				t.Fatalf("with the option: %v; docker alone: %v; want valid=%v", got, want, tc.valid)
			}
			if got != nil && got.Error() != want.Error() {
				t.Errorf("error %q, docker's is %q", got, want)
			}
			if wantSkip := tc.valid && details.Version != "3"; skipped != wantSkip {
				t.Errorf("validation skipped: %v, want %v", skipped, wantSkip)
			}
		})
	}
}

func TestRenderSchemaError(t *testing.T) {
	recipesDir := t.TempDir()
	repo := newTestRepo(t, recipesDir, "bad")
	h := repo.commit(map[string]string{"compose.yml": `version: "3.8"
services:
  app:
    image: nginx
    deploy:
      replicas: ${REPLICAS}
`})
	_, err := Render(context.Background(), recipesDir, Request{App: "a", Recipe: "bad", Version: h.String(), Domain: "d", Stack: "s",
		Env: map[string]string{"REPLICAS": "-"}})
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "replicas") {
		t.Fatalf("err = %v, want ErrInput about replicas", err)
	}
}
