package controller

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
	"github.com/klauspost/compress/zstd"

	"github.com/swarm-reconciler/reconciler/spec"
)

// backupCompose is bonfire's pattern in small: a pre-hook dumps the database onto a volume
// whose backup is limited to the dump, a second volume is excluded, a third is whole.
const backupCompose = `version: "3.8"
services:
  app:
    image: echo:%s
    environment:
      MESSAGE: "hello %s"
    volumes:
      - data:/data
      - cache:/cache
      - files:/files
    deploy:
      labels:
        backupbot.backup: "${ENABLE_BACKUPS:-true}"
        backupbot.backup.pre-hook: "dump"
        backupbot.backup.post-hook: "rm /data/dump.sql"
        backupbot.backup.volumes.data.path: "dump.sql"
        backupbot.backup.volumes.cache: "false"
        backupbot.restore.post-hook: "load"
volumes:
  data:
  cache:
  files:
`

// backupShell is the app container's shell in the fake engine: the commands the recipe's
// hooks and the tests' checks run.
func backupShell(fail map[string]int) func(service, cmd string, files map[string]string) (int, string) {
	return func(service, cmd string, files map[string]string) (int, string) {
		if code, ok := fail[cmd]; ok {
			return code, "line 1\nERROR: " + cmd + " went wrong\n"
		}
		switch {
		case cmd == "dump":
			files["/data/dump.sql"] = "rows " + files["/data/db"]
		case cmd == "load":
			if _, ok := files["/data/dump.sql"]; !ok {
				return 1, "no dump"
			}
			files["/data/db"] = strings.TrimPrefix(files["/data/dump.sql"], "rows ")
		case strings.HasPrefix(cmd, "rm "):
			delete(files, strings.TrimPrefix(cmd, "rm "))
		case strings.HasPrefix(cmd, "write "): // write PATH CONTENT
			f := strings.SplitN(cmd, " ", 3)
			files[f[1]] = f[2]
		case strings.HasPrefix(cmd, "has "): // has PATH CONTENT
			f := strings.SplitN(cmd, " ", 3)
			if files[f[1]] != f[2] {
				return 1, f[1] + " holds " + files[f[1]]
			}
		}
		return 0, "ok\n"
	}
}

func newBackupFixture(t *testing.T, fail map[string]int) (*fixture, *fakeBackup) {
	f := newFixture(t)
	makeRecipeOf(t, f.r.RecipesDir, "bk", backupCompose, "1.0.0+1")
	fb := newFakeBackup(f.engine)
	fb.shell = backupShell(fail)
	f.r.BackupEngine = fb
	f.r.Backups = spec.BackupStore{Dir: filepath.Join(t.TempDir(), "backups")}
	return f, fb
}

const backupTierSpec = `recipe: bk
version: 1.0.0+1
tier: backup
backup:
  checks:
    beforeBackup: [{service: app, run: "write /files/marker m1"}]
    beforeRestore: [{service: app, run: "rm /files/marker"}]
    afterRestore: [{service: app, run: "has /files/marker m1"}]
`

// killedAt settles app a until the backup step named step (a prefix) is done, and kills the
// pass there, as SIGKILL would: nothing after it runs, nothing of it is written.
func killedAt(f *fixture, step string) {
	f.t.Helper()
	f.r.Step = func(_ int64, a Action) {
		if a.Kind == BackupStep && strings.HasPrefix(a.Name, step) {
			panic("killed")
		}
	}
	defer func() { f.r.Step = nil }()
	func() {
		defer func() { _ = recover() }()
		f.settle("a")
	}()
}

// seed puts the app's data in place once it runs.
func seed(f *fixture, fb *fakeBackup) {
	f.t.Helper()
	if _, err := f.r.Reconcile(f.t.Context(), "a"); err != nil || len(f.engine.tasks) == 0 {
		f.t.Fatalf("first pass: %v, %d tasks", err, len(f.engine.tasks))
	}
	fb.mu.Lock()
	fb.fs("a_test_app")["/data/db"] = "42"
	fb.fs("a_test_app")["/cache/tmp"] = "scratch"
	fb.fs("a_test_app")["/files/a/b.txt"] = "file b"
	fb.fs("a_test_app")["/files/hard"] = fakeLink + "/files/a/b.txt"
	fb.mu.Unlock()
}

func TestBackupTier(t *testing.T) {
	f, fb := newBackupFixture(t, nil)
	f.writeSpec("a", backupTierSpec)
	seed(f, fb)
	st := f.settle("a")
	if st.Phase != spec.PhaseReady || st.BackupStage != stageDone {
		t.Fatalf("phase %s stage %q: %s", st.Phase, st.BackupStage, st.Message)
	}
	if !hasMessage(st, "restored and verified") {
		t.Errorf("history does not say the backup was restored and verified: %+v", st.History)
	}
	want := []string{
		"a_test_app: write /files/marker m1", "a_test_app: dump", "a_test_app: rm /data/dump.sql",
		"a_test_app: rm /files/marker", "a_test_app: load", "a_test_app: has /files/marker m1",
	}
	if !reflect.DeepEqual(fb.ran, want) {
		t.Errorf("ran\n %q\nwant\n %q", fb.ran, want)
	}
	list, err := f.r.Backups.List("a")
	if err != nil || len(list) != 1 {
		t.Fatalf("backups = %v, %v; want one", list, err)
	}
	m := list[0]
	var got []string
	for _, v := range m.Volumes {
		for _, file := range v.Files {
			got = append(got, v.Name+":"+file.Path)
		}
	}
	if w := []string{"data:dump.sql", "files:a/b.txt", "files:marker"}; !reflect.DeepEqual(got, w) {
		t.Errorf("backed up %v, want %v (data limited to dump.sql, cache excluded)", got, w)
	}
	names := archiveNames(t, f.r.Backups, m, "data")
	if !reflect.DeepEqual(names, []string{"dump.sql"}) {
		t.Errorf("data archive holds %v, want only dump.sql", names)
	}
	if b, r := st.LastBackup, st.LastRestore; b == nil || r == nil || b.State != spec.RunCompleted || r.State != spec.RunCompleted ||
		b.ID != m.ID || r.ID != m.ID || b.Files != 3 || r.Trigger != triggerTier {
		t.Errorf("lastBackup %+v lastRestore %+v", b, r)
	}
	if got := fb.files["a_test_app"]["/files/hard"]; got != fakeLink+"/files/a/b.txt" {
		t.Errorf("the hard link was restored as %q", got)
	}
	if fb.files["a_test_app"]["/data/db"] != "42" {
		t.Errorf("restore post-hook did not load the dump: %v", fb.files["a_test_app"])
	}
	if !hasMessage(st, "backup tier: backup "+m.ID+" done") {
		t.Errorf("history does not record the backup: %+v", st.History)
	}

	// Done once: later passes and a new generation of a running app do not run it again.
	fb.ran = nil
	f.writeSpec("a", backupTierSpec+"env: {X: y}\n")
	if st = f.settle("a"); st.Phase != spec.PhaseReady || len(fb.ran) != 0 {
		t.Errorf("after the tier: phase %s, ran %v", st.Phase, fb.ran)
	}
}

