package controller

import (
	"strings"
	"testing"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// portsCompose is testCompose with a port published on the host, from the app's env, which
// the app's environment does not take in (as the e2e recipe does it): a change of PORT moves
// the published port alone.
var portsCompose = strings.NewReplacer(
	"    networks:\n      - internal\n", "    networks:\n      - internal\n    ports:\n      - target: 80\n        published: ${PORT}\n        mode: host\n",
	"      MESSAGE: \"hello %s\"\n", "      MESSAGE: \"hello %s\"\n      PORT: \"80\"\n",
).Replace(testCompose)

// TestPortOnlyChangeReadyOnceTheTasksMoved: a change of the published port alone leaves the
// task template as the tasks run it, yet swarm replaces every task, whose endpoint is copied
// from the service when it is made. Swarm's updater starts that roll a moment after the
// update is answered; until then the service shows no update and the old task runs, serving
// the old port. Ready must wait for the roll (CI saw Ready 20 ms after such an update, and
// Degraded 10 ms later).
func TestPortOnlyChangeReadyOnceTheTasksMoved(t *testing.T) {
	f := newFixture(t)
	makeRecipeOf(t, f.r.RecipesDir, "ports", portsCompose, "1.0.0+1")
	f.writeSpec("p", "recipe: ports\nversion: 1.0.0+1\nminReady: 0s\nenv:\n  PORT: \"8080\"\n")
	if st := f.settle("p"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.engine.rollStartLists = 2
	f.writeSpec("p", "recipe: ports\nversion: 1.0.0+1\nminReady: 0s\nenv:\n  PORT: \"8081\"\n")
	readyOnTheNewEndpoint(t, f, "p")
	if n := serviceNamed(f, "p_test_app").Spec.TaskTemplate.ForceUpdate; n != 1 {
		t.Errorf("after the port change: ForceUpdate %d, want 1", n)
	}
	// Scaled to 0 by hand and set back: the endpoint, as the engine gives it back, is the one
	// written, and nothing is raised.
	f.engine.byHand("p_test_app", func(s *swarm.ServiceSpec) {
		zero := uint64(0)
		s.Mode = swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &zero}}
	})
	if st := f.settle("p"); st.Phase != spec.PhaseReady {
		t.Fatalf("after a scale to 0 by hand: %s %s", st.Phase, st.Message)
	}
	if n := serviceNamed(f, "p_test_app").Spec.TaskTemplate.ForceUpdate; n != 1 {
		t.Errorf("after setting back a scale to 0: ForceUpdate %d, want 1 (the endpoint was taken for changed)", n)
	}
}

// readyOnTheNewEndpoint runs passes of app until it is Ready, and fails when one says Ready
// while a task still runs an endpoint that is not its service's. A first pass that already
// finds the roll started fails too: the test would prove nothing (more service lists in a
// pass than rollStartLists).
func readyOnTheNewEndpoint(t *testing.T, f *fixture, app string) {
	t.Helper()
	for i := range 6 {
		st := f.pass(app)
		if stale := f.engine.staleEndpoints(); st.Phase == spec.PhaseReady && len(stale) > 0 {
			t.Fatalf("pass %d: Ready while tasks %v still run the old endpoint: %s (writes %v)", i, stale, st.Message, f.engine.writes())
		}
		if i == 0 && len(f.engine.rollStarting) == 0 {
			t.Fatalf("the roll started within the first pass (%s %s): raise rollStartLists, or this proves nothing", st.Phase, st.Message)
		}
		if st.Phase == spec.PhaseReady {
			return
		}
	}
	t.Fatalf("not Ready once the roll was done: %s", f.pass(app).Message)
}

// withPort is s publishing target 80 on the host's port published, its spec hash made again.
func withPort(s swarm.ServiceSpec, published uint32) swarm.ServiceSpec {
	s = withLabels(s, nil)
	s.EndpointSpec = &swarm.EndpointSpec{Mode: swarm.ResolutionModeVIP, Ports: []swarm.PortConfig{
		{Protocol: swarm.PortConfigProtocolTCP, TargetPort: 80, PublishedPort: published, PublishMode: swarm.PortConfigPublishModeHost}}}
	delete(s.Labels, manifests.LabelSpecHash)
	s.Labels[manifests.LabelSpecHash] = manifests.SpecHash(s)
	return s
}

