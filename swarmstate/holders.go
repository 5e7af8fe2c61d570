package swarmstate

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"sort"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
	"golang.org/x/sync/errgroup"
)

// Names are the names of swarm objects an app needs, by kind.
type Names struct {
	Services, Networks, Secrets, Configs, Volumes []string
}

// Empty reports whether no name is asked for.
func (n Names) Empty() bool {
	return len(n.Services)+len(n.Networks)+len(n.Secrets)+len(n.Configs)+len(n.Volumes) == 0
}

// Object is a swarm object found by name, whoever made it.
type Object struct {
	Kind   string // "service", "network", "secret", "config" or "volume"
	Name   string
	ID     string
	Labels map[string]string
}

// Holders finds the objects that hold any of names, with no label filter: the objects that a
// create of that name would collide with, or, worse, that a service would silently use (a
// network, secret, config or volume of that name made by hand or by another tool). One list
// call per kind that has names, none when names is empty, so a converged app pays nothing.
// The engine's name filters match prefixes or substrings; only exact names are returned.
func Holders(ctx context.Context, r Reader, names Names) ([]Object, error) {
	var (
		g   errgroup.Group
		out [5][]Object
	)
	find := func(i int, kind string, want []string, list func(filters.Args) ([]Object, error)) {
		if len(want) == 0 {
			return
		}
		g.Go(func() error {
			f := filters.NewArgs()
			for _, n := range want {
				f.Add("name", n)
			}
			found, err := list(f)
			if err != nil {
				return fmt.Errorf("look up %ss by name: %w", kind, err)
			}
			for _, o := range found {
				if slices.Contains(want, o.Name) {
					o.Kind = kind
					out[i] = append(out[i], o)
				}
			}
			return nil
		})
	}
	find(0, "service", names.Services, func(f filters.Args) ([]Object, error) {
		l, err := r.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
		return objects(l, err, func(s swarm.Service) Object { return Object{Name: s.Spec.Name, ID: s.ID, Labels: s.Spec.Labels} })
	})
	find(1, "network", names.Networks, func(f filters.Args) ([]Object, error) {
		l, err := r.NetworkList(ctx, network.ListOptions{Filters: f})
		return objects(l, err, func(n network.Summary) Object { return Object{Name: n.Name, ID: n.ID, Labels: n.Labels} })
	})
	find(2, "secret", names.Secrets, func(f filters.Args) ([]Object, error) {
		l, err := r.SecretList(ctx, swarm.SecretListOptions{Filters: f})
		return objects(l, err, func(s swarm.Secret) Object { return Object{Name: s.Spec.Name, ID: s.ID, Labels: s.Spec.Labels} })
	})
	find(3, "config", names.Configs, func(f filters.Args) ([]Object, error) {
		l, err := r.ConfigList(ctx, swarm.ConfigListOptions{Filters: f})
		return objects(l, err, func(c swarm.Config) Object { return Object{Name: c.Spec.Name, ID: c.ID, Labels: c.Spec.Labels} })
	})
	find(4, "volume", names.Volumes, func(f filters.Args) ([]Object, error) {
		l, err := r.VolumeList(ctx, volume.ListOptions{Filters: f})
		return objects(l.Volumes, err, func(v *volume.Volume) Object { return Object{Name: v.Name, ID: v.Name, Labels: v.Labels} })
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	all := slices.Concat(out[:]...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all, nil
}

func objects[T any](items []T, err error, of func(T) Object) ([]Object, error) {
	if err != nil {
		return nil, err
	}
	out := make([]Object, 0, len(items))
	for _, it := range items {
		out = append(out, of(it))
	}
	return out, nil
}

// All yields each kind with its names.
func (n Names) All() iter.Seq2[string, []string] {
	return func(yield func(string, []string) bool) {
		_ = yield("service", n.Services) && yield("network", n.Networks) && yield("secret", n.Secrets) &&
			yield("config", n.Configs) && yield("volume", n.Volumes)
	}
}