func archiveNames(t *testing.T, s spec.BackupStore, m *spec.BackupManifest, volume string) []string {
	t.Helper()
	for _, v := range m.Volumes {
		if v.Name != volume {
			continue
		}
		r, err := s.Open(m.App, m.ID, v.Archive)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		var names []string
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return names
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, h.Name)
		}
	}
	t.Fatalf("no volume %s in %+v", volume, m)
	return nil
}

func hasMessage(st *spec.Status, sub string) bool {
	for _, h := range st.History {
		if strings.Contains(h.Message, sub) {
			return true
		}
	}
	return false
}

func TestBackupTierFailures(t *testing.T) {
	tests := []struct {
		name    string
		fail    map[string]int
		corrupt bool
		node    string // the node the engine says it is; "" the tasks' node
		want    []string
		backups int
		ran     string // a command that must have run
	}{
		{name: "pre-hook fails: its post-hook still runs, nothing listed", fail: map[string]int{"dump": 2},
			want: []string{"backup tier: backup", "failed", "backup pre-hook in service app (dump) exited 2", "ERROR: dump went wrong"},
			ran:  "a_test_app: rm /data/dump.sql"},
		{name: "the pre-hook wrote no dump: the backup would not hold it", fail: map[string]int{"dump": 0},
			want: []string{"path dump.sql of volume data is not there (/data/dump.sql in the container)"}, ran: "a_test_app: rm /data/dump.sql"},
		{name: "no task on the reconciler's node: the check cannot run there", node: "node2",
			want: []string{"service app: no running task of app on the reconciler's node", "placement constraint"}},
		{name: "afterRestore check fails", fail: map[string]int{"has /files/marker m1": 1},
			want: []string{"restore of backup", "check afterRestore[0] in service app (has /files/marker m1) exited 1"}, backups: 1},
		{name: "restored file differs", corrupt: true,
			want: []string{"restored volume data does not match backup", "dump.sql (sha256"}, backups: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, fb := newBackupFixture(t, tt.fail)
			if tt.corrupt {
				fb.corrupt = func(name, content string) string { return content + "!" }
			}
			fb.node = tt.node
			f.writeSpec("a", backupTierSpec)
			seed(f, fb)
			st := f.settle("a")
			if st.Phase != spec.PhaseFailed {
				t.Fatalf("phase %s: %s", st.Phase, st.Message)
			}
			for _, w := range tt.want {
				if !strings.Contains(st.Message, w) {
					t.Errorf("message %q lacks %q", st.Message, w)
				}
			}
			if list, _ := f.r.Backups.List("a"); len(list) != tt.backups {
				t.Errorf("%d backups listed, want %d", len(list), tt.backups)
			}
			if left, _ := f.r.Backups.CleanPartial(f.r.Owner); len(left) != 0 {
				t.Errorf("partial backups left: %v", left)
			}
			if tt.ran != "" && !contains(fb.ran, tt.ran) {
				t.Errorf("%q did not run: %v", tt.ran, fb.ran)
			}
		})
	}
}

func TestBackupInterrupted(t *testing.T) {
	// The process dies right after a step of the backup: once restarted, the backup is made
	// exactly once, whether the kill came before its commit or after.
	for _, step := range []string{"read volume", "commit"} {
		f, fb := newBackupFixture(t, nil)
		f.writeSpec("a", backupTierSpec)
		seed(f, fb)
		killedAt(f, step)
		st, _ := spec.ReadStatus(f.r.StatusDir, "a")
		if st.LastBackup == nil || st.LastBackup.State != spec.RunRunning {
			t.Fatalf("%s: the status does not say a backup runs: %+v", step, st.LastBackup)
		}
		left, _ := f.r.Backups.CleanPartial(f.r.Owner)
		if want := map[string]int{"read volume": 1, "commit": 0}[step]; len(left) != want {
			t.Fatalf("%s: partial backups at start-up: %v, want %d", step, left, want)
		}
		st = f.settle("a")
		if list, _ := f.r.Backups.List("a"); st.Phase != spec.PhaseReady || len(list) != 1 {
			t.Fatalf("%s: after the restart: phase %s, %d backups: %s", step, st.Phase, len(list), st.Message)
		}
		if !hasMessage(st, "restored and verified") {
			t.Errorf("%s: history: %+v", step, st.History)
		}
	}

	// A restore cut short leaves the volumes half written: Failed, saying so.
	f2, fb2 := newBackupFixture(t, nil)
	f2.writeSpec("a", backupTierSpec)
	seed(f2, fb2)
	killedAt(f2, "write volume")
	st := f2.settle("a")
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "restore interrupted") && !strings.Contains(st.Message, "interrupted: the reconciler stopped during the restore") {
		t.Fatalf("after a restore cut short: phase %s: %s", st.Phase, st.Message)
	}
}

// TestKeepWithAClockSetBackAndAKillAfterCommit: keep prunes by the backups' order, so a new
// backup's ID must sort after the last even when the clock was set back (or keep would
// remove the backup just made), and a process killed after a backup's commit still owes its
// pruning: the restarted one prunes when it finds the backup committed.
func TestKeepWithAClockSetBackAndAKillAfterCommit(t *testing.T) {
	f, fb := newBackupFixture(t, nil)
	spec1 := func(req string) string {
		return "recipe: bk\nversion: 1.0.0+1\nbackup: {requestedAt: " + req + ", keep: 1}\n"
	}
	f.writeSpec("a", spec1("r1"))
	seed(f, fb)
	f.now = f.now.Add(2 * time.Hour) // the clock set back below stays after the tasks' start
	st := f.settle("a")
	list, _ := f.r.Backups.List("a")
	if st.LastBackup == nil || st.LastBackup.State != spec.RunCompleted || len(list) != 1 {
		t.Fatalf("first backup: %+v, %d listed", st.LastBackup, len(list))
	}
	first := list[0].ID

	f.now = f.now.Add(-time.Hour) // an NTP step, a VM restored from a snapshot
	f.writeSpec("a", spec1("r2"))
	st = f.settle("a")
	list, _ = f.r.Backups.List("a")
	if st.LastBackup.State != spec.RunCompleted || len(list) != 1 || list[0].ID != st.LastBackup.ID || list[0].ID <= first {
		t.Fatalf("after the clock went back: last %+v, kept %v (first was %s): keep must remove the older backup, not the new one", st.LastBackup, idsOf(list), first)
	}
	second := list[0].ID

	f.writeSpec("a", spec1("r3"))
	killedAt(f, "commit")
	if list, _ = f.r.Backups.List("a"); len(list) != 2 {
		t.Fatalf("killed after the commit: %v listed, want the old and the new", idsOf(list))
	}
	st = f.settle("a")
	list, _ = f.r.Backups.List("a")
	if st.LastBackup.State != spec.RunCompleted || len(list) != 1 || list[0].ID == second || list[0].ID != st.LastBackup.ID {
		t.Fatalf("after the restart: last %+v, kept %v: the committed backup is the one keep 1 leaves", st.LastBackup, idsOf(list))
	}
	third := list[0].ID

	// The status gone (the app deleted and made again; the store keeps its backups), the clock
	// set back once more: the store says which ID the next must follow.
	if err := os.Remove(filepath.Join(f.r.StatusDir, "a.json")); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(-30 * time.Minute)
	f.writeSpec("a", spec1("r4"))
	st = f.settle("a")
	list, _ = f.r.Backups.List("a")
	if st.LastBackup == nil || st.LastBackup.State != spec.RunCompleted || len(list) != 1 || list[0].ID <= third || list[0].ID != st.LastBackup.ID {
		t.Fatalf("without a status: last %+v, kept %v (the one before: %s)", st.LastBackup, idsOf(list), third)
	}
}

