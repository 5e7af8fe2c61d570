package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
)

// BenchmarkMultinode measures, on the 4-node swarm of scripts/multinode, 10 apps of one
// service and one volume whose tasks run on the three nodes other than the reconciler's:
//
//   - overhead: with minReady 0s, the Ready entry of each app's status history minus the
//     running timestamp swarm gives its task (agents and reconciler share this host's clock):
//     how late the reconciler sees tasks on other nodes, which send it no container events.
//   - deploy: with the default stability window (5 s, as `docker stack deploy --detach=false`
//     waits), all 10 spec files written at once to each status Ready, against 10 concurrent
//     `docker stack deploy --detach=false` of the same compose file (start to exit).
//   - teardown: 10 spec files deleted to each status Deleted (written once every node said
//     nothing of the app is left), against 10 concurrent `docker stack rm` plus, on each node's
//     own engine, removing the stack's volumes once its containers there are gone (retrying
//     while in use), until nothing of the stack is left anywhere.
//
// $E2E_BENCH_MN_REPS rounds each way (default 3), interleaved; $E2E_BENCH_MN_LOGS, a directory,
// keeps the reconciler's log there. Run with
//
//	make multinode && E2E_MULTINODE=/tmp/multinode go test ./e2e -run '^$' -bench Multinode -benchtime 1x -timeout 60m
func BenchmarkMultinode(b *testing.B) {
	needMultinode(b)
	reps := 3
	if v, err := strconv.Atoi(os.Getenv("E2E_BENCH_MN_REPS")); err == nil && v > 0 {
		reps = v
	}
	const n = 10
	h := mnHarness(b)
	mnRecipe(b, h, "mn-bench", `      placement:
        constraints: ["node.hostname != mn-node1"]`)
	h.start()
	if dir := os.Getenv("E2E_BENCH_MN_LOGS"); dir != "" {
		b.Cleanup(func() {
			if raw, err := os.ReadFile(h.logPath); err == nil {
				_ = os.WriteFile(filepath.Join(dir, "multinode-reconciler.log"), raw, 0o644)
			}
		})
	}
	compose := filepath.Join(h.recipes, "mn-bench", "compose.yml")
	var overhead, recDeploy, recTeardown, stackDeploy, stackTeardown []float64
	for i := 0; i < b.N; i++ {
		for rep := 0; rep < reps; rep++ {
			overhead = append(overhead, mnReconcilerRound(b, h, n, "minReady: 0s", nil, nil)...)
			var d, t []float64
			mnReconcilerRound(b, h, n, "", &d, &t)
			recDeploy, recTeardown = append(recDeploy, d...), append(recTeardown, t...)
			d, t = mnStackRound(b, compose, n)
			stackDeploy, stackTeardown = append(stackDeploy, d...), append(stackTeardown, t...)
		}
	}
	b.ReportMetric(median(overhead), "overhead-ms")
	b.ReportMetric(median(recDeploy), "rec-deploy-ms")
	b.ReportMetric(median(stackDeploy), "stack-deploy-ms")
	b.ReportMetric(median(recTeardown), "rec-teardown-ms")
	b.ReportMetric(median(stackTeardown), "stack-teardown-ms")
	b.Logf("\n| %d apps x %d rounds, tasks on 3 other nodes | median | min | max |\n|---|---|---|---|\n"+
		"| overhead: Ready - task running (minReady 0s), ms | %.0f | %.0f | %.0f |\n"+
		"| reconciler: spec -> Ready (5 s window), ms | %.0f | %.0f | %.0f |\n"+
		"| docker stack deploy --detach=false, ms | %.0f | %.0f | %.0f |\n"+
		"| reconciler: spec deleted -> Deleted, ms | %.0f | %.0f | %.0f |\n"+
		"| docker stack rm + volumes on each node, ms | %.0f | %.0f | %.0f |\n"+
		"| deploy ratio (reconciler / stack deploy) | %.2fx | | |\n| teardown ratio (reconciler / stack rm + volumes) | %.2fx | | |\n",
		n, reps, median(overhead), minOf(overhead), maxOf(overhead),
		median(recDeploy), minOf(recDeploy), maxOf(recDeploy),
		median(stackDeploy), minOf(stackDeploy), maxOf(stackDeploy),
		median(recTeardown), minOf(recTeardown), maxOf(recTeardown),
		median(stackTeardown), minOf(stackTeardown), maxOf(stackTeardown),
		median(recDeploy)/median(stackDeploy), median(recTeardown)/median(stackTeardown))
}

func minOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return slices.Min(v)
}

