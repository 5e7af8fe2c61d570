package spec

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeBackup(t *testing.T, s BackupStore, app, id string, commit bool) {
	t.Helper()
	writeBackupOf(t, s, app, id, "o1", commit)
}

func writeBackupOf(t *testing.T, s BackupStore, app, id, owner string, commit bool) {
	t.Helper()
	p, err := s.Begin(app, id, owner)
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.Create("data.tar")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, "archive "+id); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !commit {
		return
	}
	m := &BackupManifest{App: app, ID: id, Volumes: []VolumeBackup{{Name: "data", Archive: "data.tar", Bytes: 3, Files: []BackedUpFile{{Path: "a", Size: 3}}}}}
	if err := p.Commit(m); err != nil {
		t.Fatal(err)
	}
}

func TestBackupStoreListsOnlyWholeBackups(t *testing.T) {
	s := BackupStore{Dir: t.TempDir()}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ids := []string{NewBackupID(t0.Add(2 * time.Second)), NewBackupID(t0), NewBackupID(t0.Add(time.Second))}
	for _, id := range ids {
		writeBackup(t, s, "app", id, true)
	}
	writeBackup(t, s, "app", NewBackupID(t0.Add(time.Hour)), false) // a process died mid-way
	list, err := s.List("app")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range list {
		got = append(got, m.ID)
	}
	if want := []string{ids[1], ids[2], ids[0]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %v, want %v (oldest first, no partial)", got, want)
	}
	if list[0].Files() != 1 || list[0].Bytes() != 3 {
		t.Errorf("totals = %d files %d bytes, want 1 and 3", list[0].Files(), list[0].Bytes())
	}
	f, err := s.Open("app", ids[0], "data.tar")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(f)
	f.Close()
	if string(data) != "archive "+ids[0] {
		t.Errorf("archive = %q", data)
	}
	for _, bad := range []string{"../x", ".hidden", "manifest.json/.."} {
		if _, err := s.Open("app", ids[0], bad); err == nil && bad != "manifest.json/.." {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}

	if removed, _ := s.CleanPartial("o2"); len(removed) != 0 {
		t.Fatalf("CleanPartial of another owner removed %v", removed)
	}
	removed, err := s.CleanPartial("o1")
	if err != nil || len(removed) != 1 || !strings.HasSuffix(removed[0], ".partial") {
		t.Fatalf("CleanPartial = %v, %v; want the one partial", removed, err)
	}
	pruned, err := s.Prune("app", "o1", 2)
	if err != nil || !reflect.DeepEqual(pruned, []string{ids[1]}) {
		t.Fatalf("Prune(2) = %v, %v; want the oldest", pruned, err)
	}
	entries, _ := os.ReadDir(filepath.Join(s.Dir, "app"))
	if len(entries) != 2 {
		t.Errorf("left %d entries, want the 2 kept", len(entries))
	}
	if list, _ := s.List("none"); len(list) != 0 {
		t.Errorf("List of an app without backups = %v", list)
	}
}

func TestBackupStorePermissions(t *testing.T) {
	s := BackupStore{Dir: t.TempDir()}
	id := NewBackupID(time.Now())
	writeBackup(t, s, "app", id, true)
	for _, p := range []string{filepath.Join(s.Dir, "app"), filepath.Join(s.Dir, "app", id)} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, %v; want 0700 (backups hold app data)", p, fi.Mode().Perm(), err)
		}
	}
	for _, n := range []string{"data.tar", "manifest.json"} {
		if fi, err := os.Stat(filepath.Join(s.Dir, "app", id, n)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", n, fi.Mode().Perm(), err)
		}
	}
}

