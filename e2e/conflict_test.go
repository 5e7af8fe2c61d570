package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
)

// The name conflicts of issue 10: an object we do not own holding a name one of our objects
// would take is a Failed app naming it, never something to adopt, update or remove
// (DESIGN.md, "Swarm objects and ownership").

// ownerLabel is the DESIGN.md label naming the reconciler (spec directory) that owns an object.
const ownerLabel = "swarm-reconciler.owner"

// conflictWithin is how soon after its spec is written the app must be Failed.
const conflictWithin = 5 * time.Second

// foreignKind makes, fingerprints and removes one kind of swarm object the suite does not own.
type foreignKind struct {
	kind string
	// name is the name the app's object of this kind takes in the suite's recipe.
	name func(stack string) string
	// create makes the object with labels and returns its ID (its name for a volume).
	create func(ctx context.Context, name string, labels map[string]string) (string, error)
	// fingerprint is what must not move: ID, version, labels, creation time (where the engine
	// has them).
	fingerprint func(ctx context.Context, id string) (string, error)
	remove      func(ctx context.Context, id string) error
}

func fingerprintOf(id string, version uint64, labels map[string]string, created time.Time) string {
	var l []string
	for _, k := range sortedKeys(labels) {
		l = append(l, k+"="+labels[k])
	}
	return fmt.Sprintf("id=%s version=%d created=%s labels={%s}", id, version, created.Format(time.RFC3339Nano), strings.Join(l, ","))
}

// foreignKinds are the kinds a stack of the suite's recipe has: its service <stack>_app, its
// network <stack>_backend, its generated secret and its config (both of version v1, as
// .env.sample and abra.sh set them), and its volume <stack>_data.
var foreignKinds = []foreignKind{
	{
		kind: "service",
		name: func(stack string) string { return stack + "_app" },
		create: func(ctx context.Context, name string, labels map[string]string) (string, error) {
			zero := uint64(0)
			r, err := suite.docker.ServiceCreate(ctx, swarm.ServiceSpec{
				Annotations:  swarm.Annotations{Name: name, Labels: labels},
				TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: echoImage, Labels: labels}},
				Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &zero}},
			}, swarm.ServiceCreateOptions{})
			return r.ID, err
		},
		fingerprint: func(ctx context.Context, id string) (string, error) {
			s, _, err := suite.docker.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
			return fingerprintOf(s.ID, s.Version.Index, s.Spec.Labels, s.CreatedAt), err
		},
		remove: func(ctx context.Context, id string) error { return suite.docker.ServiceRemove(ctx, id) },
	},
	{
		kind: "network",
		name: func(stack string) string { return stack + "_backend" },
		create: func(ctx context.Context, name string, labels map[string]string) (string, error) {
			r, err := suite.docker.NetworkCreate(ctx, name, network.CreateOptions{Driver: "overlay", Attachable: true, Labels: labels})
			return r.ID, err
		},
		fingerprint: func(ctx context.Context, id string) (string, error) {
			// No version, and no creation time: a swarm network's Created is when it was set
			// up on this node, which moves when a task first attaches to it.
			n, err := suite.docker.NetworkInspect(ctx, id, network.InspectOptions{})
			return fingerprintOf(n.ID, 0, n.Labels, time.Time{}), err
		},
		remove: func(ctx context.Context, id string) error { return suite.docker.NetworkRemove(ctx, id) },
	},
	{
		kind: "secret",
		name: func(stack string) string { return stack + "_api_key_v1" },
		create: func(ctx context.Context, name string, labels map[string]string) (string, error) {
			r, err := suite.docker.SecretCreate(ctx, swarm.SecretSpec{
				Annotations: swarm.Annotations{Name: name, Labels: labels},
				Data:        []byte("a secret the suite does not own"),
			})
			return r.ID, err
		},
		fingerprint: func(ctx context.Context, id string) (string, error) {
			s, _, err := suite.docker.SecretInspectWithRaw(ctx, id)
			return fingerprintOf(s.ID, s.Version.Index, s.Spec.Labels, s.CreatedAt), err
		},
		remove: func(ctx context.Context, id string) error { return suite.docker.SecretRemove(ctx, id) },
	},
	{
		kind: "config",
		name: func(stack string) string { return stack + "_app_entrypoint_v1" },
		create: func(ctx context.Context, name string, labels map[string]string) (string, error) {
			// The same content as the recipe's: a reconciler that adopts it sees no difference.
			r, err := suite.docker.ConfigCreate(ctx, swarm.ConfigSpec{
				Annotations: swarm.Annotations{Name: name, Labels: labels},
				Data:        []byte(configContent),
			})
			return r.ID, err
		},
		fingerprint: func(ctx context.Context, id string) (string, error) {
			c, _, err := suite.docker.ConfigInspectWithRaw(ctx, id)
			return fingerprintOf(c.ID, c.Version.Index, c.Spec.Labels, c.CreatedAt), err
		},
		remove: func(ctx context.Context, id string) error { return suite.docker.ConfigRemove(ctx, id) },
	},
	{
		kind: "volume",
		name: func(stack string) string { return stack + "_data" },
		create: func(ctx context.Context, name string, labels map[string]string) (string, error) {
			v, err := suite.docker.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: labels})
			return v.Name, err
		},
		fingerprint: func(ctx context.Context, id string) (string, error) {
			v, err := suite.docker.VolumeInspect(ctx, id)
			if err != nil {
				return "", err
			}
			created, _ := time.Parse(time.RFC3339, v.CreatedAt)
			return fingerprintOf(v.Name, 0, v.Labels, created), nil
		},
		remove: func(ctx context.Context, id string) error { return suite.docker.VolumeRemove(ctx, id, false) },
	},
}

