package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// TestDeploySlots: with --max-deploying 1, of three apps written at once one deploys and the
// others wait Pending, "queued", until it is Ready: each queued app applies its release only
// after the task of the one before it runs, and all end Ready.
func TestDeploySlots(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.extra = []string{"--max-deploying", "1"}
	h.start()
	version := h.recipe.first().Version
	apps := []*testApp{h.newApp("e2e-slot-a"), h.newApp("e2e-slot-b"), h.newApp("e2e-slot-c")}
	gens := map[string]string{}
	for _, a := range apps {
		gens[a.name] = h.writeSpec(a.name, a.spec(version))
	}
	type applied struct {
		app     string
		at      time.Time // the history's "applying" entry
		queued  bool      // a "queued" Pending entry came before it
		running time.Time // the app's task's running timestamp
	}
	var order []applied
	for _, a := range apps {
		s := h.waitPhase(a.name, gens[a.name], "Ready")
		var st struct {
			History []struct {
				Time    time.Time `json:"time"`
				Phase   string    `json:"phase"`
				Message string    `json:"message"`
			} `json:"history"`
		}
		if err := json.Unmarshal(s.raw, &st); err != nil {
			t.Fatal(err)
		}
		ap := applied{app: a.name}
		for _, e := range st.History {
			if e.Phase == "Pending" && strings.HasPrefix(e.Message, "queued: 1 apps are deploying (--max-deploying 1)") {
				ap.queued = true
			}
			if e.Phase == "Deploying" && strings.HasPrefix(e.Message, "applying ") && ap.at.IsZero() {
				ap.at = e.Time
			}
		}
		tasks, err := suite.docker.TaskList(context.Background(), swarm.TaskListOptions{
			Filters: filters.NewArgs(filters.Arg("service", a.stack()+"_app"), filters.Arg("desired-state", "running")),
		})
		if err != nil || len(tasks) != 1 {
			t.Fatalf("%s: tasks %d, %v", a.name, len(tasks), err)
		}
		ap.running = tasks[0].Status.Timestamp
		if ap.at.IsZero() {
			t.Fatalf("%s: no applying entry in the history:\n%s", a.name, s)
		}
		order = append(order, ap)
	}
	// In the order they applied: each after the task of the one before it ran.
	for i := 1; i < len(order); i++ {
		for j := i; j > 0 && order[j].at.Before(order[j-1].at); j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	queued := 0
	for i, ap := range order {
		if ap.queued {
			queued++
		}
		if i > 0 && ap.at.Before(order[i-1].running) {
			t.Errorf("%s applied at %s, before the task of %s ran (%s): two deploying at once with --max-deploying 1",
				ap.app, ap.at.Format(time.RFC3339Nano), order[i-1].app, order[i-1].running.Format(time.RFC3339Nano))
		}
	}
	if queued < 2 {
		t.Errorf("%d of the apps were queued, want the two written after the first: %+v", queued, order)
	}
}

// TestRemovalSlots: with --max-removing 1, of three apps deleted at once one removes its
// service and the others wait, Deleting, "queued", touching nothing: the engine's events show
// each service removed only after the container of the one removed before it died. All end
// Deleted, nothing left.
func TestRemovalSlots(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.extra = []string{"--max-removing", "1"}
	h.start()
	version := h.recipe.first().Version
	apps := []*testApp{h.newApp("e2e-rmslot-a"), h.newApp("e2e-rmslot-b"), h.newApp("e2e-rmslot-c")}
	gens := map[string]string{}
	for _, a := range apps {
		gens[a.name] = h.writeSpec(a.name, a.spec(version))
	}
	for _, a := range apps {
		h.waitPhase(a.name, gens[a.name], "Ready")
	}
	var (
		mu      sync.Mutex
		err     error
		removed = map[string]time.Time{} // stack -> its service's removal
		died    = map[string]time.Time{} // stack -> its container's death
	)
	stackOf := map[string]string{}
	for _, a := range apps {
		stackOf[a.stack()+"_app"] = a.stack()
	}
	followEvents(t, &mu, &err, filters.NewArgs(filters.Arg("type", "service"), filters.Arg("type", "container"),
		filters.Arg("event", "remove"), filters.Arg("event", "die")), func(m events.Message) {
		at := time.Unix(0, m.TimeNano)
		switch {
		case m.Type == events.ServiceEventType && m.Action == events.ActionRemove:
			if stack, ok := stackOf[m.Actor.Attributes["name"]]; ok {
				removed[stack] = at
			}
		case m.Type == events.ContainerEventType && m.Action == events.ActionDie:
			if stack, ok := stackOf[m.Actor.Attributes["com.docker.swarm.service.name"]]; ok {
				died[stack] = later(died[stack], at)
			}
		}
	})
	for _, a := range apps {
		h.deleteSpec(a.name)
	}
	queued := 0
	for _, a := range apps {
		s, werr := h.waitDeleted(a.name)
		if werr != nil {
			t.Fatal(werr)
		}
		var st struct {
			History []struct {
				Phase   string `json:"phase"`
				Message string `json:"message"`
			} `json:"history"`
		}
		if err := json.Unmarshal(s.raw, &st); err != nil {
			t.Fatal(err)
		}
		for _, e := range st.History {
			if e.Phase == "Deleting" && strings.Contains(e.Message, "queued: 1 apps' services are stopping (--max-removing 1)") {
				queued++
			}
		}
		h.assertNoResidue(a.name)
	}
	if queued < 2 {
		t.Errorf("%d of the teardowns were queued, want the two after the first", queued)
	}
	// The events of the last container's death may come a moment after its Deleted.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n, m, ferr := len(removed), len(died), err
		mu.Unlock()
		if ferr != nil {
			t.Fatalf("engine events: %v", ferr)
		}
		if n == len(apps) && m == len(apps) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events seen: services removed %v, containers died %v; want all %d of each", removed, died, len(apps))
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	stacks := make([]string, 0, len(apps))
	for _, a := range apps {
		stacks = append(stacks, a.stack())
	}
	slices.SortFunc(stacks, func(a, b string) int { return removed[a].Compare(removed[b]) })
	for i := 1; i < len(stacks); i++ {
		if prev := stacks[i-1]; removed[stacks[i]].Before(died[prev]) {
			t.Errorf("%s's service removed at %s, before the container of %s died (%s): two teardowns stopping at once with --max-removing 1",
				stacks[i], removed[stacks[i]].Format(time.RFC3339Nano), prev, died[prev].Format(time.RFC3339Nano))
		}
	}
}
