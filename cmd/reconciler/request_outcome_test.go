package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/swarm-reconciler/reconciler/spec"
)

// TestRestoreWaitFindsItsOutcomeAfterALaterRequest: two restore requests a moment apart; the
// reconciler carries out the first (completed) and is into the second before the first's
// --wait looks. The first's outcome is read from the status's requests (was exit 1: "replaced
// by one without the request", for a restore that completed), and a failed one says failed.
func TestRestoreWaitFindsItsOutcomeAfterALaterRequest(t *testing.T) {
	for _, state := range []spec.RunState{spec.RunCompleted, spec.RunFailed} {
		t.Run(string(state), func(t *testing.T) {
			e := newCLIEnv(t)
			path, _ := e.specFile("ch-7", body)
			if _, _, code, err := e.run(context.Background(), "apply", path); code != 0 {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				var first string
				for deadline := time.Now().Add(10 * time.Second); first == "" && time.Now().Before(deadline); time.Sleep(waitPoll / 4) {
					if d, err := spec.LoadApp(e.specs, "ch-7", spec.Defaults{}); err == nil && d != nil && d.Spec != nil && d.Spec.Backup != nil && d.Spec.Backup.Restore != nil {
						first = d.Spec.Backup.Restore.RequestedAt
					}
				}
				if first == "" {
					t.Error("the restore request never reached the spec")
					return
				}
				second := time.Now().UTC().Add(time.Second).Format(time.RFC3339Nano)
				gen, err := spec.Request(e.specs, "ch-7", true, "", second, spec.Defaults{}, nil)
				if err != nil {
					t.Error(err)
					return
				}
				// What the reconciler writes over three passes, of which --wait reads the last.
				st := &spec.Status{App: "ch-7", ObservedGeneration: gen, Phase: spec.PhaseReady, Message: "up", UpdatedAt: time.Now()}
				st.LastHandledRestoreAt = first
				st.LastRestore = &spec.BackupRun{ID: "b1", Trigger: "request", Request: first, State: state, Message: "3 files"}
				st.RecordRequests()
				st.LastHandledRestoreAt = second
				st.LastRestore = &spec.BackupRun{ID: "b1", Trigger: "request", Request: second, State: spec.RunRunning}
				st.RecordRequests()
				if err := spec.WriteStatus(e.status, st); err != nil {
					t.Error(err)
				}
			}()
			out, _, code, err := e.run(context.Background(), "restore", "ch-7", "--wait", "--timeout", "20s")
			<-done
			want := exitReached
			if state == spec.RunFailed {
				want = exitFailed
			}
			if code != want || state == spec.RunCompleted && !strings.Contains(out, "restore b1 completed") {
				t.Errorf("restore --wait of a %s restore a later request followed: exit %d (%v, %q); want %d", state, code, err, out, want)
			}
		})
	}
}
