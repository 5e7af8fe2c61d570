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
)

// BenchmarkMultinodeHA measures, with one replica per manager of the 4-node swarm and one
// Ready app:
//
//   - failover: the leader SIGKILLed (no release: the others wait out the lease) to another
//     replica's /readyz answering "ok: leader": it holds the lease, built its controller and
//     finished its first pass (the initial resync: every app that needs work reconciled once),
//     $E2E_BENCH_HA_TRIALS trials (default 10); the killed replica is started again as a
//     follower before the next trial.
//   - handover: the leader stopped with SIGTERM (it releases the lease) to the same, 3 trials.
//   - the steady cost of the lease: the lease's Engine API calls (on /configs/{id}) a minute,
//     of the leader and of a follower, over $E2E_BENCH_HA_IDLE (default 60s) with nothing to do.
//     The leader's other calls are its resync (the suite's --resync 2s) and the pings of the
//     suite's /readyz sampling, not the lease's.
//
// Run with
//
//	make multinode && E2E_MULTINODE=/tmp/multinode go test ./e2e -run '^$' -bench MultinodeHA -benchtime 1x -timeout 30m
func BenchmarkMultinodeHA(b *testing.B) {
	trials := 10
	if v, err := strconv.Atoi(os.Getenv("E2E_BENCH_HA_TRIALS")); err == nil && v > 0 {
		trials = v
	}
	idle := time.Minute
	if v, err := time.ParseDuration(os.Getenv("E2E_BENCH_HA_IDLE")); err == nil && v > 0 {
		idle = v
	}
	c := newHACluster(b)
	h := c.h
	mnRecipe(b, h, "mn-ha", `      replicas: 1
      placement:
        constraints: ["node.hostname == mn-node4"]`)
	for i, id := range []string{"r1", "r2", "r3"} {
		c.start(id, i+1)
	}
	c.awaitLeader(time.Minute, "")
	app, gen := c.haApp("mn-ha-bench", "", true)
	h.waitPhase(app, gen, "Ready")

	// Steady cost first, while nothing else happens.
	leader := c.awaitLeader(time.Minute, "")
	var follower *haReplica
	for _, r := range c.replicas {
		if r != leader {
			follower = r
			break
		}
	}
	l0, _ := apiCalls(b, leader.port)
	f0, _ := apiCalls(b, follower.port)
	time.Sleep(idle)
	l1, _ := apiCalls(b, leader.port)
	f1, _ := apiCalls(b, follower.port)
	perMinute := func(a, z map[string]float64) (map[string]float64, float64) {
		out, sum := map[string]float64{}, 0.0
		for op, v := range z {
			if !strings.Contains(op, "/configs/{id}") {
				continue
			}
			if d := (v - a[op]) * float64(time.Minute) / float64(idle); d > 0 {
				out[op] = d
				sum += d
			}
		}
		return out, sum
	}
	lOps, lSum := perMinute(l0, l1)
	fOps, fSum := perMinute(f0, f1)
	b.Logf("lease cost over %s: leader %.0f calls/min %v; follower %.0f calls/min %v", idle, lSum, lOps, fSum, fOps)
	b.ReportMetric(lSum, "leader-lease-calls/min")
	b.ReportMetric(fSum, "follower-lease-calls/min")

	measure := func(kill bool) time.Duration {
		old := c.awaitLeader(time.Minute, "")
		start := time.Now()
		if kill {
			c.kill(old)
		} else {
			old.stop(b)
		}
		var took time.Duration
		err := poll(context.Background(), time.Minute, func() (bool, error) {
			for _, r := range c.replicas {
				if r != old && r.role() == "leader" && r.ready() {
					took = time.Since(start)
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			b.Fatalf("no new leader ready within a minute of stopping %s: %v", old.id, err)
		}
		c.start(old.id, old.node)
		return took
	}
	stats := func(name string, ds []time.Duration) {
		slices.Sort(ds)
		med, max := ds[len(ds)/2], ds[len(ds)-1]
		var all []string
		for _, d := range ds {
			all = append(all, d.Round(10*time.Millisecond).String())
		}
		b.Logf("%s over %d trials: median %s, max %s (all %v)", name, len(ds), med.Round(10*time.Millisecond), max.Round(10*time.Millisecond), all)
		b.ReportMetric(med.Seconds(), name+"-median-s")
		b.ReportMetric(max.Seconds(), name+"-max-s")
	}
	var failover, handover []time.Duration
	for i := 0; i < trials; i++ {
		failover = append(failover, measure(true))
		fmt.Fprintf(os.Stderr, "bench: failover trial %d: %s\n", i+1, failover[len(failover)-1].Round(10*time.Millisecond))
	}
	stats("failover", failover)
	for i := 0; i < 3; i++ {
		handover = append(handover, measure(false))
	}
	stats("handover", handover)
	c.awaitLeader(time.Minute, "")
}
