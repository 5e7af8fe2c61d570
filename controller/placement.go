package controller

import (
	"fmt"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// placeable lists the hostnames of the nodes swarm can be expected to place a task of svc on:
// Ready and Active, and meeting its placement constraints, judged by swarm's own matcher
// (swarmkit's manager/constraint). A constraint that does not parse is the service create's
// error to report, not this function's: it returns the error.
func placeable(svc swarm.ServiceSpec, nodes map[string]swarm.Node) ([]string, error) {
	var exprs []string
	if p := svc.TaskTemplate.Placement; p != nil {
		exprs = p.Constraints
	}
	var out []string
	for _, n := range nodes {
		if n.Status.State != swarm.NodeStateReady || n.Spec.Availability != swarm.NodeAvailabilityActive {
			continue
		}
		if ok, err := swarmstate.NodeMatches(exprs, n); err != nil {
			return nil, err
		} else if ok {
			out = append(out, n.Description.Hostname)
		}
	}
	sort.Strings(out)
	return out, nil
}

// placement says, for the services a pass is about to create or update on a swarm of several
// nodes, which nodes can run them: each of those nodes needs the service's image (present, or
// pullable there), which this reconciler checks on its own node only. A service no node can
// take is said first, with its constraints.
func placement(plan []Action, nodes map[string]swarm.Node) string {
	if len(nodes) < 2 {
		return ""
	}
	var none, some []string
	for _, a := range plan {
		if a.Service == nil || (a.Kind != CreateService && a.Kind != UpdateService) {
			continue
		}
		on, err := placeable(*a.Service, nodes)
		switch {
		case err != nil:
			continue
		case len(on) == 0:
			var constraints []string
			if p := a.Service.TaskTemplate.Placement; p != nil {
				constraints = p.Constraints
			}
			none = append(none, fmt.Sprintf("%s (constraints %s)", a.Name, strings.Join(constraints, ", ")))
		default:
			some = append(some, fmt.Sprintf("%s on %s", a.Name, strings.Join(on, ", ")))
		}
	}
	var parts []string
	if len(none) > 0 {
		parts = append(parts, "no node available now meets the placement of "+strings.Join(none, "; "))
	}
	if len(some) > 0 {
		parts = append(parts, "can run: "+strings.Join(some, "; ")+" (each of those nodes needs the image)")
	}
	return strings.Join(parts, "; ")
}