func idsOf(list []*spec.BackupManifest) []string {
	var ids []string
	for _, m := range list {
		ids = append(ids, m.ID)
	}
	return ids
}

// TestJobsFoundAfterARestart: the timers of a pass die with the process, so the resync of a
// restarted reconciler must find a Ready app's backup work: a request whose run was killed,
// a scheduled backup whose time came while no reconciler ran. An app with nothing due is
// left alone.
func TestJobsFoundAfterARestart(t *testing.T) {
	resync := func(f *fixture) bool {
		f.t.Helper()
		apps, err := f.r.Pending(f.t.Context())
		if err != nil {
			f.t.Fatal(err)
		}
		return slices.Contains(apps, "a")
	}
	t.Run("a request killed", func(t *testing.T) {
		f, fb := newBackupFixture(t, nil)
		f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\n")
		seed(f, fb)
		f.settle("a")
		f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {requestedAt: r1}\n")
		killedAt(f, "read volume")
		if st, _ := spec.ReadStatus(f.r.StatusDir, "a"); st.Phase != spec.PhaseReady || st.LastBackup.State != spec.RunRunning {
			t.Fatalf("at the kill: %s, last backup %+v", st.Phase, st.LastBackup)
		}
		if _, err := f.r.Backups.CleanPartial(f.r.Owner); err != nil { // as a start-up does
			t.Fatal(err)
		}
		f.now = f.now.Add(time.Minute)
		if !resync(f) {
			t.Fatal("the resync after the restart leaves the app, its request not carried out")
		}
		st := f.settle("a")
		if list, _ := f.r.Backups.List("a"); st.LastHandledBackupAt != "r1" || st.LastBackup.State != spec.RunCompleted || len(list) != 1 {
			t.Fatalf("after the restart: handled %q, last backup %+v, %d backups", st.LastHandledBackupAt, st.LastBackup, len(list))
		}
		if resync(f) {
			t.Error("the request carried out, the resync still finds work")
		}
	})
	t.Run("a schedule", func(t *testing.T) {
		f, fb := newBackupFixture(t, nil)
		f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {schedule: '@every 1h'}\n")
		seed(f, fb)
		if st := f.settle("a"); st.Phase != spec.PhaseReady {
			t.Fatalf("install: %s %s", st.Phase, st.Message)
		}
		f.now = f.now.Add(30 * time.Minute)
		if resync(f) {
			t.Fatal("the resync finds work before the schedule's time")
		}
		f.now = f.now.Add(5 * time.Hour) // no reconciler ran when the backup was due
		if !resync(f) {
			t.Fatal("an overdue scheduled backup: the resync leaves the app")
		}
		st := f.settle("a")
		if list, _ := f.r.Backups.List("a"); st.LastBackup == nil || st.LastBackup.Trigger != triggerSchedule || len(list) != 1 {
			t.Fatalf("after the resync: last backup %+v, %d backups", st.LastBackup, len(list))
		}
	})
}

func TestBackupRequestsAndSchedule(t *testing.T) {
	f, fb := newBackupFixture(t, nil)
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\n")
	seed(f, fb)
	if st := f.settle("a"); st.Phase != spec.PhaseReady || st.LastBackup != nil {
		t.Fatalf("install: phase %s, lastBackup %+v", st.Phase, st.LastBackup)
	}
	// A request is carried out once, in the attempt that is going on: not a new one.
	pending := func(st *spec.Status) (n int) {
		for _, h := range st.History {
			if h.Phase == spec.PhasePending {
				n++
			}
		}
		return n
	}
	before, _ := spec.ReadStatus(f.r.StatusDir, "a")
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {requestedAt: r1}\n")
	st := f.settle("a")
	if pending(st) != pending(before) || st.AttemptStartedAt == nil || !st.AttemptStartedAt.Equal(*before.AttemptStartedAt) {
		t.Errorf("the request started a new attempt: %+v", st.History)
	}
	list, _ := f.r.Backups.List("a")
	if st.Phase != spec.PhaseReady || len(list) != 1 || st.LastHandledBackupAt != "r1" || st.LastBackup.Trigger != triggerRequest || list[0].Request != "r1" {
		t.Fatalf("request: phase %s, %d backups, handled %q: %s", st.Phase, len(list), st.LastHandledBackupAt, st.Message)
	}
	f.settle("a")
	if list, _ = f.r.Backups.List("a"); len(list) != 1 {
		t.Fatalf("the request ran again: %d backups", len(list))
	}
	// A restore of the newest backup.
	fb.mu.Lock()
	fb.files["a_test_app"]["/files/a/b.txt"] = "changed"
	fb.mu.Unlock()
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {requestedAt: r1, restore: {requestedAt: r2}}\n")
	st = f.settle("a")
	if st.LastRestore == nil || st.LastRestore.State != spec.RunCompleted || st.LastRestore.ID != list[0].ID || fb.files["a_test_app"]["/files/a/b.txt"] != "file b" {
		t.Fatalf("restore: %+v, file %q", st.LastRestore, fb.files["a_test_app"]["/files/a/b.txt"])
	}
	// A schedule makes backups while the app lives; keep prunes the oldest.
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {requestedAt: r1, restore: {requestedAt: r2}, schedule: '@every 5s', keep: 2}\n")
	for i := 0; i < 30; i++ {
		res, err := f.r.Reconcile(t.Context(), "a")
		if err != nil {
			t.Fatal(err)
		}
		if res.RequeueAfter <= 0 || res.RequeueAfter > 5*time.Second+time.Millisecond {
			t.Fatalf("pass %d: requeue after %v, want the schedule's next", i, res.RequeueAfter)
		}
		f.now = f.now.Add(res.RequeueAfter)
	}
	list, _ = f.r.Backups.List("a")
	st, _ = spec.ReadStatus(f.r.StatusDir, "a")
	if len(list) != 2 || st.LastBackup.Trigger != triggerSchedule || st.Phase != spec.PhaseReady {
		t.Fatalf("schedule: %d backups kept, last %+v", len(list), st.LastBackup)
	}
	// Deleting the app keeps its backups.
	if err := spec.Unplace(f.r.SpecsDir, "a"); err != nil {
		t.Fatal(err)
	}
	if st = f.settle("a"); st.Phase != spec.PhaseDeleted {
		t.Fatalf("delete: %s", st.Phase)
	}
	if after, _ := f.r.Backups.List("a"); len(after) != 2 {
		t.Errorf("teardown left %d backups, want 2", len(after))
	}
	if _, err := os.Stat(filepath.Join(f.r.Backups.Dir, "a")); err != nil {
		t.Error(err)
	}
}

