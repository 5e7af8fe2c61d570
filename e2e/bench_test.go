package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkInstallDelete measures, for the e2e recipe, the reconciler's spec-written-to-Ready
// and spec-deleted-to-Deleted next to what the swarm itself takes for the same compose file
// with `docker stack deploy` (until its task runs) and `docker stack rm` (until no service,
// network, config or volume of the stack is left; the volume removed by hand, as stack rm
// leaves it). The reconciler runs with --resync 2s; its numbers include its own polling, the
// suite's status polling (50ms) and, for Ready, swarm's own scheduling.
//
//	go test ./e2e/ -run '^$' -bench InstallDelete -benchtime 5x -timeout 20m
func BenchmarkInstallDelete(b *testing.B) {
	ctx := context.Background()
	h := startHarness(b)
	version := h.recipe.first().Version
	var ready, deleted, deploy, rm time.Duration

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// The reconciler.
		a := h.newApp("e2e-bench")
		body := a.spec(version)
		start := time.Now()
		gen := h.writeSpec(a.name, body)
		h.waitPhase(a.name, gen, "Ready")
		ready += time.Since(start)

		start = time.Now()
		h.deleteSpec(a.name)
		if _, err := h.waitDeleted(a.name); err != nil {
			b.Fatal(err)
		}
		deleted += time.Since(start)
		h.assertNoResidue(a.name)

		// The swarm alone, same recipe and version.
		port, err := freePort()
		if err != nil {
			b.Fatal(err)
		}
		stack := fmt.Sprintf("e2e-bench-stack-%s_e2e_test", randomSuffix())
		b.StopTimer()
		checkout, err := stackCheckout(ctx, h.recipe, version, b.TempDir(), stack)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { removeLabelled(context.Background(), suite.docker, namespaceLabel, stack) })
		b.StartTimer()
		start = time.Now()
		if err := stackDeployCheckout(ctx, checkout, stack, port); err != nil {
			b.Fatal(err)
		}
		if err := waitStackRunning(ctx, stack, 2*time.Minute); err != nil {
			b.Fatal(err)
		}
		deploy += time.Since(start)

		start = time.Now()
		if err := stackRemove(ctx, stack); err != nil {
			b.Fatal(err)
		}
		rm += time.Since(start)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	b.ReportMetric(ms(ready), "reconciler-ready-ms")
	b.ReportMetric(ms(deploy), "stack-deploy-ms")
	b.ReportMetric(ms(deleted), "reconciler-deleted-ms")
	b.ReportMetric(ms(rm), "stack-rm-ms")
}
