package manifests

import (
	"context"
	"fmt"
	"strings"

	"github.com/docker/cli/cli/compose/convert"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// Resolver finds secret and config IDs by name: the engine, or a placeholder for `render`.
// It is read-only by construction: nothing else of the engine is reachable through it.
type Resolver interface {
	SecretList(ctx context.Context, o swarm.SecretListOptions) ([]swarm.Secret, error)
	ConfigList(ctx context.Context, o swarm.ConfigListOptions) ([]swarm.Config, error)
}

// apiVersion is the Engine API version conversion assumes: Debian's docker.io 20.10 speaks
// 1.41, and nothing in the conversion needs more.
const apiVersion = "1.41"

// resolverClient adapts a Resolver to the client.APIClient that convert.Services wants. Only
// SecretList, ConfigList and ClientVersion are called by it; the embedded nil interface makes
// any other call panic rather than silently reach an engine.
type resolverClient struct {
	client.APIClient
	res Resolver
}

func (c resolverClient) SecretList(ctx context.Context, o swarm.SecretListOptions) ([]swarm.Secret, error) {
	return c.res.SecretList(ctx, o)
}

func (c resolverClient) ConfigList(ctx context.Context, o swarm.ConfigListOptions) ([]swarm.Config, error) {
	return c.res.ConfigList(ctx, o)
}

func (resolverClient) ClientVersion() string { return apiVersion }

// Services converts the services exactly as docker stack deploy does (convert.Services), keyed
// by full service name ("<stack>_<svc>"), then stamps our labels (see stampService), the spec
// hash last. Secret and config IDs are looked up through res. Each call returns new specs and
// is safe to call concurrently; the specs may share maps that nothing writes (sysctls, driver
// options, ...) with r, so replace rather than modify those.
func (r *Rendered) Services(ctx context.Context, res Resolver) (map[string]swarm.ServiceSpec, error) {
	ns := convert.NewNamespace(r.namespace)
	// convert.Services writes the stack label into label maps of r.config and returns specs
	// sharing those maps; stampService replaces them with copies while the lock is held, so
	// the specs returned share no map that a later conversion writes.
	r.mu.Lock()
	defer r.mu.Unlock()
	specs, err := convert.Services(ctx, ns, r.config, resolverClient{res: res})
	if err != nil {
		return nil, fmt.Errorf("convert services of %s: %w", r.Revision, err)
	}
	out := make(map[string]swarm.ServiceSpec, len(specs))
	for short, spec := range specs {
		r.stampService(short, &spec)
		out[ns.Scope(short)] = spec
	}
	return out, nil
}

// PlaceholderResolver returns IDs like "<id of NAME>" for every name asked, for render without
// an engine.
func PlaceholderResolver() Resolver { return placeholder{} }

// LookupResolver answers from known IDs by name (secrets and configs already listed, e.g. in a
// snapshot) and with a placeholder ID for any other name: a conversion made to plan, before
// those objects exist. It calls no engine. A spec holding a placeholder ID must not reach
// the engine (IsPlaceholderID).
func LookupResolver(secrets, configs map[string]string) Resolver {
	return placeholder{secrets: secrets, configs: configs}
}

// IsPlaceholderID reports whether id was made up by PlaceholderResolver or LookupResolver.
func IsPlaceholderID(id string) bool { return strings.HasPrefix(id, placeholderPrefix) }

type placeholder struct{ secrets, configs map[string]string }

func (p placeholder) SecretList(_ context.Context, o swarm.SecretListOptions) ([]swarm.Secret, error) {
	var out []swarm.Secret
	for _, name := range o.Filters.Get("name") {
		out = append(out, swarm.Secret{
			ID:   idOf(p.secrets, name),
			Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: name}},
		})
	}
	return out, nil
}

func (p placeholder) ConfigList(_ context.Context, o swarm.ConfigListOptions) ([]swarm.Config, error) {
	var out []swarm.Config
	for _, name := range o.Filters.Get("name") {
		out = append(out, swarm.Config{
			ID:   idOf(p.configs, name),
			Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: name}},
		})
	}
	return out, nil
}

func idOf(known map[string]string, name string) string {
	if id, ok := known[name]; ok {
		return id
	}
	return placeholderPrefix + name + ">"
}

const placeholderPrefix = "<id of "
