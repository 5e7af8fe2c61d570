package manifests

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// sharedRecipes is where the real-world conformance recipes live: ../shared/recipes relative to
// the project root, so ../../shared/recipes from this package's folder.
const sharedRecipes = "../../shared/recipes"

// conformanceRecipes returns the shared recipes folder, skipping the test where it does not
// exist (a user's own clone) unless CI is set, when its absence is a failure.
func conformanceRecipes(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(sharedRecipes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("conformance recipes not found at %s (CI is set, so this is a failure): %v", dir, err)
		}
		t.Skipf("conformance recipes not found at %s (only present in the project's own workspace): %v", dir, err)
	}
	return dir
}

// readTags reads a TAGS file: one tag a line, # comments.
func readTags(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var tags []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			tags = append(tags, line)
		}
	}
	return tags
}

// importRecipe makes a git repository of a shared recipe folder: one commit, annotated tags
// from its TAGS file. It returns the version to render: the newest tag, or the commit when the
// recipe has no release tags.
func importRecipe(t testing.TB, shared, recipesDir, name string) string {
	t.Helper()
	r := newTestRepo(t, recipesDir, name)
	copyTree(t, filepath.Join(shared, name), r.dir)
	h := r.commit(nil)
	tags := readTags(t, filepath.Join(shared, name, "TAGS"))
	for _, tag := range tags {
		r.tag(tag, h, true)
	}
	if len(tags) == 0 {
		return h.String()[:9]
	}
	return tags[len(tags)-1]
}

func TestConformanceRecipes(t *testing.T) {
	shared := conformanceRecipes(t)
	recipesDir := t.TempDir()
	versions := map[string]string{}
	for _, name := range []string{"bonfire", "custom-php", "gaseous"} {
		versions[name] = importRecipe(t, shared, recipesDir, name)
	}
	// compose.auth.github.yml is broken upstream: its app service uses the secret
	// github_client_secret but the file declares oauth_client_secret, so `docker stack deploy`
	// fails on it ("undefined secret"). It is left out of "every overlay" and checked on its own
	// below: rendering it must fail as Invalid, as docker's conversion does.
	const brokenOverlay = "compose.auth.github.yml"
	var bonfireOverlays []string
	for _, o := range allOverlays(t, filepath.Join(recipesDir, "bonfire")) {
		if o != brokenOverlay {
			bonfireOverlays = append(bonfireOverlays, o)
		}
	}
	if len(bonfireOverlays) < 17 { // the README counts 19 compose files: compose.yml and 18 overlays
		t.Fatalf("found %d bonfire overlays besides %s, want at least 17: %v", len(bonfireOverlays), brokenOverlay, bonfireOverlays)
	}

	tests := []struct {
		name, recipe string
		env          map[string]string
		wantServices []string
	}{
		{name: "bonfire default", recipe: "bonfire", wantServices: []string{"app", "db"}},
		{
			name:   "bonfire every overlay",
			recipe: "bonfire",
			env: map[string]string{
				"COMPOSE_FILE": strings.Join(append([]string{"compose.yml"}, bonfireOverlays...), ":"),
				// compose.basicauth.yml names its secret without a default version, and
				// .env.sample leaves SECRET_USERSFILE_VERSION commented out: enable it as an
				// operator would.
				"SECRET_USERSFILE_VERSION": "v1",
			},
			wantServices: []string{"app", "db", "search"},
		},
		{name: "custom-php default", recipe: "custom-php", wantServices: []string{"app", "db", "frontend"}},
		{name: "gaseous default", recipe: "gaseous", wantServices: []string{"app", "db"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			req := Request{App: "conf", Recipe: tc.recipe, Version: versions[tc.recipe],
				Domain: "conf.example.org", Stack: "conf_example_org", Env: tc.env}
			r, err := Render(ctx, recipesDir, req)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			svcs, err := r.Services(ctx, PlaceholderResolver())
			if err != nil {
				t.Fatalf("Services: %v", err)
			}
			var got []string
			for name := range svcs {
				got = append(got, strings.TrimPrefix(name, req.Stack+"_"))
			}
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(tc.wantServices, ",") {
				t.Errorf("services = %v, want %v", got, tc.wantServices)
			}
			checkAllLabelled(t, r, svcs)
		})
	}

	t.Run("bonfire backup plan", func(t *testing.T) {
		_, got := planOf(t)(Render(context.Background(), recipesDir, Request{App: "conf", Recipe: "bonfire",
			Version: versions["bonfire"], Domain: "conf.example.org", Stack: "conf_example_org"}))
		// compose.yml: app backs up upload-data whole; compose.postgres.yml: db dumps with its
		// pre-hook onto db-data, of which only backup.sql is kept, and restores with its post-hook.
		want := `{"services":[` +
			`{"name":"app","volumes":[{"name":"upload-data","full":"conf_example_org_upload-data","target":"/opt/app/data/uploads"}]},` +
			`{"name":"db","volumes":[{"name":"db-data","full":"conf_example_org_db-data","target":"/var/lib/postgresql/data","paths":["backup.sql"]}],` +
			`"preHook":"/pg_backup.sh backup","restorePostHook":"/pg_backup.sh restore"}]}`
		if got != want {
			t.Errorf("bonfire's backup plan\n got %s\nwant %s", got, want)
		}
	})

	t.Run("bonfire broken github overlay", func(t *testing.T) {
		_, err := Render(context.Background(), recipesDir, Request{App: "conf", Recipe: "bonfire",
			Version: versions["bonfire"], Domain: "conf.example.org", Stack: "conf_example_org",
			Env: map[string]string{"COMPOSE_FILE": "compose.yml:compose.postgres.yml:" + brokenOverlay}})
		if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), `undefined secret "github_client_secret"`) {
			t.Fatalf("err = %v, want ErrInput naming the undefined secret", err)
		}
	})
}

// allOverlays lists every compose.*.yml of a recipe, the subfolders' too, relative to its root.
func allOverlays(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, pattern := range []string{"compose.*.yml", "*/compose.*.yml"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
	}
	sort.Strings(out)
	return out
}
