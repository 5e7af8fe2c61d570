package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// BenchmarkVerdictLatency measures how long after swarm finishes a rolling update the status
// file says so: for each of several in-place upgrades of one app (alternating between two
// releases of the rollout recipe), the time from the service's UpdateStatus.CompletedAt, as
// the engine reports it, to the moment a reader polling the status file every 2ms first saw
// Ready for that upgrade's generation. Both clocks are this host's.
//
// It reports the median ("verdict-latency-ms", the target is under 200ms: the verdict must be
// driven by the engine's service-update event, not by the 1s wait interval or the 2s resync),
// the maximum, and the same median measured with the Ready entry of the status history
// instead of the reader ("verdict-latency-history-ms": when the reconcile that wrote Ready
// started, which excludes the status write and the reader's poll; it can be slightly negative
// when that reconcile started just before swarm set CompletedAt).
//
//	go test ./e2e/ -run '^$' -bench VerdictLatency -benchtime 1x -timeout 20m
//
// E2E_VERDICT_ROUNDS sets the number of upgrades per iteration (default 8).
func BenchmarkVerdictLatency(b *testing.B) {
	rounds := 8
	if v := os.Getenv("E2E_VERDICT_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("E2E_VERDICT_ROUNDS=%q: want a positive number", v)
		}
		rounds = n
	}
	h := startHarness(b)
	r := makeRolloutRecipe(b, h.recipes)
	a := h.newApp("e2e-ro-bench")
	w := watchStatus(b, h.statusPath(a.name), 2*time.Millisecond)
	r.deploy(b, a, rolloutV1)

	var polled, history, upgrade []float64
	var lines []string
	round := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range rounds {
			round++
			version := rolloutV2
			if round%2 == 0 {
				version = rolloutV1
			}
			// The comment makes every round's generation distinct, even for the same version.
			body := r.spec(a, version, fmt.Sprintf("# verdict latency round %d", round))
			written := time.Now()
			gen := h.writeSpec(a.name, body)
			s := h.waitPhase(a.name, gen, "Ready")
			seen, ok := w.firstSeen(gen, "Ready")
			if !ok {
				b.Fatalf("round %d: the reader never saw Ready for %s:\n%s", round, rolloutShortGen(gen), w.trace())
			}
			if _, ok := w.firstSeen(gen, "Upgrading"); !ok {
				b.Fatalf("round %d: Ready without Upgrading: no roll happened:\n%s", round, w.trace())
			}
			svc := rolloutService(b, a)
			us := svc.UpdateStatus
			if us == nil || us.State != swarm.UpdateStateCompleted || us.CompletedAt == nil || us.StartedAt == nil {
				b.Fatalf("round %d: service %s update status %+v at Ready, want completed", round, svc.Spec.Name, us)
			}
			if us.StartedAt.Before(written) {
				b.Fatalf("round %d: the completed roll started at %s, before the spec was written at %s", round, us.StartedAt, written)
			}
			if got := svc.Spec.Labels["coop-cloud."+a.stack()+".version"]; got != version {
				b.Fatalf("round %d: version label %q at Ready, want %q", round, got, version)
			}
			full := rolloutFull(b, s)
			readyAt, ok := full.historyTime("Ready")
			if !ok {
				b.Fatalf("round %d: no Ready in the history:\n%s", round, s)
			}
			done := *us.CompletedAt
			polled = append(polled, ms(seen.Sub(done)))
			history = append(history, ms(readyAt.Sub(done)))
			upgrade = append(upgrade, ms(seen.Sub(written)))
			lines = append(lines, fmt.Sprintf("round %2d %s: spec->Ready %7.0fms  roll %s..%s  CompletedAt->file Ready %6.1fms  CompletedAt->history Ready %6.1fms",
				round, version, upgrade[len(upgrade)-1], us.StartedAt.Format("15:04:05.000"), done.Format("15:04:05.000"),
				polled[len(polled)-1], history[len(history)-1]))
			if err := waitHTTP(context.Background(), a.port, "/", r.Messages[version]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	w.halt()
	b.Logf("%d upgrades:\n%s", len(polled), strings.Join(lines, "\n"))
	b.ReportMetric(median(polled), "verdict-latency-ms")
	b.ReportMetric(slices.Max(polled), "verdict-latency-max-ms")
	b.ReportMetric(median(history), "verdict-latency-history-ms")
	b.ReportMetric(median(upgrade), "upgrade-ms")
	b.ReportMetric(0, "ns/op") // one op is several upgrades of a few seconds each: meaningless
	if m := median(polled); m >= 200 {
		b.Logf("median verdict latency %.1fms misses the 200ms target", m)
	}
}
