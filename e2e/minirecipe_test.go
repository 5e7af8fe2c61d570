package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/image"
)

// miniRelease is the one release makeMiniRecipe tags.
const miniRelease = "1.0.0+1"

// makeMiniRecipe creates <recipesDir>/<name>: a git repository holding files (compose.yml,
// .env.sample, ...) committed and tagged miniRelease, for a test that needs a recipe shaped
// differently from the suite's.
func makeMiniRecipe(t testing.TB, recipesDir, name string, files map[string]string) {
	t.Helper()
	files["README.md"] = "# " + name + "\n\nAn e2e test recipe.\n"
	commitRecipe(t, filepath.Join(recipesDir, name), miniRelease, files)
}

// makeEchoRecipe makes a mini recipe named name under h's recipes: an .env.sample of TYPE,
// DOMAIN and the lines of env, a compose.yml of version "3.8" and compose (its services and
// the rest, as a compose file writes them), and any other files.
func makeEchoRecipe(t testing.TB, h *harness, name, env, compose string, files map[string]string) {
	t.Helper()
	makeMiniRecipe(t, h.recipes, name, echoRecipeFiles(name, env, compose, files))
}

// echoRecipeFiles are the files of makeEchoRecipe's recipe.
func echoRecipeFiles(name, env, compose string, files map[string]string) map[string]string {
	all := map[string]string{
		".env.sample": "TYPE=" + name + "\nDOMAIN=" + name + ".example.com\n" + env,
		"compose.yml": "version: \"3.8\"\n\n" + compose,
	}
	for f, c := range files {
		all[f] = c
	}
	return all
}

// commitRecipe creates dir as a git repository holding files, committed and tagged release.
func commitRecipe(t testing.TB, dir, release string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for file, content := range files {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"commit", "-q", "-m", "chore: release " + release},
		{"tag", "-a", release, "-m", "release " + release},
	} {
		if err := git(dir, args...); err != nil {
			t.Fatal(err)
		}
	}
}

// edit is one replacement in a file of a variant recipe: old must occur in it.
type edit struct{ old, new string }

// makeVariantRecipe makes <h's recipes>/<name>: the suite's recipe (makeRecipe's compose.yml,
// .env.sample, abra.sh and config file, tagged miniRelease) with the edits applied to its
// compose.yml and .env.sample.
func makeVariantRecipe(t testing.TB, h *harness, name string, composeEdits, envEdits []edit) {
	t.Helper()
	apply := func(file, text string, edits []edit) string {
		for _, e := range edits {
			if !strings.Contains(text, e.old) {
				t.Fatalf("recipe %s: the suite's %s has no %q to replace", name, file, e.old)
			}
			text = strings.Replace(text, e.old, e.new, 1)
		}
		return text
	}
	makeMiniRecipe(t, h.recipes, name, map[string]string{
		"compose.yml":     apply("compose.yml", composeFile("hello from "+name, miniRelease), composeEdits),
		".env.sample":     apply(".env.sample", envSample(name), envEdits),
		"abra.sh":         "export APP_ENTRYPOINT_VERSION=v1\n",
		"entrypoint.conf": configContent,
	})
}

// testImage tags the echo image this run built as swarm-reconciler-e2e/echo:<purpose>-<random>
// and removes the tag when the test ends (after the apps' cleanups, when registered before
// them). Another run on this host that rebuilds echoImage from an older tree cannot swap the
// image under a test that needs a feature of this tree's echo.
func testImage(t testing.TB, purpose string) string {
	t.Helper()
	ctx := context.Background()
	img := "swarm-reconciler-e2e/echo:" + purpose + "-" + randomSuffix()
	if err := suite.docker.ImageTag(ctx, echoImage, img); err != nil {
		t.Fatalf("tag %s as %s: %v", echoImage, img, err)
	}
	t.Cleanup(func() {
		if _, err := suite.docker.ImageRemove(context.Background(), img, image.RemoveOptions{}); err != nil {
			t.Logf("untag %s: %v", img, err)
		}
	})
	return img
}
