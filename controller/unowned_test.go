package controller

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// TestJanitorLeavesTheContainerOfARemovedLookAlike: a service labelled with an app by hand,
// without an owner label, is not a reconciler's (README: the janitor leaves it alone). Once it
// is removed, its task stays listed a while (or for good, a job's) with its stopped container on
// the janitor's node. The janitor, tearing down an orphan of that app (a volume of some owner's),
// must not remove that container: nothing says it is a reconciler's.
func TestJanitorLeavesTheContainerOfARemovedLookAlike(t *testing.T) {
	f := newFixture(t)
	f.r.Owner = "" // the janitor
	f.engine.volumes["x_test_data"] = &volume.Volume{Name: "x_test_data", Labels: map[string]string{
		swarmstate.LabelApp: "x", swarmstate.LabelOwner: "dir-a", swarmstate.LabelNamespace: "x_test"}}
	// The look-alike, made by hand and removed: its task lingers, stopped, on this node.
	f.engine.removed = map[string]lingeringService{"byhand": {labels: map[string]string{
		swarmstate.LabelApp: "x", swarmstate.LabelNamespace: "x_test"}, lists: 50}}
	f.engine.tasks = append(f.engine.tasks, swarm.Task{ID: "t-byhand", ServiceID: "byhand", NodeID: fakeNode,
		DesiredState: swarm.TaskStateShutdown, Status: swarm.TaskStatus{State: swarm.TaskStateShutdown, Timestamp: f.now,
			ContainerStatus: &swarm.ContainerStatus{ContainerID: "c-byhand"}}})
	for range 4 {
		if _, err := f.r.Reconcile(t.Context(), "x"); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range f.engine.writes() {
		if w == "remove container c-byhand" {
			t.Fatalf("the janitor removed the container of a service it does not own: writes %v", f.engine.writes())
		}
	}
	if f.engine.volumes["x_test_data"] != nil {
		t.Errorf("the orphan's volume was not removed: writes %v", f.engine.writes())
	}
}

// externalVolumeCompose backs up a service that mounts a volume of its own and one declared
// external: made by someone else (another stack's, shared), which the reconciler does not own.
const externalVolumeCompose = `version: "3.8"
services:
  app:
    image: echo:%s
    environment:
      MESSAGE: "hello %s"
    volumes:
      - data:/data
      - shared:/shared
    deploy:
      labels:
        backupbot.backup: "true"
volumes:
  data:
  shared:
    external: true
`

// copyRecorder records the paths a backup reads from and writes into the app's containers.
type copyRecorder struct {
	*fakeBackup
	mu            sync.Mutex
	read, written []string
}

func (c *copyRecorder) CopyFromContainer(ctx context.Context, cid, src string) (io.ReadCloser, container.PathStat, error) {
	c.mu.Lock()
	c.read = append(c.read, src)
	c.mu.Unlock()
	return c.fakeBackup.CopyFromContainer(ctx, cid, src)
}

func (c *copyRecorder) CopyToContainer(ctx context.Context, cid, dst string, r io.Reader, o container.CopyToContainerOptions) error {
	c.mu.Lock()
	c.written = append(c.written, dst)
	c.mu.Unlock()
	return c.fakeBackup.CopyToContainer(ctx, cid, dst, r, o)
}

// TestBackupLeavesAnExternalVolumeAlone: a volume the recipe declares external is not the
// app's (no ownership labels: another stack's, or made by hand). The backup tier's restore
// (and a requested restore) must not write into it, nor a backup read it: only the app's own
// volumes are backed up.
func TestBackupLeavesAnExternalVolumeAlone(t *testing.T) {
	f := newFixture(t)
	makeRecipeOf(t, f.r.RecipesDir, "bx", externalVolumeCompose, "1.0.0+1")
	fb := newFakeBackup(f.engine)
	rec := &copyRecorder{fakeBackup: fb}
	f.r.BackupEngine = rec
	f.r.Backups = spec.BackupStore{Dir: filepath.Join(t.TempDir(), "backups")}
	f.writeSpec("a", "recipe: bx\nversion: 1.0.0+1\ntier: backup\n")
	if _, err := f.r.Reconcile(t.Context(), "a"); err != nil || len(f.engine.tasks) == 0 {
		t.Fatalf("first pass: %v, %d tasks", err, len(f.engine.tasks))
	}
	fb.mu.Lock()
	fb.fs("a_test_app")["/data/db"] = "42"
	fb.fs("a_test_app")["/shared/theirs.txt"] = "another stack's file"
	fb.mu.Unlock()
	st := f.settle("a")
	if st.Phase != spec.PhaseReady {
		t.Fatalf("phase %s: %s", st.Phase, st.Message)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, p := range append(append([]string{}, rec.read...), rec.written...) {
		if p == "/shared" || strings.HasPrefix(p, "/shared/") {
			t.Errorf("the backup tier used the external volume: read %v, wrote %v", rec.read, rec.written)
			break
		}
	}
	if len(rec.written) == 0 {
		t.Errorf("nothing restored: the app's own volume should be (read %v)", rec.read)
	}
}

// TestJanitorLeavesALookAlikeWithAJobLabel: the janitor takes an object with an app label and
// no owner label for its own only when it is a volume job of an earlier release (LabelJob
// "volumes"). A service made by hand with the app label and some other value of LabelJob (a
// copy of the labels of a job, a user's own convention) carries no owner: not a reconciler's,
// never removed.
func TestJanitorLeavesALookAlikeWithAJobLabel(t *testing.T) {
	byHand := swarm.Service{ID: "s1", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "x_test_migrate",
		Labels: map[string]string{swarmstate.LabelApp: "x", LabelJob: "migrate", swarmstate.LabelNamespace: "x_test"}}}}
	snap := &swarmstate.Snapshot{Services: []swarm.Service{byHand}}
	if plan := PlanTeardown(swarmstate.Owner{App: "x"}, snap, nil, fakeNode, nil); len(plan) > 0 {
		t.Errorf("the janitor plans %v for a hand-made service without an owner label", plan)
	}
	// End to end: the janitor's snapshot does not take it either.
	f := newFixture(t)
	f.r.Owner = ""
	f.engine.services["s1"] = &byHand
	if _, err := f.r.Reconcile(t.Context(), "x"); err != nil {
		t.Fatal(err)
	}
	if w := f.engine.writes(); len(w) > 0 {
		t.Errorf("the janitor changed %v", w)
	}
}