// backedUp is a fixture whose app a is Ready with one requested backup (request r1), and
// that backup's ID.
func backedUp(t *testing.T) (*fixture, *fakeBackup, string) {
	f, fb := newBackupFixture(t, nil)
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\n")
	seed(f, fb)
	f.settle("a")
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {requestedAt: r1}\n")
	st := f.settle("a")
	if st.Phase != spec.PhaseReady || st.LastBackup == nil || st.LastBackup.State != spec.RunCompleted {
		t.Fatalf("backup: %s %s", st.Phase, st.Message)
	}
	return f, fb, st.LastBackup.ID
}

// TestRestoreAgainAfterAFailedRestore: a restore whose data did not read back as stored makes
// the app Failed, telling a person to restore again; doing so carries it out, and the request
// is not left to fire over live data when a later attempt converges.
func TestRestoreAgainAfterAFailedRestore(t *testing.T) {
	f, fb, id := backedUp(t)
	withRestore := func(request, more string) string {
		return "recipe: bk\nversion: 1.0.0+1\n" + more + "backup: {requestedAt: r1, restore: {requestedAt: " + request + ", id: \"" + id + "\"}}\n"
	}
	fb.corrupt = func(string, string) string { return "garbage" }
	f.writeSpec("a", withRestore("r2", ""))
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "reconciler restore a "+id) {
		t.Fatalf("a restore that does not read back: %s %s", st.Phase, st.Message)
	}
	fb.corrupt = nil
	f.writeSpec("a", withRestore("r3", ""))
	st = f.settle("a")
	if st.Phase != spec.PhaseReady || st.LastHandledRestoreAt != "r3" || st.LastRestore.State != spec.RunCompleted {
		t.Fatalf("restored again as the message said: %s (%s), handled %q, last restore %+v", st.Phase, st.Message, st.LastHandledRestoreAt, st.LastRestore)
	}
	// Both requests' ends stay readable for their --wait, the first's after the second ran.
	if r2, r3 := st.Outcome("restore", "r2"), st.Outcome("restore", "r3"); r2 == nil || r2.State != spec.RunFailed || r3 == nil || r3.State != spec.RunCompleted || st.Outcome("backup", "r1") == nil {
		t.Fatalf("requests recorded: %+v", st.Requests)
	}
	fb.mu.Lock()
	fb.files["a_test_app"]["/files/a/b.txt"] = "written since"
	fb.mu.Unlock()
	f.writeSpec("a", withRestore("r3", "env: {X: \"1\"}\n"))
	if st = f.settle("a"); st.Phase != spec.PhaseReady || fb.files["a_test_app"]["/files/a/b.txt"] != "written since" {
		t.Fatalf("a new attempt: %s, the file holds %q: a handled request ran again", st.Phase, fb.files["a_test_app"]["/files/a/b.txt"])
	}
}