// usersOf lists the services labelled for app whose spec refers to the object id (name, for
// a volume), and the app's containers that mount the volume: a foreign object in use.
func usersOf(ctx context.Context, app, kind, id string) ([]string, error) {
	f := filters.NewArgs(filters.Arg("label", appLabel+"="+app))
	services, err := suite.docker.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	var users []string
	for _, s := range services {
		c := s.Spec.TaskTemplate.ContainerSpec
		uses := false
		switch kind {
		case "network":
			uses = slices.ContainsFunc(s.Spec.TaskTemplate.Networks, func(n swarm.NetworkAttachmentConfig) bool { return n.Target == id })
		case "secret":
			uses = c != nil && slices.ContainsFunc(c.Secrets, func(r *swarm.SecretReference) bool { return r.SecretID == id })
		case "config":
			uses = c != nil && slices.ContainsFunc(c.Configs, func(r *swarm.ConfigReference) bool { return r.ConfigID == id })
		}
		if uses {
			users = append(users, "service "+s.Spec.Name)
		}
	}
	if kind == "volume" {
		containers, err := suite.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("volume", id))})
		if err != nil {
			return users, err
		}
		for _, c := range containers {
			users = append(users, fmt.Sprintf("container %s %v", c.ID[:12], c.Names))
		}
	}
	return users, nil
}

