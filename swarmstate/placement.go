package swarmstate

import (
	"github.com/docker/docker/api/types/swarm"
	"github.com/moby/swarmkit/v2/api"
	"github.com/moby/swarmkit/v2/manager/constraint"
)

// NodeMatches reports whether node n meets the placement constraints exprs, judged by swarm's
// own matcher (swarmkit's manager/constraint). A constraint that does not parse is an error.
func NodeMatches(exprs []string, n swarm.Node) (bool, error) {
	cs, err := constraint.Parse(exprs)
	if err != nil {
		return false, err
	}
	return constraint.NodeMatches(cs, kitNode(n)), nil
}

// kitNode is the part of an engine API node that swarm's constraint matcher reads.
func kitNode(n swarm.Node) *api.Node {
	role := api.NodeRoleWorker
	if n.Spec.Role == swarm.NodeRoleManager {
		role = api.NodeRoleManager
	}
	return &api.Node{
		ID:   n.ID,
		Role: role,
		Spec: api.NodeSpec{Annotations: api.Annotations{Labels: n.Spec.Labels}},
		Description: &api.NodeDescription{
			Hostname: n.Description.Hostname,
			Platform: &api.Platform{OS: n.Description.Platform.OS, Architecture: n.Description.Platform.Architecture},
			Engine:   &api.EngineDescription{Labels: n.Description.Engine.Labels},
		},
		Status: api.NodeStatus{Addr: n.Status.Addr},
	}
}
