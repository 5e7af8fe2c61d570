package manifests

import (
	"context"
	"path"
	"testing"

	"github.com/docker/docker/api/types/mount"
)

// TestBackupFullIsTheMountSource: the plan's Full of each volume is the Source that
// docker stack's conversion gives the service's mount at the volume's target (what the
// controller's volumeContainer compares with a task's mounts), for a stack-scoped volume, one
// with a name: (plain and interpolated) and a target written with a trailing slash.
func TestBackupFullIsTheMountSource(t *testing.T) {
	r, err := renderCompose(t, `version: "3.8"
services:
  app:
    image: app:1
    volumes:
      - data:/data/
      - type: volume
        source: named
        target: /named
      - interp:/interp
    deploy:
      labels:
        backupbot.backup: "true"
volumes:
  data:
  named:
    name: fixed-name
  interp:
    name: ${STACK_NAME}_other
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.BackupPlan()
	if err != nil {
		t.Fatal(err)
	}
	specs, err := r.Services(context.Background(), PlaceholderResolver())
	if err != nil {
		t.Fatal(err)
	}
	svc, ok := specs["bk_example_org_app"]
	if !ok {
		t.Fatalf("services %v", specs)
	}
	if len(p.Services) != 1 || len(p.Services[0].Volumes) != 3 {
		t.Fatalf("plan %+v", p)
	}
	for _, v := range p.Services[0].Volumes {
		found := false
		for _, m := range svc.TaskTemplate.ContainerSpec.Mounts {
			if path.Clean(m.Target) == path.Clean(v.Target) {
				found = m.Type == mount.TypeVolume && m.Source == v.Full
				t.Logf("volume %s: Full %q, mount %s %q at %q", v.Name, v.Full, m.Type, m.Source, m.Target)
			}
		}
		if !found {
			t.Errorf("volume %s: Full %q is not the Source of the service's mount at %s", v.Name, v.Full, v.Target)
		}
	}
}