// TestPlanEndpointOnlyChange: an update that moves only the endpoint waits for the roll swarm
// makes of it, and raises the template's counter so that the old tasks show as not running
// the spec, also when the template changes too (one update, one roll); an update that leaves
// the endpoint as the engine holds it raises nothing (a raise would replace the tasks for
// nothing).
func TestPlanEndpointOnlyChange(t *testing.T) {
	on8080 := withPort(desiredService("s_app", "a", "img:1"), 8080)
	live := liveFrom("id1", on8080)
	live.Spec.TaskTemplate.ForceUpdate = 3
	// The engine gives back every enum it stores by name, the ones left unset too.
	live.Spec.EndpointSpec = &swarm.EndpointSpec{Mode: "vip", Ports: []swarm.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: "host"}}}
	asConverted := withLabels(on8080, nil) // docker/cli's convert leaves the protocol unset when the file does
	asConverted.EndpointSpec = &swarm.EndpointSpec{Mode: "vip", Ports: []swarm.PortConfig{{TargetPort: 80, PublishedPort: 8080, PublishMode: "host"}}}
	labelOnly := withLabels(asConverted, map[string]string{"extra": "x"})
	delete(labelOnly.Labels, manifests.LabelSpecHash)
	labelOnly.Labels[manifests.LabelSpecHash] = manifests.SpecHash(labelOnly)
	imageToo := withPort(desiredService("s_app", "a", "img:2"), 8081)
	portsByHand := live
	portsByHand.PreviousSpec = &live.Spec
	portsByHand.Spec = withLabels(live.Spec, nil)
	portsByHand.Spec.EndpointSpec = &swarm.EndpointSpec{Mode: "vip", Ports: []swarm.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: 9999, PublishMode: "host"}}}

	for _, tc := range []struct {
		name      string
		desired   swarm.ServiceSpec
		live      swarm.Service
		wantRoll  bool
		wantForce uint64
	}{
		{"the published port moved", withPort(desiredService("s_app", "a", "img:1"), 8081), live, true, 4},
		{"the image changed too", imageToo, live, true, 4},
		{"labels only, the endpoint as the engine holds it", labelOnly, live, false, 3},
		{"a port changed by hand is set back", on8080, portsByHand, true, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanServices(swarmstate.Owner{App: "a"}, map[string]swarm.ServiceSpec{"s_app": tc.desired}, []swarm.Service{tc.live}, "t2")
			if err != nil || len(plan) != 1 || plan[0].Kind != UpdateService {
				t.Fatalf("plan %v, err %v; want one update", plan, err)
			}
			_, roll := plan[0].Service.Labels[swarmstate.LabelRollFrom]
			if force := plan[0].Service.TaskTemplate.ForceUpdate; roll != tc.wantRoll || force != tc.wantForce {
				t.Errorf("waits for a roll %v, ForceUpdate %d; want %v, %d", roll, force, tc.wantRoll, tc.wantForce)
			}
		})
	}
}

// TestEndpointChanged: endpoints are compared as the engine stores them.
func TestEndpointChanged(t *testing.T) {
	port := func(proto, mode string, published uint32) swarm.PortConfig {
		return swarm.PortConfig{Protocol: swarm.PortConfigProtocol(proto), TargetPort: 80, PublishedPort: published, PublishMode: swarm.PortConfigPublishMode(mode)}
	}
	for _, tc := range []struct {
		name      string
		cur, want *swarm.EndpointSpec
		changed   bool
	}{
		{"none and none", nil, nil, false},
		{"unset enums are their defaults", &swarm.EndpointSpec{Mode: "vip", Ports: []swarm.PortConfig{port("tcp", "ingress", 80)}},
			&swarm.EndpointSpec{Ports: []swarm.PortConfig{port("", "", 80)}}, false},
		{"enums in upper case", &swarm.EndpointSpec{Mode: "dnsrr", Ports: []swarm.PortConfig{port("udp", "host", 80)}},
			&swarm.EndpointSpec{Mode: "DNSRR", Ports: []swarm.PortConfig{port("UDP", "HOST", 80)}}, false},
		{"no ports, empty or nil", &swarm.EndpointSpec{Mode: "vip"}, &swarm.EndpointSpec{Ports: []swarm.PortConfig{}}, false},
		{"published port", &swarm.EndpointSpec{Ports: []swarm.PortConfig{port("tcp", "host", 80)}},
			&swarm.EndpointSpec{Ports: []swarm.PortConfig{port("tcp", "host", 81)}}, true},
		{"publish mode", &swarm.EndpointSpec{Ports: []swarm.PortConfig{port("tcp", "host", 80)}},
			&swarm.EndpointSpec{Ports: []swarm.PortConfig{port("tcp", "ingress", 80)}}, true},
		{"resolution mode", &swarm.EndpointSpec{Mode: "vip"}, &swarm.EndpointSpec{Mode: "dnsrr"}, true},
		{"a port added", &swarm.EndpointSpec{}, &swarm.EndpointSpec{Ports: []swarm.PortConfig{port("tcp", "host", 80)}}, true},
		{"an endpoint where there was none", nil, &swarm.EndpointSpec{}, true},
	} {
		if got := endpointChanged(tc.cur, tc.want); got != tc.changed {
			t.Errorf("%s: endpointChanged = %v, want %v", tc.name, got, tc.changed)
		}
	}
}

// TestDiffShowsNoEndpointTheEngineFilledIn: `reconciler diff` of an upgrade that leaves the
// ports as they are shows no endpoint change: the protocol the file leaves unset, which the
// engine gives back as "tcp", is not a difference.
func TestDiffShowsNoEndpointTheEngineFilledIn(t *testing.T) {
	f := newFixture(t)
	makeRecipeOf(t, f.r.RecipesDir, "ports", portsCompose, "1.0.0+1", "1.1.0+1")
	f.writeSpec("p", "recipe: ports\nversion: 1.0.0+1\nenv:\n  PORT: \"8080\"\n")
	if st := f.settle("p"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("p", "recipe: ports\nversion: 1.1.0+1\nenv:\n  PORT: \"8080\"\n")
	d, err := spec.Load(f.r.SpecsDir, "p", f.r.Defaults)
	if err != nil || d == nil {
		t.Fatalf("load: %v", err)
	}
	got, err := f.r.Diff(t.Context(), d)
	if err != nil || len(got) != 1 {
		t.Fatalf("diff: %+v, %v; want one update", got, err)
	}
	if strings.Contains(got[0].Detail, "EndpointSpec") || !strings.Contains(got[0].Detail, "echo:1.1.0") {
		t.Errorf("the upgrade's diff shows the endpoint, or not the image:\n%s", got[0].Detail)
	}
}