// TestFailedRestoreLoadsNoDump: bonfire's db has a restore post-hook that loads the restored
// dump (`/pg_backup.sh restore` loads backup.sql into the database) and no restore pre-hook.
// A restore that did not write and verify the backup must not run it: it would replace the
// live database with a dump the restore did not deliver (here a corrupted one). backup-bot-two
// runs no restore post-hook once the restore itself failed; only a post-hook owed to a
// pre-hook that ran is still run (as after a kill, owedPostHooks).
func TestFailedRestoreLoadsNoDump(t *testing.T) {
	f, fb, id := backedUp(t)
	fb.mu.Lock()
	fb.files["a_test_app"]["/data/db"] = "43" // written since the backup
	fb.mu.Unlock()
	fb.corrupt = func(string, string) string { return "garbage" }
	n := len(fb.ran)
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {requestedAt: r1, restore: {requestedAt: r2, id: \""+id+"\"}}\n")
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || st.LastRestore == nil || st.LastRestore.State != spec.RunFailed {
		t.Fatalf("a restore that does not read back: %s %s", st.Phase, st.Message)
	}
	if slices.Contains(fb.ran[n:], "a_test_app: load") || fb.files["a_test_app"]["/data/db"] != "43" {
		t.Fatalf("the failed restore ran the post-hook that loads the dump: ran %q, the database holds %q", fb.ran[n:], fb.files["a_test_app"]["/data/db"])
	}
}

// TestRequestToAFailedApp: a request to an app that is Failed is answered at once, failed and
// saying why, and not carried out when a later attempt converges, long after it was made.
func TestRequestToAFailedApp(t *testing.T) {
	f, fb := newBackupFixture(t, nil)
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\ntimeout: 1m\n")
	seed(f, fb)
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.engine.crashAfter = time.Second
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\ntimeout: 1m\nenv: {X: \"1\"}\n")
	st := f.settleAs("a", spec.PhaseFailed, 10*time.Second, 20)
	if st.Phase != spec.PhaseFailed {
		t.Fatalf("a crashing release: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\ntimeout: 1m\nenv: {X: \"1\"}\nbackup: {requestedAt: r1, restore: {requestedAt: r2}}\n")
	st = f.settle("a")
	for _, run := range []*spec.BackupRun{st.LastBackup, st.LastRestore} {
		if st.Phase != spec.PhaseFailed || run == nil || run.State != spec.RunFailed || !strings.Contains(run.Message, "not carried out: the app is Failed") {
			t.Fatalf("requests to a Failed app: %s, run %+v", st.Phase, run)
		}
	}
	if st.LastHandledBackupAt != "r1" || st.LastHandledRestoreAt != "r2" {
		t.Fatalf("requests not answered: handled %q %q", st.LastHandledBackupAt, st.LastHandledRestoreAt)
	}
	f.engine.crashAfter = 0
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\ntimeout: 1m\nenv: {X: \"2\"}\nbackup: {requestedAt: r1, restore: {requestedAt: r2}}\n")
	st = f.settleAs("a", spec.PhaseReady, 10*time.Second, 20)
	if list, _ := f.r.Backups.List("a"); st.Phase != spec.PhaseReady || len(list) != 0 || st.LastRestore.State != spec.RunFailed {
		t.Fatalf("the fixed release: %s (%s), %d backups, last restore %+v: an answered request ran", st.Phase, st.Message, len(list), st.LastRestore)
	}
}

func TestBackupOfRecipeWithoutBackupIsInvalid(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("a", "recipe: echo\nversion: 1.0.0+1\ntier: backup\n")
	st := f.settle("a")
	if st.Phase != spec.PhaseInvalid || !strings.Contains(st.Message, "declares no backup") {
		t.Fatalf("phase %s: %s", st.Phase, st.Message)
	}
}

// TestCheckArchive: a restore hands the engine only what a backup writes. Entries outside the
// volume, through a symbolic link of the archive, devices, or files the manifest does not list
// (or of another size) stop it, naming the entry.
func TestCheckArchive(t *testing.T) {
	type entry struct {
		name, link string
		kind       byte
		data       string
	}
	v := spec.VolumeBackup{Name: "files", Files: []spec.BackedUpFile{{Path: "a/b.txt", Size: 6}, {Path: "c", Size: 1}}}
	for _, tc := range []struct {
		name    string
		entries []entry
		refused string
	}{
		{"what a backup writes", []entry{{name: "a/", kind: tar.TypeDir}, {name: "a/b.txt", data: "file b"},
			{name: "a/l", kind: tar.TypeSymlink, link: "/etc"}, {name: "h", kind: tar.TypeLink, link: "a/b.txt"}, {name: "c", data: "x"},
			{name: "null", kind: tar.TypeChar}, {name: "fifo", kind: tar.TypeFifo}}, ""},
		{"through a hard link to a link", []entry{{name: "l", kind: tar.TypeSymlink, link: "/etc"}, {name: "h", kind: tar.TypeLink, link: "l"},
			{name: "h/passwd", data: "x"}}, "goes through the symbolic link h"},
		{"a parent", []entry{{name: "../../etc/cron.d/evil", data: "x"}}, `"../../etc/cron.d/evil" is outside the volume`},
		{"an absolute name", []entry{{name: "/etc/evil", data: "x"}}, "is outside the volume"},
		{"through a link", []entry{{name: "up", kind: tar.TypeSymlink, link: "/"}, {name: "up/etc/passwd", data: "x"}}, "goes through the symbolic link up"},
		{"a hard link out", []entry{{name: "h", kind: tar.TypeLink, link: "../../etc/shadow"}}, "which is outside the volume"},
		{"a file not in the manifest", []entry{{name: "a/b.txt", data: "file b"}, {name: "extra", data: "x"}}, `"extra" is not a file of the backup's manifest`},
		{"a file of another size", []entry{{name: "a/b.txt", data: "file b, longer"}}, "is not a file of the backup's manifest"},
		{"a kind no backup holds", []entry{{name: "cont", kind: tar.TypeCont}}, "is of a kind a backup does not hold"},
	} {
		var in bytes.Buffer
		tw := tar.NewWriter(&in)
		for _, e := range tc.entries {
			kind := e.kind
			if kind == 0 {
				kind = tar.TypeReg
			}
			if err := tw.WriteHeader(&tar.Header{Name: e.name, Linkname: e.link, Typeflag: kind, Mode: 0o644, Size: int64(len(e.data))}); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		r := checkArchive(&in, "20260101T120000.000Z", v)
		var names []string
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			names = append(names, h.Name)
		}
		err := r.Close()
		switch {
		case tc.refused == "" && (err != nil || len(names) != len(tc.entries)):
			t.Errorf("%s: %v, passed %q", tc.name, err, names)
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), "restore another backup")):
			t.Errorf("%s: %v, want refused: %s", tc.name, err, tc.refused)
		case tc.refused != "" && len(names) >= len(tc.entries):
			t.Errorf("%s: every entry passed: %q", tc.name, names)
		}
	}
}

// TestRestoreOfAnAlteredArchive: an archive in the store that holds more than its backup wrote
// is not handed on past that entry, and the restore is Failed saying the backup is damaged.
func TestRestoreOfAnAlteredArchive(t *testing.T) {
	f, fb, id := backedUp(t)
	archive := filepath.Join(f.r.Backups.Dir, "a", id, "files"+archiveExt)
	out, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := zstd.NewWriter(out)
	tw := tar.NewWriter(zw)
	for _, e := range []struct{ name, data string }{{"evil", "x"}, {"a/b.txt", "file b"}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e.data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.data))
	}
	tw.Close()
	zw.Close()
	out.Close()
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {requestedAt: r1, restore: {requestedAt: r2, id: \""+id+"\"}}\n")
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, `entry "evil" is not a file of the backup's manifest: the backup is damaged or was altered`) {
		t.Fatalf("restore of an altered archive: %s %s", st.Phase, st.Message)
	}
	if strings.Contains(st.Message, "restore it again") {
		t.Fatalf("a damaged backup is not to be restored again: %s", st.Message)
	}
	if _, ok := fb.files["a_test_app"]["/files/evil"]; ok {
		t.Fatal("the altered entry was written")
	}
}

// TestRequestAcrossTheScheduleTime: a requested backup that runs across the schedule's time
// stands for that slot: no scheduled backup follows it at once, and the next comes at the
// schedule's next time after it ended.
func TestRequestAcrossTheScheduleTime(t *testing.T) {
	f, fb := newBackupFixture(t, nil)
	f.now = time.Date(2026, 1, 1, 10, 50, 0, 0, time.UTC)
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {schedule: '0 * * * *'}\n")
	seed(f, fb)
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.now = time.Date(2026, 1, 1, 10, 59, 59, 0, time.UTC)
	f.r.Step = func(_ int64, a Action) {
		if a.Kind == BackupStep {
			f.now = f.now.Add(time.Second) // the backup takes its time: it ends past 11:00
		}
	}
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {schedule: '0 * * * *', requestedAt: r1}\n")
	st := f.settle("a")
	if list, _ := f.r.Backups.List("a"); len(list) != 1 || st.LastBackup.Trigger != triggerRequest || !st.LastBackup.Finished.After(time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC)) {
		t.Fatalf("%d backups, last %+v: want the request's alone, ended past 11:00", len(list), st.LastBackup)
	}
	res, err := f.r.Reconcile(t.Context(), "a")
	if err != nil || res.RequeueAfter <= 55*time.Minute || res.RequeueAfter > time.Hour {
		t.Fatalf("next look after %v (%v), want at 12:00", res.RequeueAfter, err)
	}
}