func TestBackupID(t *testing.T) {
	id := NewBackupID(time.Date(2026, 12, 1, 10, 0, 1, 5e6, time.FixedZone("x", 3600)))
	if id != "20261201T090001.005Z" || !ValidBackupID(id) {
		t.Errorf("NewBackupID = %q", id)
	}
	t0 := time.Date(2026, 12, 1, 10, 0, 1, 5e6, time.UTC)
	for _, tt := range []struct{ last, want string }{
		{"", "20261201T100001.005Z"},
		{"not an id", "20261201T100001.005Z"},
		{"20261201T100001.004Z", "20261201T100001.005Z"}, // the clock moved on
		{"20261201T100001.005Z", "20261201T100001.006Z"}, // the same millisecond
		{"20261201T110000.000Z", "20261201T110000.001Z"}, // the clock set back an hour
		{"20261231T235959.999Z", "20270101T000000.000Z"},
	} {
		if got := NextBackupID(t0, tt.last); got != tt.want || !ValidBackupID(got) {
			t.Errorf("NextBackupID(%v, %q) = %q, want %q", t0, tt.last, got, tt.want)
		}
	}
	for _, bad := range []string{"", "latest", "../20261201T090001.005Z", "20261201T090001Z"} {
		if ValidBackupID(bad) {
			t.Errorf("ValidBackupID(%q) = true", bad)
		}
	}
}

// TestPartialOf: a start-up removes only its own owner's backups being written; an owner
// whose name ends like another's ("x.ci" and "ci") is not taken for it.
func TestPartialOf(t *testing.T) {
	for _, tc := range []struct {
		name, owner string
		want        bool
	}{
		{".20261203T165841.312Z.ci.partial", "ci", true},
		{".20261203T165841.312Z.x.ci.partial", "ci", false},
		{".20261203T165841.312Z.x.ci.partial", "x.ci", true},
		{".20261203T165841.312Z.ci.partial", "x.ci", false},
		{"20261203T165841.312Z.ci.partial", "ci", false},
		{".not-an-id.ci.partial", "ci", false},
		{".20261203T165841.312Z.removing", "ci", false},
	} {
		if got := partialOf(tc.name, tc.owner); got != tc.want {
			t.Errorf("partialOf(%q, %q) = %v, want %v", tc.name, tc.owner, got, tc.want)
		}
	}
}

// TestBackupStoreKeepsOwnersApart: reconcilers of two spec directories with an app of the same
// name share the store's folder of that name; each one's keep and newest backup are its own
// (and a backup made before manifests named their owner counts for both).
func TestBackupStoreKeepsOwnersApart(t *testing.T) {
	s := BackupStore{Dir: t.TempDir()}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	id := func(i int) string { return NewBackupID(t0.Add(time.Duration(i) * time.Second)) }
	writeBackupOf(t, s, "a", id(0), "", true) // made before manifests named their owner
	writeBackupOf(t, s, "a", id(1), "o1", true)
	writeBackupOf(t, s, "a", id(2), "o1", true)
	writeBackupOf(t, s, "a", id(3), "o2", true)
	writeBackupOf(t, s, "a", id(4), "o2", true)
	ids := func(list []*BackupManifest) (out []string) {
		for _, m := range list {
			out = append(out, m.ID)
		}
		return out
	}
	if list, err := s.ListOf("a", "o1"); err != nil || !reflect.DeepEqual(ids(list), []string{id(0), id(1), id(2)}) {
		t.Fatalf("ListOf o1 = %v, %v", ids(list), err)
	}
	pruned, err := s.Prune("a", "o2", 1)
	if err != nil || !reflect.DeepEqual(pruned, []string{id(0), id(3)}) {
		t.Fatalf("Prune o2 keep 1 = %v, %v; want the ownerless one and o2's older", pruned, err)
	}
	if list, _ := s.List("a"); !reflect.DeepEqual(ids(list), []string{id(1), id(2), id(4)}) {
		t.Fatalf("left %v: o1's backups must stay", ids(list))
	}
}

// TestBeginStaysInTheStore: an owner that is a path does not take a backup being written out
// of the store.
func TestBeginStaysInTheStore(t *testing.T) {
	store := BackupStore{Dir: filepath.Join(t.TempDir(), "backups")}
	for _, owner := range []string{"/../../../outside", "a/b", ".."} {
		if p, err := store.Begin("a", NewBackupID(time.Now()), owner); err == nil {
			t.Errorf("owner %q: began at %s", owner, p.dir)
		}
	}
	for _, owner := range []string{"0123abcd", "ci..1"} { // what --owner takes
		if _, err := store.Begin("a", NewBackupID(time.Now()), owner); err != nil {
			t.Errorf("owner %q's backup: %v", owner, err)
		}
	}
}
