package controller

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// errTerminal marks an error of acting that waiting will not fix: the app is Failed with it.
var errTerminal = errors.New("terminal")

// terminal is an error the app fails with at once.
type terminal struct{ err error }

func (t terminal) Error() string        { return t.err.Error() }
func (t terminal) Is(target error) bool { return target == errTerminal }
func (t terminal) Unwrap() error        { return t.err }

// errNotOwned guards every update and removal: it is returned, and nothing is called, when the
// live object does not carry both ownership labels of the app and this reconciler.
var errNotOwned = errors.New("not owned by this reconciler")

// rollingBack reports whether the service with id is being or was rolled back, as a
// rollback call that returned an error may still have done; false when that cannot be read.
func rollingBack(ctx context.Context, e Engine, id string) bool {
	svcs, err := e.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("id", id))})
	if err != nil {
		return false
	}
	for _, s := range svcs {
		if s.ID == id && s.UpdateStatus != nil && strings.HasPrefix(string(s.UpdateStatus.State), "rollback_") {
			return true
		}
	}
	return false
}

// apply carries out one action. It is deliberately dumb: every decision was made by a plan.
// changed is false when the engine was already in the action's goal state (a removal of an
// object that is gone) and for the checks, which change nothing. Only a change is a step: it
// is logged and counted. A create that finds its name taken is an error: the snapshot before
// it listed no object of ours by that name, so the holder is someone else's, and the next
// pass names it.
func apply(ctx context.Context, e Engine, own swarmstate.Owner, a Action) (changed bool, err error) {
	switch a.Kind {
	case UpdateService, RollbackService, RemoveService, RemoveNetwork, RemoveConfig, RemoveSecret, RemoveVolume:
		if !own.Owns(a.Labels) {
			return false, terminal{fmt.Errorf("%s %s: %w", a.Kind, a.Name, errNotOwned)}
		}
	}
	if placeholderRef(a.Service) {
		return false, fmt.Errorf("%s %s: a secret or config it refers to has no ID yet", a.Kind, a.Name)
	}
	switch a.Kind {
	case RequireNetwork:
		return false, requireNetwork(ctx, e, a.Name)
	case RequireImage:
		return false, ensureImage(ctx, e, a.Name)
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
	case RollbackService:
		// The spec sent is ignored: the engine puts the service's PreviousSpec in place.
		if _, err = e.ServiceUpdate(ctx, a.ID, a.Version, *a.Service, swarm.ServiceUpdateOptions{Rollback: "previous"}); err != nil {
			if rollingBack(ctx, e, a.ID) {
				return true, nil // the call reached swarm and its answer did not reach us
			}
			// The verdict stands; what is left to do is said. Only now is the by-hand
			// rollback right: after ours, the previous spec is the failing one.
			return false, terminal{fmt.Errorf("rolling %s back to its previous spec failed (%w): roll it back by hand with docker service rollback %s", a.Name, err, a.Name)}
		}
		return true, nil
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
	case RemoveContainer:
		// As swarm's agent removes a task's container: with its anonymous volumes.
		err = e.ContainerRemove(ctx, a.ID, container.RemoveOptions{RemoveVolumes: true})
		if cerrdefs.IsConflict(err) {
			return false, nil // being removed already, or not stopped after all: the next pass sees
		}
	default:
		err = fmt.Errorf("unknown action kind %q", a.Kind)
	}
	switch {
	case err == nil:
		return true, nil
	case strings.HasPrefix(string(a.Kind), "remove") && (cerrdefs.IsNotFound(err) || lingeringNetwork(a, err)):
		return false, nil // already gone: the goal of a removal
	}
	if strings.HasPrefix(string(a.Kind), "remove") && inUse(err) {
		return false, stillInUse{object: a.object(), err: err}
	}
	return false, fmt.Errorf("%s %s: %w", a.Kind, a.Name, err)
}

