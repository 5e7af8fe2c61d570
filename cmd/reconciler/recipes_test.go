package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/swarm-reconciler/reconciler/manifests"
)

// TestRecipesLists: recipes lists each recipe repository with its source ("" for none: local)
// and newest tags; a recipe cloned from --recipe-url shows the URL without credentials and
// when it was cloned.
func TestRecipesLists(t *testing.T) {
	e := newCLIEnv(t)
	defer manifests.Cleanup()
	commitRecipe(t, filepath.Join(e.files, "here"), map[string]string{".env.sample": "TYPE=here\n", "compose.yml": "version: \"3.8\"\nservices: {}\n"})
	remotes := t.TempDir()
	commitRecipe(t, filepath.Join(remotes, "far"), map[string]string{".env.sample": "TYPE=far\n", "compose.yml": "version: \"3.8\"\nservices: {}\n"})
	r := &manifests.Remote{URLTemplate: "file://" + remotes + "/{recipe}"}
	if err := r.Ensure(context.Background(), e.files, "far", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code, err := e.run(context.Background(), "recipes", "-o", "json")
	if code != 0 {
		t.Fatalf("recipes: exit %d %v\n%s", code, err, stderr)
	}
	var list []manifests.RecipeSource
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	got := map[string]manifests.RecipeSource{}
	for _, s := range list {
		got[s.Recipe] = s
	}
	if s := got["here"]; s.Source != "" || len(s.Tags) != 1 || s.Tags[0] != "1.0.0" || s.LastFetch != nil {
		t.Errorf("here: %+v", s)
	}
	if s := got["far"]; s.Source != "file://"+remotes+"/far" || s.LastOp != "clone" || s.LastFetch == nil || len(s.Tags) != 1 {
		t.Errorf("far: %+v", s)
	}
}
