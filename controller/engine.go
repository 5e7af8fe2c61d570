// Package controller is the loop: spec-directory events, engine events, periodic resyncs and
// ttl timers feed a de-duplicating, rate-limited work queue keyed by app, and Reconcile(app)
// compares the desired spec with a fresh snapshot of the swarm and acts.
package controller

import (
	"context"
	"io"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"

	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// Engine is the part of the Engine API the controller uses. *client.Client satisfies it, and
// so does the in-memory engine of the unit tests, which records every call.
type Engine interface {
	swarmstate.Reader
	swarmstate.EventSource

	ServiceCreate(ctx context.Context, s swarm.ServiceSpec, o swarm.ServiceCreateOptions) (swarm.ServiceCreateResponse, error)
	ServiceUpdate(ctx context.Context, id string, v swarm.Version, s swarm.ServiceSpec, o swarm.ServiceUpdateOptions) (swarm.ServiceUpdateResponse, error)
	ServiceRemove(ctx context.Context, id string) error
	NetworkCreate(ctx context.Context, name string, o network.CreateOptions) (network.CreateResponse, error)
	NetworkRemove(ctx context.Context, id string) error
	SecretCreate(ctx context.Context, s swarm.SecretSpec) (swarm.SecretCreateResponse, error)
	SecretRemove(ctx context.Context, id string) error
	ConfigCreate(ctx context.Context, c swarm.ConfigSpec) (swarm.ConfigCreateResponse, error)
	ConfigRemove(ctx context.Context, id string) error
	VolumeRemove(ctx context.Context, id string, force bool) error
	ContainerRemove(ctx context.Context, id string, o container.RemoveOptions) error
	// A container of this engine's node: its state, before its agent tells the managers.
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ImageInspect(ctx context.Context, ref string, o ...client.ImageInspectOption) (image.InspectResponse, error)
	ImagePull(ctx context.Context, ref string, o image.PullOptions) (io.ReadCloser, error)
	TaskLogs(ctx context.Context, taskID string, o container.LogsOptions) (io.ReadCloser, error)
	// The swarm's nodes and which one the engine is: tasks and volumes on other nodes.
	Info(ctx context.Context) (system.Info, error)
	NodeList(ctx context.Context, o swarm.NodeListOptions) ([]swarm.Node, error)
}

var _ Engine = (*client.Client)(nil)