// stillInUse is a removal refused because a container that is stopping still uses the object.
// Its message is the wait, in words, not the engine's ("volume is in use - [ids]"): the
// container IDs mean nothing to the reader, and the wait ends by itself.
type stillInUse struct {
	object string
	err    error
}

func (e stillInUse) Error() string {
	return fmt.Sprintf("%s is still used by a container that is stopping; removing it once the container is gone", e.object)
}
func (e stillInUse) Unwrap() error { return e.err }

// placeholderRef reports whether a service refers to a secret or config by the placeholder
// ID of a conversion made before the object existed: the plan never sends such a spec (the
// support objects are created first, and services planned on a fresh look), and this guard
// keeps it so.
func placeholderRef(s *swarm.ServiceSpec) bool {
	if s == nil || s.TaskTemplate.ContainerSpec == nil {
		return false
	}
	for _, r := range s.TaskTemplate.ContainerSpec.Secrets {
		if r != nil && manifests.IsPlaceholderID(r.SecretID) {
			return true
		}
	}
	for _, r := range s.TaskTemplate.ContainerSpec.Configs {
		if r != nil && manifests.IsPlaceholderID(r.ConfigID) {
			return true
		}
	}
	return false
}

// inUse reports a removal refused because a container still uses the object (a volume while
// the app's containers stop, up to their stop grace period): waited for, not an error.
func inUse(err error) bool {
	return cerrdefs.IsConflict(err) || strings.Contains(err.Error(), "is in use")
}

// requireNetwork fails like docker stack deploy when a network the recipe declares external
// does not exist, instead of letting the service create fail less clearly.
func requireNetwork(ctx context.Context, e Engine, name string) error {
	nets, err := e.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		return fmt.Errorf("look up external network %s: %w", name, err)
	}
	if !slices.ContainsFunc(nets, func(n network.Summary) bool { return n.Name == name }) {
		return terminal{fmt.Errorf("network %q is declared as external, but could not be found: create it (docker network create --driver overlay --attachable %s) or drop it from the recipe", name, name)}
	}
	return nil
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
	fp, err := manifests.NewFingerprint(buf)
	if err != nil {
		return nil, fmt.Errorf("generate secret %s: %w", g.Name, err)
	}
	labels := map[string]string{manifests.LabelFingerprint: fp} // the app's task logs are redacted by it
	maps.Copy(labels, g.Labels)
	return &swarm.SecretSpec{Annotations: swarm.Annotations{Name: g.Name, Labels: labels}, Data: buf}, nil
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
	switch {
	case err != nil && (ctx.Err() != nil || pullMayPass(err)):
		return fmt.Errorf("pull image %s: %w%s", ref, err, pullAgain)
	case err != nil:
		return terminal{fmt.Errorf("image %s is not present on this node and cannot be pulled: %w", ref, err)}
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
		if m.Error != "" && pullMayPass(errors.New(m.Error)) {
			return fmt.Errorf("pull image %s: %s%s", ref, m.Error, pullAgain)
		} else if m.Error != "" {
			return terminal{fmt.Errorf("image %s is not present on this node and cannot be pulled: %s", ref, m.Error)}
		}
	}
}

const pullAgain = " (the registry may answer later: pulling again until the attempt's timeout)"

// pullMayPass reports a pull error that the registry, not the image, caused, and that a later
// pull may not meet: an overloaded or rate-limiting registry, a connection cut or timed out.
// The rest (no such image or repository, access denied, a registry host that does not resolve
// or refuses connections) fails the deploy at once, as waiting does not make an image.
func pullMayPass(err error) bool {
	if cerrdefs.IsUnavailable(err) || cerrdefs.IsDeadlineExceeded(err) {
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{
		"toomanyrequests", "429 too many requests",
		"500 internal server error", "502 bad gateway", "503 service unavailable", "504 gateway timeout",
		"tls handshake timeout", "i/o timeout", "client.timeout exceeded", "connection reset by peer", "unexpected eof",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