// TestRestorePostHookOwedAfterAKill: a restore's post-hook runs whenever its pre-hook ran,
// also when the process was killed in between: the restarted reconciler finds the restore
// interrupted, runs the post-hook owed (a pre-hook may have put the app in maintenance), and
// says so; the app is Failed, as after any interrupted restore.
func TestRestorePostHookOwedAfterAKill(t *testing.T) {
	for _, step := range []string{"restore pre-hook app", "write volume", "restore post-hook app"} {
		f, fb := restoreRequestedWithHooks(t)
		killedAt(f, step)
		if !slices.Contains(fb.ran, "a_test_app: maint on") {
			t.Fatalf("%s: killed after %q, want after the pre-hook", step, fb.ran)
		}
		st := f.settle("a")
		owed := step != "restore post-hook app" // a post-hook that ran is not run again
		if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "interrupted") || strings.Contains(st.Message, "the restore post-hooks of app, owed since, ran") != owed {
			t.Fatalf("%s: after the restart: %s %s", step, st.Phase, st.Message)
		}
		if offs := slices.DeleteFunc(slices.Clone(fb.ran), func(c string) bool { return c != "a_test_app: maint off" }); len(offs) != 1 || fb.ran[len(fb.ran)-1] != "a_test_app: maint off" {
			t.Fatalf("%s: ran %q, want the post-hook once, last", step, fb.ran)
		}
		n := len(fb.ran)
		if st = f.settle("a"); st.Phase != spec.PhaseFailed || len(fb.ran) != n {
			t.Fatalf("%s: the post-hook ran again: %q", step, fb.ran[n:])
		}
	}
}

// TestRestoreNewestWithAnUnreadableBackup: a restore of the newest backup when a manifest
// cannot be read is not carried out (that one may be the newest), and says to name one.
func TestRestoreNewestWithAnUnreadableBackup(t *testing.T) {
	f, _, id := backedUp(t)
	broken := spec.NewBackupID(f.now.Add(time.Hour))
	if err := os.MkdirAll(filepath.Join(f.r.Backups.Dir, "a", broken), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.r.Backups.Dir, "a", broken, "manifest.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {requestedAt: r1, restore: {requestedAt: r2}}\n")
	st := f.settle("a")
	if r := st.LastRestore; r == nil || r.State != spec.RunFailed || r.ID == id || !strings.Contains(r.Message, "name the one to restore with `reconciler restore a ID`") {
		t.Fatalf("restore of the newest with %s unreadable: %+v", broken, st.LastRestore)
	}
}

// TestRestoreRetryThatWritesNothingStaysFailed: a restore asked again of an app Failed by a
// restore that began to write, which then fails before writing (here: which backup is the
// newest is not known), leaves the app Failed: its volumes still hold the half-done restore.
func TestRestoreRetryThatWritesNothingStaysFailed(t *testing.T) {
	f, fb, id := backedUp(t)
	fb.corrupt = func(string, string) string { return "garbage" }
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {requestedAt: r1, restore: {requestedAt: r2, id: \""+id+"\"}}\n")
	if st := f.settle("a"); st.Phase != spec.PhaseFailed {
		t.Fatalf("a restore that does not read back: %s %s", st.Phase, st.Message)
	}
	fb.corrupt = nil
	broken := filepath.Join(f.r.Backups.Dir, "a", spec.NewBackupID(f.now.Add(time.Hour)))
	if err := os.MkdirAll(broken, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(broken, "manifest.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {requestedAt: r1, restore: {requestedAt: r3}}\n")
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "restore not done") || !strings.Contains(st.Message, "part of the restore that failed before") {
		t.Fatalf("a retry that wrote nothing: %s %q", st.Phase, st.Message)
	}
	// Named, it is carried out, and the app is Ready again.
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {requestedAt: r1, restore: {requestedAt: r4, id: \""+id+"\"}}\n")
	if st = f.settle("a"); st.Phase != spec.PhaseReady || st.LastRestore.State != spec.RunCompleted {
		t.Fatalf("the retry named: %s %q", st.Phase, st.Message)
	}
}

// TestScheduleIsUTCWhateverTheLocalZone: schedules are in UTC (README, ParseSchedule). On a
// host whose local zone is not UTC, time.Now() is in that zone, and cron's Next works in the
// zone of the time it is given: "0 12 * * *" must still mean 12:00 UTC.
func TestScheduleIsUTCWhateverTheLocalZone(t *testing.T) {
	// What time.Now() gives on a host whose zone is 2 hours east of UTC.
	now := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC).In(time.FixedZone("CEST", 2*60*60))
	st := &spec.Status{FirstDeployedAt: &now}
	next, err := nextBackup(&spec.Backup{Schedule: "0 12 * * *"}, st, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Fatalf("next backup at %s (%s UTC), want %s", next, next.UTC(), want)
	}
	next, _ = nextBackup(&spec.Backup{Schedule: "@daily"}, st, now)
	if want := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Fatalf("@daily: next backup at %s UTC, want %s", next.UTC(), want)
	}
}

// TestInterruptedScheduledBackupIsMadeAgain: "A reconciler killed during a backup lists nothing
// partial and makes the backup again" — also a scheduled one: the slot it was making is not
// counted as done, or an app on "@every 1h" goes two hours (24h: two days) without one.
func TestInterruptedScheduledBackupIsMadeAgain(t *testing.T) {
	f, fb := newBackupFixture(t, nil)
	f.writeSpec("a", "recipe: bk\nversion: 1.0.0+1\nbackup: {schedule: '@every 1h'}\n")
	seed(f, fb)
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.now = f.now.Add(61 * time.Minute)
	killedAt(f, "read volume")
	if !contains(fb.ran, "a_test_app: dump") || contains(fb.ran, "a_test_app: rm /data/dump.sql") {
		t.Fatalf("killed after the pre-hook, before its post-hook: %q", fb.ran)
	}
	if st, _ := spec.ReadStatus(f.r.StatusDir, "a"); st.LastBackup == nil || st.LastBackup.State != spec.RunRunning || st.LastBackup.Trigger != triggerSchedule {
		t.Fatalf("at the kill: %+v", st.LastBackup)
	}
	if _, err := f.r.Backups.CleanPartial(f.r.Owner); err != nil { // start-up
		t.Fatal(err)
	}
	f.now = f.now.Add(time.Minute)
	st := f.settle("a")
	list, _ := f.r.Backups.List("a")
	if len(list) != 1 || st.LastBackup == nil || st.LastBackup.State != spec.RunCompleted || !contains(fb.ran, "a_test_app: rm /data/dump.sql") {
		res, _ := f.r.Reconcile(t.Context(), "a")
		t.Fatalf("after the restart: %d backups, last %+v; next look in %v; ran %q: the interrupted scheduled backup is not made again (nor its post-hook run)", len(list), st.LastBackup, res.RequeueAfter, fb.ran)
	}
}

