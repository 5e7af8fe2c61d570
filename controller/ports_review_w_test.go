package controller

import (
	"strings"
	"testing"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// TestPlanEndpointChangeWithTemplateAsTheTasksRunIt: the task-hash label says the template
// changes, but the template written is the one the tasks run already, so only the endpoint
// makes swarm roll; the update must make the old tasks template-dirty all the same, or the
// verdict says Ready before swarm's updater starts.
func TestPlanEndpointChangeWithTemplateAsTheTasksRunIt(t *testing.T) {
	on8080 := withPort(desiredService("s_app", "a", "img:1"), 8080)
	imageAndPort := withPort(desiredService("s_app", "a", "img:2"), 8081)

	// A hot fix (`docker service update --image img:2`) that the spec then catches up with,
	// moving the port in the same release (as TestSpecCatchesUpWithHandFix, with a port).
	hotFixed := liveFrom("id1", on8080)
	hotFixed.Spec.TaskTemplate = imageAndPort.TaskTemplate

	// `docker service update --force --publish-add 9999:80 --publish-rm 80`: drift whose
	// template change is the counter alone, which the set-back keeps.
	ours := liveFrom("id1", on8080)
	forcedPort := ours
	forcedPort.PreviousSpec = &ours.Spec
	forcedPort.Spec = withLabels(ours.Spec, nil)
	forcedPort.Spec.TaskTemplate.ForceUpdate = 1
	forcedPort.Spec.EndpointSpec = &swarm.EndpointSpec{Mode: "vip", Ports: []swarm.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: 9999, PublishMode: "host"}}}

	// Placement alone changes in the template, and the port: swarmkit's IsTaskDirty returns
	// "clean" for a task on a node that meets the new constraints before it compares the
	// endpoint, so without a raise the task keeps publishing the old port, and the verdict
	// (taskDirty, placement alone) says Ready.
	placed := desiredService("s_app", "a", "img:1")
	placed.TaskTemplate.Placement = &swarm.Placement{Constraints: []string{"node.role==manager"}}
	placedAndPort := withPort(placed, 8081)

	for _, tc := range []struct {
		name    string
		desired swarm.ServiceSpec
		live    swarm.Service
	}{
		{"a hot fix caught up with, the port moved", imageAndPort, hotFixed},
		{"--force and a port by hand, set back", on8080, forcedPort},
		{"placement and the port", placedAndPort, liveFrom("id1", on8080)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanServices(swarmstate.Owner{App: "a"}, map[string]swarm.ServiceSpec{"s_app": tc.desired}, []swarm.Service{tc.live}, "t2")
			if err != nil || len(plan) != 1 || plan[0].Kind != UpdateService {
				t.Fatalf("plan %v, err %v; want one update", plan, err)
			}
			_, roll := plan[0].Service.Labels[swarmstate.LabelRollFrom]
			if !roll || plan[0].Service.TaskTemplate.ForceUpdate == tc.live.Spec.TaskTemplate.ForceUpdate {
				t.Errorf("waits for a roll %v, ForceUpdate %d as live: the old tasks do not show as dirty, Ready comes before swarm's roll",
					roll, plan[0].Service.TaskTemplate.ForceUpdate)
			}
		})
	}
}

// TestPortAndHotFixReadyOnceTheTasksMoved: TestSpecCatchesUpWithHandFix with the published port
// moved by the same release; swarm's updater starts the roll a moment after the update.
func TestPortAndHotFixReadyOnceTheTasksMoved(t *testing.T) {
	f := newFixture(t)
	makeRecipeOf(t, f.r.RecipesDir, "ports", portsCompose, "1.0.0+1", "1.1.0+1")
	f.writeSpec("p", "recipe: ports\nversion: 1.0.0+1\nminReady: 0s\nenv:\n  PORT: \"8080\"\n")
	if st := f.settle("p"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.engine.byHand("p_test_app", func(s *swarm.ServiceSpec) {
		s.TaskTemplate.ContainerSpec.Image = "echo:1.1.0"
		for i, e := range s.TaskTemplate.ContainerSpec.Env {
			s.TaskTemplate.ContainerSpec.Env[i] = strings.Replace(e, "hello 1.0.0+1", "hello 1.1.0+1", 1)
		}
	})
	f.engine.rollStartLists = 2
	f.writeSpec("p", "recipe: ports\nversion: 1.1.0+1\nminReady: 0s\nenv:\n  PORT: \"8081\"\n")
	readyOnTheNewEndpoint(t, f, "p")
}
