package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
)

var (
	mnShellOnce sync.Once
	mnShellErr  error
)

// TestMultinodeBackup: on a swarm of several nodes, a backup and its restore go through the
// container of a task on the reconciler's node (mn-node1), as on one host: tier backup is
// Ready, restored and verified. An app whose task runs on another node (the worker, mn-node4)
// is Failed at its backup with the clear error the issue asks for, naming the volume and the
// service and saying where to place it: the reconciler's engine cannot reach a container there.
func TestMultinodeBackup(t *testing.T) {
	t.Parallel()
	h := mnHarness(t)
	mnShellOnce.Do(func() {
		for _, node := range []mnNode{mn.nodes[0], mn.nodes[3]} {
			if err := buildShellImageOn(context.Background(), node.docker); err != nil {
				mnShellErr = fmt.Errorf("%s: %w", node.name, err)
				return
			}
		}
	})
	if mnShellErr != nil {
		t.Fatalf("build %s: %v", shellImage, mnShellErr)
	}
	for _, node := range []string{"node1", "node4"} {
		mnRecipeOf(t, h, "mn-backup-"+node, shellImage, fmt.Sprintf(`      labels:
        backupbot.backup: "true"
        backupbot.restore.post-hook: "echo restored > /data/post-hook-ran"
      placement:
        constraints: ["node.labels.mn == %s"]`, node))
	}
	h.start()
	checks := `tier: backup
backup:
  checks:
    beforeBackup: [{service: app, run: "echo m1 > /data/marker"}]
    beforeRestore: [{service: app, run: "rm /data/marker"}]
    afterRestore: [{service: app, run: "grep -qx m1 /data/marker && grep -qx restored /data/post-hook-ran"}]
`
	here, there := h.newApp("mn-bk-here"), h.newApp("mn-bk-there")
	hereGen := h.writeSpec(here.name, []byte("recipe: mn-backup-node1\nversion: "+miniRelease+"\ntimeout: 3m\nminReady: 1s\n"+checks))
	// No checks there: they would fail first, naming the service only.
	thereGen := h.writeSpec(there.name, []byte("recipe: mn-backup-node4\nversion: "+miniRelease+"\ntimeout: 3m\nminReady: 1s\ntier: backup\n"))

	st := h.waitPhase(here.name, hereGen, "Ready")
	b := readBackupStatus(t, st)
	verified := false
	for _, e := range b.History {
		verified = verified || strings.Contains(e.Message, "restored and verified")
	}
	if b.BackupStage != "done" || b.LastRestore == nil || b.LastRestore.State != "Completed" || !verified {
		t.Errorf("the app on the reconciler's node: Ready without its backup restored and verified:\n%s", st)
	}
	if list := h.listBackups(here.name); len(list) != 1 {
		t.Errorf("the app on the reconciler's node: %d backups listed, want 1", len(list))
	}

	st = h.waitPhase(there.name, thereGen, "Failed")
	for _, w := range []string{"volume data (mounted by service app)", "no running task of app on the reconciler's node", "placement constraint"} {
		if !strings.Contains(st.Message, w) {
			t.Errorf("the app on the worker: message lacks %q:\n%s", w, st.Message)
		}
	}
	if list := h.listBackups(there.name); len(list) != 0 {
		t.Errorf("the app on the worker: %d backups listed, want none", len(list))
	}
}