// TestKeepWithAClockSetBackAfterARefusedRequest: a request refused while the app was Failed
// leaves lastBackup without an ID; the next backup's ID must still sort after the newest in
// the store when the clock was set back meanwhile, or keep removes the backup just made and
// a restore of the newest takes the older one.
func TestKeepWithAClockSetBackAfterARefusedRequest(t *testing.T) {
	f, fb := newBackupFixture(t, nil)
	base := "recipe: bk\nversion: 1.0.0+1\ntimeout: 1m\n"
	f.writeSpec("a", base)
	seed(f, fb)
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.now = f.now.Add(2 * time.Hour)
	f.writeSpec("a", base+"backup: {requestedAt: r1, keep: 1}\n")
	st := f.settle("a")
	list, _ := f.r.Backups.List("a")
	if st.LastBackup == nil || st.LastBackup.State != spec.RunCompleted || len(list) != 1 {
		t.Fatalf("first backup: %+v, %d listed", st.LastBackup, len(list))
	}
	first := list[0].ID

	// The app fails; a request to it is refused (lastBackup: a failed run with no ID).
	f.engine.crashAfter = time.Second
	f.writeSpec("a", base+"env: {X: \"1\"}\nbackup: {requestedAt: r1, keep: 1}\n")
	if st = f.settleAs("a", spec.PhaseFailed, 10*time.Second, 20); st.Phase != spec.PhaseFailed {
		t.Fatalf("a crashing release: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("a", base+"env: {X: \"1\"}\nbackup: {requestedAt: r2, keep: 1}\n")
	if st = f.settle("a"); st.LastBackup == nil || st.LastBackup.ID != "" || st.LastBackup.State != spec.RunFailed {
		t.Fatalf("refused request: %+v", st.LastBackup)
	}

	// The clock is set back (an NTP step) and the app fixed; a backup is asked for.
	f.engine.crashAfter = 0
	f.now = f.now.Add(-10 * time.Minute)
	f.writeSpec("a", base+"env: {X: \"2\"}\nbackup: {requestedAt: r2, keep: 1}\n")
	if st = f.settleAs("a", spec.PhaseReady, 10*time.Second, 60); st.Phase != spec.PhaseReady {
		t.Fatalf("the fixed release: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("a", base+"env: {X: \"2\"}\nbackup: {requestedAt: r3, keep: 1}\n")
	st = f.settle("a")
	list, _ = f.r.Backups.List("a")
	if st.LastBackup == nil || st.LastBackup.State != spec.RunCompleted || len(list) != 1 || list[0].ID != st.LastBackup.ID || list[0].ID <= first {
		t.Fatalf("after the clock went back: last %+v, kept %v (first was %s): keep must remove the older backup, not the new one", st.LastBackup, idsOf(list), first)
	}
}

// TestTierRestoreInterruptedRemedy: the backup tier's restore cut short makes the app Failed,
// and the message names a remedy. Following it must not be answered "not carried out: the app
// is Failed": a restore request to it is refused (restoreRetried takes requested restores
// only), so the message must name what works: a new generation, whose tier restores again.
func TestTierRestoreInterruptedRemedy(t *testing.T) {
	f, fb := newBackupFixture(t, nil)
	f.writeSpec("a", backupTierSpec)
	seed(f, fb)
	killedAt(f, "write volume")
	st := f.settle("a")
	if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "interrupted") {
		t.Fatalf("after the tier's restore cut short: %s %s", st.Phase, st.Message)
	}
	id := st.LastRestore.ID
	if strings.Contains(st.Message, "reconciler restore a "+id) {
		f.writeSpec("a", strings.Replace(backupTierSpec, "backup:\n", "backup:\n  restore: {requestedAt: r1, id: \""+id+"\"}\n", 1))
		if st = f.settle("a"); st.LastRestore.State != spec.RunCompleted || st.Phase != spec.PhaseReady {
			t.Fatalf("the remedy the message named (`reconciler restore a %s`): %s %q", id, st.Phase, st.LastRestore.Message)
		}
		return
	}
	f.writeSpec("a", backupTierSpec+"env: {X: y}\n") // a new generation
	if st = f.settle("a"); st.Phase != spec.PhaseReady || !hasMessage(st, "restored and verified") || st.LastRestore.State != spec.RunCompleted {
		t.Fatalf("a new generation after the tier's restore cut short: %s %q stage %q restore %+v history %+v", st.Phase, st.Message, st.BackupStage, st.LastRestore, st.History)
	}
}

// TestNestedMountIsNotBackedUpThroughItsParent: a volume excluded by its label, mounted below
// another volume's target, shows inside that volume in the container. It is neither in the
// outer volume's backup nor written by its restore (backup-bot-two reads each volume at its
// own mountpoint).
func TestNestedMountIsNotBackedUpThroughItsParent(t *testing.T) {
	f, fb := newBackupFixture(t, nil)
	makeRecipeOf(t, f.r.RecipesDir, "nest", `version: "3.8"
services:
  app:
    image: echo:%s
    environment:
      MESSAGE: "hello %s"
    volumes:
      - files:/files
      - cache:/files/cache
    deploy:
      labels:
        backupbot.backup: "true"
        backupbot.backup.volumes.cache: "false"
volumes:
  files:
  cache:
`, "1.0.0+1")
	f.writeSpec("a", "recipe: nest\nversion: 1.0.0+1\n")
	seed(f, fb)
	fb.mu.Lock()
	fb.fs("a_test_app")["/files/cache/c"] = "cached"
	fb.mu.Unlock()
	if st := f.settle("a"); st.Phase != spec.PhaseReady {
		t.Fatalf("install: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("a", "recipe: nest\nversion: 1.0.0+1\nbackup: {requestedAt: r1}\n")
	if st := f.settle("a"); st.LastBackup == nil || st.LastBackup.State != spec.RunCompleted {
		t.Fatalf("backup: %+v", st.LastBackup)
	}
	list, _ := f.r.Backups.List("a")
	if len(list) != 1 || len(list[0].Volumes) != 1 {
		t.Fatalf("backups: %+v", list)
	}
	var files []string
	for _, file := range list[0].Volumes[0].Files {
		files = append(files, file.Path)
	}
	if slices.Contains(files, "cache/c") || !slices.Contains(files, "a/b.txt") || !slices.Equal(list[0].Volumes[0].Skip, []string{"cache"}) {
		t.Errorf("files of volume files: %v, skip %v; want a/b.txt, not the cache volume's cache/c", files, list[0].Volumes[0].Skip)
	}
	fb.mu.Lock()
	fb.files["a_test_app"]["/files/cache/c"] = "newer"
	fb.files["a_test_app"]["/files/a/b.txt"] = "changed"
	fb.mu.Unlock()
	f.writeSpec("a", "recipe: nest\nversion: 1.0.0+1\nbackup: {requestedAt: r1, restore: {requestedAt: r2}}\n")
	st := f.settle("a")
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if st.LastRestore == nil || st.LastRestore.State != spec.RunCompleted || fb.files["a_test_app"]["/files/a/b.txt"] != "file b" || fb.files["a_test_app"]["/files/cache/c"] != "newer" {
		t.Errorf("restore: %+v; b.txt %q, cache/c %q: want the backup's b.txt and the cache volume untouched",
			st.LastRestore, fb.files["a_test_app"]["/files/a/b.txt"], fb.files["a_test_app"]["/files/cache/c"])
	}
}

// TestInterruptedScheduledBackupIsOwedByItsField: the slot a scheduled backup was making when
// the process died is owed whatever its message says (a message is for people): the run's
// interrupted field says so; a status of before the field, by its message.
func TestInterruptedScheduledBackupIsOwedByItsField(t *testing.T) {
	started := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	finished := started.Add(time.Minute)
	for _, tc := range []struct {
		name string
		run  spec.BackupRun
		want time.Time
	}{
		{"interrupted", spec.BackupRun{Interrupted: true, Message: "cut short"}, started},
		{"a status of before the field", spec.BackupRun{Message: backupInterrupted + "; nothing of it was kept"}, started},
		{"failed otherwise", spec.BackupRun{Message: "pre-hook of app failed"}, finished.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.run
			r.Trigger, r.State, r.Started, r.Finished = triggerSchedule, spec.RunFailed, started, &finished
			next, err := nextBackup(&spec.Backup{Schedule: "@every 1h"}, &spec.Status{LastBackup: &r}, finished.Add(time.Minute))
			if err != nil || !next.Equal(tc.want) {
				t.Errorf("next backup %s (%v), want %s", next, err, tc.want)
			}
		})
	}
}

// restoreRequestedWithHooks is app a of a recipe with restore pre- and post-hooks ("maint on",
// "maint off"), Ready, backed up once (request r1), with a restore requested (r2) and not yet
// reconciled.
func restoreRequestedWithHooks(t *testing.T) (*fixture, *fakeBackup) {
	t.Helper()
	f, fb := newBackupFixture(t, nil)
	makeRecipeOf(t, f.r.RecipesDir, "bkm", maintCompose, "1.0.0+1")
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+1\n")
	seed(f, fb)
	f.settle("a")
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+1\nbackup: {requestedAt: r1}\n")
	if st := f.settle("a"); st.LastBackup == nil || st.LastBackup.State != spec.RunCompleted {
		t.Fatalf("backup: %s %s", st.Phase, st.Message)
	}
	f.writeSpec("a", "recipe: bkm\nversion: 1.0.0+1\nbackup: {requestedAt: r1, restore: {requestedAt: r2}}\n")
	return f, fb
}

// TestBackupContainerGoneMidway: the container a backup reads a volume through, or a restore
// writes one through and reads it back, ends (its task crashed or was replaced) partway. The
// run fails saying the container is gone and to ask again, not that a path is missing from the
// volume (which sends the recipe's author after a pre-hook that did its job) or that the
// restored files do not match the backup.
func TestBackupContainerGoneMidway(t *testing.T) {
	for _, tc := range []struct{ step, not string }{
		{"backup pre-hook app", "is not there"},
		{"write volume data", "does not match"},  // the next volume's write
		{"write volume files", "does not match"}, // the read-back
	} {
		t.Run(tc.step, func(t *testing.T) {
			f, fb := newBackupFixture(t, nil)
			f.writeSpec("a", backupTierSpec)
			seed(f, fb)
			gone := false
			f.r.Step = func(_ int64, a Action) {
				if a.Kind != BackupStep || !strings.HasPrefix(a.Name, tc.step) || gone {
					return
				}
				gone = true
				f.engine.mu.Lock()
				defer f.engine.mu.Unlock()
				for i, tk := range f.engine.tasks {
					if tk.Status.State == swarm.TaskStateRunning {
						f.engine.tasks[i].DesiredState = swarm.TaskStateShutdown
						f.engine.tasks[i].Status = swarm.TaskStatus{State: swarm.TaskStateFailed, Err: "task: non-zero exit (137)", Timestamp: f.now}
					}
				}
			}
			st := f.settle("a")
			t.Log(st.Message)
			if !gone {
				t.Fatalf("no step %q: the case is not reached (%s: %s)", tc.step, st.Phase, st.Message)
			}
			if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "is gone: its task ended or was replaced") || strings.Contains(st.Message, tc.not) ||
				strings.Contains(st.Message, "could not run: No such container") {
				t.Errorf("%s: %s, want Failed saying the container is gone, not %q", st.Phase, st.Message, tc.not)
			}
		})
	}
}

// TestVolumeOnlyThroughTheAppsOwnMount: a backup reads, and a restore writes, a volume only
// through a container whose task mounts the app's own volume at the volume's target. A
// service changed by hand may mount another volume there, or a directory of the host, which
// the restore would overwrite as root.
func TestVolumeOnlyThroughTheAppsOwnMount(t *testing.T) {
	own := mount.Mount{Type: mount.TypeVolume, Source: "a_test_data", Target: "/data"}
	for _, tc := range []struct {
		name   string
		mounts []mount.Mount
		want   string // "" passes
	}{
		{"the app's volume", []mount.Mount{{Type: mount.TypeVolume, Source: "a_test_files", Target: "/files"}, own}, ""},
		{"the app's volume, target written with a slash", []mount.Mount{{Type: mount.TypeVolume, Source: "a_test_data", Target: "/data/"}}, ""},
		{"a directory of the host", []mount.Mount{{Type: mount.TypeBind, Source: "/etc", Target: "/data"}}, `mounts bind "/etc" at /data, not the app's volume a_test_data`},
		{"another volume", []mount.Mount{{Type: mount.TypeVolume, Source: "other_data", Target: "/data"}}, `mounts volume "other_data" at /data`},
		{"nothing there", []mount.Mount{{Type: mount.TypeVolume, Source: "a_test_data", Target: "/srv"}}, "mounts nothing at /data"},
		{"no task's mounts known", nil, "mounts nothing at /data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &backupRunner{containers: map[string]string{"app": "c1"}, mounts: map[string][]mount.Mount{"app": tc.mounts}}
			cid, err := b.volumeContainer("app", "data", "a_test_data", "/data")
			switch {
			case tc.want == "" && (err != nil || cid != "c1"):
				t.Errorf("%q, %v; want c1", cid, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("%q, %v; want an error with %q", cid, err, tc.want)
			}
		})
	}
}
