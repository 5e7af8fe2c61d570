package controller

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// errNotOwned guards every update and removal: it is returned, and nothing is called, when the
// live object does not carry the app's ownership label.
var errNotOwned = errors.New("not owned by this app")

// apply carries out one action. It is deliberately dumb: every decision was made by a plan.
// changed is false when the engine was already in the action's goal state: a removal of an
// object that is gone, or a creation of an object an interrupted pass created. Only a change
// is a step: it is logged and counted.
func apply(ctx context.Context, e Engine, app string, a Action) (changed bool, err error) {
	switch a.Kind {
	case UpdateService, RemoveService, RemoveNetwork, RemoveConfig, RemoveSecret, RemoveVolume:
		if !swarmstate.Owns(a.Labels, app) {
			return false, fmt.Errorf("%s %s: %w", a.Kind, a.Name, errNotOwned)
		}
	}
	switch a.Kind {
	case CreateNetwork:
		_, err = e.NetworkCreate(ctx, a.Name, *a.Network)
	case CreateSecret:
		spec := a.Secret
		if a.Generated != nil {
			spec, err = generate(a.Generated)
		}
		if err == nil {
			_, err = e.SecretCreate(ctx, *spec)
		}
	case CreateConfig:
		_, err = e.ConfigCreate(ctx, *a.Config)
	case CreateService:
		_, err = e.ServiceCreate(ctx, *a.Service, swarm.ServiceCreateOptions{})
	case UpdateService:
		_, err = e.ServiceUpdate(ctx, a.ID, a.Version, *a.Service, swarm.ServiceUpdateOptions{})
	case RemoveService:
		err = e.ServiceRemove(ctx, a.ID)
	case RemoveNetwork:
		err = e.NetworkRemove(ctx, a.ID)
	case RemoveConfig:
		err = e.ConfigRemove(ctx, a.ID)
	case RemoveSecret:
		err = e.SecretRemove(ctx, a.ID)
	case RemoveVolume:
		err = e.VolumeRemove(ctx, a.ID, false)
	default:
		err = fmt.Errorf("unknown action kind %q", a.Kind)
	}
	switch {
	case err == nil:
		return true, nil
	case strings.HasPrefix(string(a.Kind), "remove") && (cerrdefs.IsNotFound(err) || lingeringNetwork(a, err)):
		return false, nil // already gone: the goal of a removal
	case strings.HasPrefix(string(a.Kind), "create") && cerrdefs.IsConflict(err):
		return false, nil // created by an earlier, interrupted pass
	}
	return false, fmt.Errorf("%s %s: %w", a.Kind, a.Name, err)
}

// lingeringNetwork reports whether err is the engine's answer to removing a swarm network
// that is already removed from the cluster but still listed on this node, where a container
// of the app is still attached (until it stops, up to its stop grace period). Engine 20.10
// answers that with a 500 "network <id> not found", not a typed not-found error; the network
// leaves the list by itself, and the teardown waits for that before it reports Deleted.
func lingeringNetwork(a Action, err error) bool {
	return a.Kind == RemoveNetwork && strings.HasSuffix(err.Error(), "network "+a.ID+" not found")
}

// generate makes a secret's value with crypto/rand. The value lives only in the request.
func generate(g *manifests.GeneratedSecret) (*swarm.SecretSpec, error) {
	length := g.Length
	if length <= 0 {
		length = 32
	}
	charset, err := g.Alphabet()
	if err != nil {
		return nil, fmt.Errorf("generate secret %s: %w", g.Name, err)
	}
	buf := make([]byte, length)
	for i := range buf {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(charset))))
		if err != nil {
			return nil, fmt.Errorf("generate secret %s: %w", g.Name, err)
		}
		buf[i] = charset[n.Int64()]
	}
	return &swarm.SecretSpec{Annotations: swarm.Annotations{Name: g.Name, Labels: g.Labels}, Data: buf}, nil
}

// ensureImage checks that ref is present locally or pullable, so a missing image fails the
// deploy at once with the engine's words instead of as a timeout minutes later.
func ensureImage(ctx context.Context, e Engine, ref string) error {
	if _, err := e.ImageInspect(ctx, ref); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %s: %w", ref, err)
	}
	rc, err := e.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("image %s is not present on this node and cannot be pulled: %w", ref, err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("pull image %s: %w", ref, err)
		}
		if m.Error != "" {
			return fmt.Errorf("image %s is not present on this node and cannot be pulled: %s", ref, m.Error)
		}
	}
}
