package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestFixtureStackDeploy proves the fixtures independently of the reconciler: the recipe at
// each release, deployed with plain `docker stack deploy`, runs the test image and answers
// with that release's message and its config. When this fails, the other tests' failures say
// nothing about the product.
func TestFixtureStackDeploy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, err := makeRecipe(t.TempDir(), "e2e-echo")
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range r.Releases {
		t.Run(rel.Version, func(t *testing.T) {
			port, err := freePort()
			if err != nil {
				t.Fatal(err)
			}
			stack := fmt.Sprintf("e2e-fixture-%s_e2e_test", randomSuffix())
			t.Cleanup(func() {
				if err := stackRemove(context.Background(), stack); err != nil {
					t.Error(err)
				}
			})
			if err := stackDeploy(ctx, r, rel.Version, t.TempDir(), stack, port); err != nil {
				t.Fatal(err)
			}
			if err := waitStackRunning(ctx, stack, 2*time.Minute); err != nil {
				t.Fatal(err)
			}
			if err := waitHTTP(ctx, port, "/", rel.Message); err != nil {
				t.Fatal(err)
			}
			if err := waitHTTP(ctx, port, "/config", configContent); err != nil {
				t.Fatal(err)
			}
			if err := waitHTTP(ctx, port, "/secret", fmt.Sprint(secretLength)); err != nil {
				t.Fatal(err)
			}
			if err := waitHTTP(ctx, port, "/healthz", "ok"); err != nil {
				t.Fatal(err)
			}
			objects, err := labelled(ctx, suite.docker, namespaceLabel, stack)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("stack %s: %v", stack, objects)
			for _, kind := range []string{"service", "network", "volume", "secret", "config"} {
				if !hasKind(objects, kind) {
					t.Errorf("stack %s has no %s; the fixture must give teardown every kind to remove: %v", stack, kind, objects)
				}
			}
		})
	}
}

func hasKind(objects []string, kind string) bool {
	for _, o := range objects {
		if len(o) > len(kind) && o[:len(kind)+1] == kind+" " {
			return true
		}
	}
	return false
}