// mnReconcilerRound deploys n apps at once through the reconciler and tears them down; it
// returns the overheads (Ready minus the task's running time) and appends each app's
// spec -> Ready and delete -> Deleted times to deploy and teardown when given.
func mnReconcilerRound(b *testing.B, h *harness, n int, extra string, deploy, teardown *[]float64) []float64 {
	ctx := context.Background()
	apps := make([]*testApp, n)
	gens := map[string]string{}
	written := make([]time.Time, n)
	for i := range apps {
		apps[i] = h.newApp("mnb")
	}
	for i, a := range apps {
		written[i] = time.Now()
		gens[a.name] = h.writeSpec(a.name, []byte("recipe: mn-bench\nversion: "+miniRelease+"\ntimeout: 5m\n"+extra+"\n"))
	}
	var overheads []float64
	for i, a := range apps {
		s := h.waitPhase(a.name, gens[a.name], "Ready")
		var readyAt time.Time
		for _, e := range statusHistoryTimes(b, s) {
			if e.Phase == "Ready" {
				readyAt = e.Time
			}
		}
		tasks, err := h.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
			filters.Arg("service", a.stack()+"_app"), filters.Arg("desired-state", "running"))})
		if err != nil || len(tasks) != 1 || tasks[0].Status.State != swarm.TaskStateRunning {
			b.Fatalf("%s: tasks %+v, %v", a.name, tasks, err)
		}
		if tasks[0].NodeID == mnSelfID(b) {
			b.Fatalf("%s: task on the reconciler's own node", a.name)
		}
		overheads = append(overheads, ms(readyAt.Sub(tasks[0].Status.Timestamp)))
		if deploy != nil {
			*deploy = append(*deploy, ms(readyAt.Sub(written[i])))
		}
	}
	deleted := make([]time.Time, n)
	for i, a := range apps {
		deleted[i] = time.Now()
		h.deleteSpec(a.name)
	}
	for i, a := range apps {
		s, err := h.waitDeleted(a.name)
		if err != nil {
			b.Fatal(err)
		}
		var at time.Time
		for _, e := range statusHistoryTimes(b, s) {
			if e.Phase == "Deleted" {
				at = e.Time
			}
		}
		if left := h.residue(a.name); len(left) > 0 {
			b.Fatalf("%s Deleted with %v left", a.name, left)
		}
		if teardown != nil {
			*teardown = append(*teardown, ms(at.Sub(deleted[i])))
		}
	}
	return overheads
}

// mnStackRound deploys n stacks of compose with concurrent `docker stack deploy
// --detach=false` against node 1 and removes them with `docker stack rm` plus the volumes on
// each node; it returns each stack's deploy and teardown times.
func mnStackRound(b *testing.B, compose string, n int) (deploy, teardown []float64) {
	ctx := context.Background()
	stacks := make([]string, n)
	for i := range stacks {
		stacks[i] = "mnbs-" + randomSuffix()
		st := stacks[i]
		b.Cleanup(func() {
			for _, node := range mn.nodes {
				removeVolumes(context.Background(), node.docker, filters.NewArgs(filters.Arg("label", namespaceLabel+"="+st)))
			}
		})
	}
	env := append(os.Environ(), "DOCKER_HOST=unix://"+mnSocket(mn.base, 1))
	run := func(f func(i int) error) []float64 {
		out := make([]float64, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range stacks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				errs[i] = f(i)
				out[i] = ms(time.Since(start))
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		return out
	}
	deploy = run(func(i int) error {
		cmd := exec.CommandContext(ctx, "docker", "stack", "deploy", "--detach=false", "--resolve-image", "never", "-c", compose, stacks[i])
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("docker stack deploy %s: %v\n%s", stacks[i], err, out)
		}
		return nil
	})
	settle()
	teardown = run(func(i int) error {
		// As a CI job does it: `docker stack rm` fails when a task still uses the network
		// (under load it does), so it runs again once the stack's containers are gone; and by
		// hand, on every node, the stack's volumes once its containers there are gone.
		rm := func() error {
			cmd := exec.CommandContext(ctx, "docker", "stack", "rm", stacks[i])
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("docker stack rm %s: %v\n%s", stacks[i], err, out)
			}
			return nil
		}
		rmErr := rm()
		byStack := filters.NewArgs(filters.Arg("label", namespaceLabel+"="+stacks[i]))
		err := poll(ctx, 3*time.Minute, func() (bool, error) {
			for _, node := range mn.nodes {
				cs, err := node.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: byStack})
				if err != nil || len(cs) > 0 {
					return false, err
				}
			}
			left, err := labelled(ctx, mn.nodes[0].docker, namespaceLabel, stacks[i])
			if err != nil {
				return false, err
			}
			for _, obj := range left {
				if kind, _, _ := strings.Cut(obj, " "); kind == "service" || kind == "network" || kind == "config" || kind == "secret" {
					rmErr = rm()
					return false, nil
				}
			}
			done := true
			for _, node := range mn.nodes {
				vols, err := node.docker.VolumeList(ctx, volume.ListOptions{Filters: byStack})
				if err != nil {
					return false, err
				}
				for _, v := range vols.Volumes {
					if err := node.docker.VolumeRemove(ctx, v.Name, false); err != nil {
						done = false // in use a moment longer
					}
				}
			}
			return done, nil
		})
		if err != nil {
			return fmt.Errorf("%w (last docker stack rm: %v)", err, rmErr)
		}
		return nil
	})
	settle()
	return deploy, teardown
}

// statusHistoryTimes reads the history of a status with its times.
func statusHistoryTimes(b *testing.B, s appStatus) []struct {
	Time    time.Time
	Phase   string
	Message string
} {
	var full struct {
		History []struct {
			Time    time.Time
			Phase   string
			Message string
		} `json:"history"`
	}
	if err := json.Unmarshal(s.raw, &full); err != nil {
		b.Fatal(err)
	}
	return full.History
}

// mnSelfID is node 1's swarm node ID.
func mnSelfID(b *testing.B) string {
	info, err := mn.nodes[0].docker.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSpace(info.Swarm.NodeID)
}
