package spec

import (
	"fmt"
	"testing"
)

// TestRecordRequests: the ends of requested runs are recorded once each, a run under way or
// not requested (a schedule's, a tier's) never, and only the newest MaxRequests are kept.
func TestRecordRequests(t *testing.T) {
	st := &Status{}
	st.LastBackup = &BackupRun{ID: "s", Trigger: "schedule", State: RunCompleted}
	st.LastRestore = &BackupRun{ID: "b0", Trigger: "request", Request: "t0", State: RunRunning}
	st.RecordRequests()
	if len(st.Requests) != 0 {
		t.Fatalf("a scheduled backup and a restore under way recorded: %+v", st.Requests)
	}
	for i := range MaxRequests + 3 {
		st.LastRestore = &BackupRun{ID: "b", Trigger: "request", Request: fmt.Sprint("t", i), State: RunCompleted}
		st.RecordRequests()
		st.RecordRequests()
	}
	if len(st.Requests) != MaxRequests || st.Requests[0].Request != "t3" || st.Outcome("restore", "t12") == nil || st.Outcome("backup", "t12") != nil {
		t.Fatalf("requests: %+v", st.Requests)
	}
}
