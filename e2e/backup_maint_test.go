package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// makeMaintRecipe makes a recipe whose restore pre-hook puts its one service in maintenance,
// a flag on its volume that its health check fails on, and whose restore post-hook ends it:
// once the flag is set, swarm ends every task of db as unhealthy until the post-hook runs.
func makeMaintRecipe(t testing.TB, h *harness, name string) {
	t.Helper()
	needShellImage(t)
	makeEchoRecipe(t, h, name, "", fmt.Sprintf(`services:
  db:
    image: %[1]s
    environment:
      - MESSAGE=db
      - PORT=8080
    volumes:
      - db-data:/var/lib/db
    healthcheck:
      test: ["CMD", "/bin/sh", "-c", "test ! -e /var/lib/db/maint"]
      interval: 1s
      timeout: 1s
      retries: 1
    deploy:
      restart_policy:
        condition: any
        delay: 1s
      labels:
        - "coop-cloud.${STACK_NAME}.version=%[2]s"
        - "backupbot.backup=true"
        - "backupbot.restore.pre-hook=touch /var/lib/db/maint"
        - "backupbot.restore.post-hook=rm /var/lib/db/maint"
volumes:
  db-data:
`, shellImage, miniRelease), nil)
}

// TestOwedRestorePostHookOnAnUnhealthyApp: a reconciler SIGKILLed right after a restore
// pre-hook put the app in maintenance leaves it failing its health check: swarm ends each task
// of the service as unhealthy and starts the next, which fails too. The restarted reconciler
// must say the restore was interrupted and run the post-hook it owes (which ends the
// maintenance) without waiting for the app to converge, which only that post-hook lets it do;
// the service then runs healthy again.
func TestOwedRestorePostHookOnAnUnhealthyApp(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	makeMaintRecipe(t, h, "e2e-backup-maint")
	a := h.newApp("bkmaint")
	h.waitPhase(a.name, h.writeSpec(a.name, a.specOf("e2e-backup-maint", miniRelease)), "Ready")
	if r := h.cli(phaseDeadline, "backup", a.name, "--wait"); r.code != 0 || !strings.Contains(r.stdout, "completed") {
		t.Fatalf("backup --wait: %s", r)
	}
	list := h.listBackups(a.name)
	if len(list) != 1 {
		t.Fatalf("%d backups after one request, want 1", len(list))
	}
	if err := h.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	// Killed right after its first step once started again: the restore's pre-hook.
	died := h.recKilled(1, 0, func() {
		if r := h.cli(30*time.Second, "restore", a.name, list[0].ID); r.code != 0 {
			t.Fatalf("restore: %s", r)
		}
	})
	if !strings.Contains(died, "restore pre-hook db") {
		t.Fatalf("killed after %s, want after the restore pre-hook", died)
	}
	service := a.stack() + "_db"
	ctx := context.Background()
	unhealthy := func() (bool, error) {
		tasks, err := h.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", service))})
		for _, tk := range tasks {
			// The echo server exits 0 on the stop that ends an unhealthy container: complete.
			if tk.DesiredState == swarm.TaskStateShutdown && tk.Status.State != swarm.TaskStateShutdown {
				return true, nil
			}
		}
		return false, err
	}
	// Started again only once swarm has ended a task in maintenance (the app had no other
	// end: it was Ready, and nothing changed it): the case under test.
	if err := poll(ctx, phaseDeadline, unhealthy); err != nil {
		t.Fatalf("no task of %s ended unhealthy in maintenance: %v", service, err)
	}

	h.start()
	s, err := h.awaitStatus(a.name, "Failed by the interrupted restore, its post-hook run", func(s appStatus) (bool, string) {
		return s.Phase == "Failed" && strings.Contains(s.Message, "owed since, ran"), ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Message, "restore interrupted") {
		t.Errorf("Failed: %s, want it to say the restore was interrupted", s.Message)
	}
	b := readBackupStatus(t, s)
	if code, ok := b.LastRestore.hook("db", "restore post-hook"); !ok || code != 0 {
		t.Errorf("restore post-hook: ran %v, exit %d", ok, code)
	}
	// Out of maintenance: a task of db passes its health check and runs.
	if err := poll(ctx, phaseDeadline, func() (bool, error) {
		tasks, err := h.docker.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", service), filters.Arg("desired-state", "running"))})
		for _, tk := range tasks {
			if tk.Status.State == swarm.TaskStateRunning {
				return true, nil
			}
		}
		return false, err
	}); err != nil {
		t.Fatalf("no task of %s runs after the post-hook: %v", service, err)
	}
}
