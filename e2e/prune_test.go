package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

const pruneRecipe = "e2e-prune"

// TestPruneAfterUpgrade: an upgrade that bumps a config's version leaves the old config to
// swarm's rollback target until the next upgrade, which removes it once it converged; the
// configs left are the running spec's and the previous spec's, never fewer.
func TestPruneAfterUpgrade(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	makeEchoRecipe(t, h, pruneRecipe, "CONF_VERSION=v1\n", fmt.Sprintf(`services:
  app:
    image: %s
    environment:
      - MESSAGE=hello from %s
      - CONFIG_FILE=/etc/echo.conf
    configs:
      - source: conf
        target: /etc/echo.conf

configs:
  conf:
    name: ${STACK_NAME}_conf_${CONF_VERSION}
    file: conf.txt
`, echoImage, pruneRecipe), map[string]string{"conf.txt": "some configuration\n"})
	a := h.newApp("e2e-prune")
	configs := func() []string {
		list, err := suite.docker.ConfigList(context.Background(), swarm.ConfigListOptions{Filters: filters.NewArgs(filters.Arg("label", appLabel+"="+a.name))})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range list {
			names = append(names, strings.TrimPrefix(c.Spec.Name, a.stack()+"_"))
		}
		slices.Sort(names)
		return names
	}
	for _, step := range []struct {
		version string
		want    []string
	}{
		{"v1", []string{"conf_v1"}},
		{"v2", []string{"conf_v1", "conf_v2"}}, // v1 is what a rollback would run
		{"v3", []string{"conf_v2", "conf_v3"}},
	} {
		gen := h.writeSpec(a.name, []byte(fmt.Sprintf("recipe: %s\nversion: %q\nminReady: 1s\nenv:\n  CONF_VERSION: %s\n", pruneRecipe, miniRelease, step.version)))
		s := h.waitPhase(a.name, gen, "Ready")
		// The pruning is the Ready pass's own action: done when Ready is written.
		if got := configs(); !slices.Equal(got, step.want) {
			t.Errorf("Ready at %s (%s): configs %v, want %v", step.version, s.Message, got, step.want)
		}
		svc := a.appService(t)
		full, _, err := suite.docker.ServiceInspectWithRaw(context.Background(), svc.ID, swarm.ServiceInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ps := full.PreviousSpec
		if ps == nil && step.version != "v1" {
			t.Fatalf("at %s the service has no previous spec: not updated in place, so no rollback target to check", step.version)
		}
		if ps != nil && step.version != "v1" {
			if n := ps.TaskTemplate.ContainerSpec.Configs[0].ConfigName; !slices.Contains(step.want, strings.TrimPrefix(n, a.stack()+"_")) {
				t.Errorf("the rollback target uses %s, which is gone", n)
			}
		}
	}
}