// TestNameConflictUnowned: for each kind of object a stack has (service, network, secret,
// config, volume), an object the reconciler does not own holds the name the app's object of
// that kind would take: either a look-alike of a stack deployed by hand or by abra on the same
// domain (only com.docker.stack.namespace), or the object of another reconciler's app of the
// same name (our app label, another owner). Then:
//
//   - the app is Failed within 5 s of its spec being written, its message naming the object
//     and saying it exists but is not owned;
//   - no service or container of the app uses the foreign object;
//   - the spec deleted, the app is Deleted and the foreign object is untouched: the same ID,
//     Version.Index, creation time and labels as before the spec was written.
func TestNameConflictUnowned(t *testing.T) {
	variants := []struct {
		name   string
		labels func(a *testApp) map[string]string
	}{
		{"by-hand", func(a *testApp) map[string]string {
			return map[string]string{namespaceLabel: a.stack()}
		}},
		{"other-owner", func(a *testApp) map[string]string {
			return map[string]string{namespaceLabel: a.stack(), appLabel: a.name, ownerLabel: "e2e-another-reconciler-" + randomSuffix()}
		}},
	}
	for _, k := range foreignKinds {
		for _, v := range variants {
			t.Run(k.kind+"/"+v.name, func(t *testing.T) {
				ctx := context.Background()
				h := startHarness(t)
				a := h.newApp("e2e-conflict")
				name := k.name(a.stack())
				body := a.spec(h.recipe.first().Version)
				checkRenderedName(t, h, a.name, body, name)

				labels := v.labels(a)
				id, err := k.create(ctx, name, labels)
				if err != nil {
					t.Fatalf("create the foreign %s %s: %v", k.kind, name, err)
				}
				// Runs before the app's cleanup: the app is torn down first (its spec removed and
				// Deleted waited for), then the foreign object goes.
				t.Cleanup(func() {
					if err := os.Remove(h.specPath(a.name)); err == nil {
						if _, err := h.waitDeleted(a.name); err != nil {
							t.Errorf("cleanup: %v", err)
						}
					}
					err := poll(ctx, time.Minute, func() (bool, error) {
						err := k.remove(ctx, id)
						return err == nil || cerrdefs.IsNotFound(err), err
					})
					if err != nil {
						t.Errorf("cleanup: remove the foreign %s %s: %v", k.kind, name, err)
					}
				})
				before, err := k.fingerprint(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("foreign %s %s: %s", k.kind, name, before)

				written := time.Now()
				gen := h.writeSpec(a.name, body)
				s, at := awaitVerdict(h, a.name, gen, written.Add(conflictWithin))
				switch {
				case s.Phase != "Failed":
					t.Errorf("app %s is %s %s after its spec was written, want Failed within %s naming the %s %s that exists but is not owned; status:\n%s",
						a.name, s.Phase, at.Sub(written).Round(time.Millisecond), conflictWithin, k.kind, name, s)
				case !strings.Contains(s.Message, "exists but is not owned") || !strings.Contains(s.Message, name):
					t.Errorf("app %s Failed after %s with message %q, want it to name %s and say it exists but is not owned",
						a.name, at.Sub(written).Round(time.Millisecond), s.Message, name)
				default:
					t.Logf("Failed %s after the spec was written: %s", at.Sub(written).Round(time.Millisecond), s.Message)
				}
				if users, err := usersOf(ctx, a.name, k.kind, id); err != nil {
					t.Error(err)
				} else if len(users) > 0 {
					t.Errorf("the foreign %s %s is used by the app: %v", k.kind, name, users)
				}
				if now, err := k.fingerprint(ctx, id); err != nil || now != before {
					t.Errorf("the foreign %s %s changed while the app was %s: %s (err %v), was %s", k.kind, name, s.Phase, now, err, before)
				}

				h.deleteSpec(a.name)
				if s, err := h.waitDeleted(a.name); err != nil {
					t.Error(err)
				} else {
					t.Logf("Deleted: %s", s.Message)
				}
				if now, err := k.fingerprint(ctx, id); err != nil || now != before {
					t.Errorf("the foreign %s %s after the app was deleted: %s (err %v), want it untouched: %s", k.kind, name, now, err, before)
				}
				for _, o := range h.residue(a.name) {
					if o != k.kind+" "+name {
						t.Errorf("app %s Deleted, but %s is left", a.name, o)
					}
				}
			})
		}
	}
}

// awaitVerdict polls app's status every 20 ms until it describes gen in a final phase or
// Ready, or until deadline; it returns the last status and when it was read.
func awaitVerdict(h *harness, app, gen string, deadline time.Time) (appStatus, time.Time) {
	for {
		s, _, err := h.readStatus(app)
		now := time.Now()
		if err == nil && s.ObservedGeneration == gen && (s.Phase == "Ready" || slices.Contains(finalPhases, s.Phase)) {
			return s, now
		}
		if now.After(deadline) {
			return s, now
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkRenderedName fails the test unless `reconciler render` of body (app's spec) names
// every one of names: the names this test expects the app's objects to take are those the
// product would give them.
func checkRenderedName(t *testing.T, h *harness, app string, body []byte, names ...string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), app+".yml")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	r := h.cli(time.Minute, "render", path)
	if r.code != 0 {
		t.Fatalf("render: %s", r)
	}
	for _, name := range names {
		if !strings.Contains(r.stdout, `"`+name+`"`) {
			t.Fatalf("render does not name %q: the test's idea of the app's object names is wrong:\n%s", name, r.stdout)
		}
	}
}
