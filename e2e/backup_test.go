package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/klauspost/compress/zstd"
)

// The tests in this file are the e2e evidence of issue 12: backups and restores on the
// recipes' backup-bot-two labels, through the Engine API, on a real swarm.

// shellImage is the echo image with Debian's static busybox installed as /bin/sh and its
// applets: hooks and checks run `/bin/sh -c` in the app's containers.
const shellImage = "swarm-reconciler-e2e/shell:1"

var (
	shellOnce sync.Once
	shellErr  error
)

// needShellImage builds shellImage once per run, FROM the echo image this run built.
func needShellImage(t testing.TB) {
	t.Helper()
	shellOnce.Do(func() { shellErr = buildShellImage(context.Background()) })
	if shellErr != nil {
		t.Fatalf("build %s: %v", shellImage, shellErr)
	}
}

func buildShellImage(ctx context.Context) error {
	return buildShellImageOn(ctx, suite.docker)
}

// buildShellImageOn builds shellImage on one engine, FROM the echo image built there.
func buildShellImageOn(ctx context.Context, docker *client.Client) error {
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("%w: install Debian's busybox-static (scripts/swarm-up does)", err)
	}
	return buildImage(ctx, docker, shellImage, []contextFile{
		{"Dockerfile", 0o644, []byte("FROM " + echoImage + "\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n")},
		{"busybox", 0o755, busybox},
	})
}

// makeBackupRecipe makes bonfire's postgres pattern in small: db's pre-hook dumps its data
// onto db-data, whose backup is limited to the dump (backup.sql); its cache volume is
// excluded; app's files volume is backed up whole, but for the excluded scratch volume it
// mounts inside it. db's restore post-hook loads the dump.
// ${PRE_HOOK} replaces db's pre-hook. db has a generated secret, db_password.
func makeBackupRecipe(t testing.TB, h *harness, name string) {
	t.Helper()
	needShellImage(t)
	makeEchoRecipe(t, h, name, "ENABLE_BACKUPS=true\nPRE_HOOK=cat /var/lib/db/data > /var/lib/db/backup.sql\nSECRET_DB_PASSWORD_VERSION=v1\n", fmt.Sprintf(`services:
  app:
    image: %[1]s
    environment:
      - MESSAGE=hello from %[2]s
      - PORT=8080
    volumes:
      - files:/files
      - scratch:/files/scratch
    deploy:
      labels:
        - "coop-cloud.${STACK_NAME}.version=%[3]s"
        - "backupbot.backup=${ENABLE_BACKUPS:-true}"
        - "backupbot.backup.volumes.scratch=false"
  db:
    image: %[1]s
    environment:
      - MESSAGE=db
      - PORT=8080
    volumes:
      - db-data:/var/lib/db
      - cache:/cache
    secrets:
      - db_password
    deploy:
      labels:
        backupbot.backup: "${ENABLE_BACKUPS:-true}"
        backupbot.backup.pre-hook: "${PRE_HOOK}"
        backupbot.backup.post-hook: "rm -f /var/lib/db/backup.sql; echo post > /var/lib/db/post-hook-ran"
        backupbot.backup.volumes.db-data.path: "backup.sql"
        backupbot.backup.volumes.cache: "false"
        backupbot.restore.post-hook: "cp /var/lib/db/backup.sql /var/lib/db/data && rm /var/lib/db/backup.sql"
volumes:
  files:
  scratch:
  db-data:
  cache:
secrets:
  db_password:
    external: true
    name: ${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION}
`, shellImage, name, miniRelease), nil)
}

// backupStatus is the part of the status a backup test reads.
type backupStatus struct {
	Phase       string   `json:"phase"`
	Message     string   `json:"message"`
	BackupStage string   `json:"backupStage"`
	LastBackup  *backRun `json:"lastBackup"`
	LastRestore *backRun `json:"lastRestore"`
	History     []struct {
		Phase   string `json:"phase"`
		Message string `json:"message"`
	} `json:"history"`
}

type backRun struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Files int    `json:"files"`
	Hooks []struct {
		Service  string   `json:"service"`
		Hook     string   `json:"hook"`
		ExitCode int      `json:"exitCode"`
		Output   []string `json:"output"`
	} `json:"hooks"`
	Message string `json:"message"`
}

func (r *backRun) hook(service, hook string) (int, bool) {
	if r == nil {
		return 0, false
	}
	for _, h := range r.Hooks {
		if h.Service == service && h.Hook == hook {
			return h.ExitCode, true
		}
	}
	return 0, false
}

func readBackupStatus(t testing.TB, s appStatus) backupStatus {
	t.Helper()
	var b backupStatus
	if err := json.Unmarshal(s.raw, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// backupManifest is the part of a backup's manifest.json a test reads.
type backupManifest struct {
	ID      string `json:"id"`
	Volumes []struct {
		Name    string `json:"name"`
		Archive string `json:"archive"`
		Files   []struct {
			Path string `json:"path"`
		} `json:"files"`
	} `json:"volumes"`
}

func (h *harness) listBackups(app string) []backupManifest {
	h.t.Helper()
	r := h.cli(30*time.Second, "backups", app, "-o", "json")
	if r.code != 0 {
		h.t.Fatalf("backups: %s", r)
	}
	var list []backupManifest
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		h.t.Fatalf("backups -o json: %v\n%s", err, r)
	}
	return list
}

const backupChecks = `tier: backup
backup:
  checks:
    beforeBackup:
      - {service: app, run: "echo m1 > /files/marker && mkdir -p /files/sub && echo deep > /files/sub/f && echo s1 > /files/scratch/s"}
      - {service: db, run: "echo rows > /var/lib/db/data && echo pw=$(cat /run/secrets/db_password) >> /var/lib/db/data && echo junk > /var/lib/db/other && echo c > /cache/c && echo the password is $(cat /run/secrets/db_password)"}
    beforeRestore:
      - {service: app, run: "rm /files/marker && echo s2 > /files/scratch/s"}
      - {service: db, run: "rm /var/lib/db/data"}
    afterRestore:
      - {service: app, run: "grep -qx m1 /files/marker && grep -qx s2 /files/scratch/s"}
      - {service: db, run: "grep -qx rows /var/lib/db/data"}`

// TestBackupTier: tier backup goes Ready only after a backup and a restore of it: the archive
// of the path-limited volume holds exactly the dump, the excluded volume is not in the backup,
// the marker removed before the restore is back after it, the restore post-hook ran, and the
// backup outlives the app's teardown.
func TestBackupTier(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	makeBackupRecipe(t, h, "e2e-backup")
	a := h.newApp("bk")
	st := h.waitPhase(a.name, h.writeSpec(a.name, a.specOf("e2e-backup", miniRelease, backupChecks)), "Ready")
	b := readBackupStatus(t, st)
	if b.BackupStage != "done" || b.LastBackup == nil || b.LastBackup.State != "Completed" || b.LastRestore == nil || b.LastRestore.State != "Completed" {
		t.Fatalf("Ready without the backup tier done:\n%s", st)
	}
	var phases []string
	for _, e := range b.History {
		phases = append(phases, e.Phase+": "+e.Message)
	}
	if !slices.ContainsFunc(phases, func(s string) bool { return strings.Contains(s, "restored and verified") }) {
		t.Errorf("history does not say the backup was restored and verified:\n%s", strings.Join(phases, "\n"))
	}
	if code, ok := b.LastRestore.hook("db", "restore post-hook"); !ok || code != 0 {
		t.Errorf("restore post-hook: ran %v, exit %d", ok, code)
	}
	if code, ok := b.LastBackup.hook("db", "backup post-hook"); !ok || code != 0 {
		t.Errorf("backup post-hook: ran %v, exit %d", ok, code)
	}

	list := h.listBackups(a.name)
	if len(list) != 1 || list[0].ID != b.LastBackup.ID {
		t.Fatalf("backups listed: %+v, want the one of lastBackup %s", list, b.LastBackup.ID)
	}
	got := map[string][]string{}
	for _, v := range list[0].Volumes {
		for _, f := range v.Files {
			got[v.Name] = append(got[v.Name], f.Path)
		}
		names := archiveEntries(t, filepath.Join(h.backups, a.name, list[0].ID, v.Archive))
		if v.Name == "db-data" && !slices.Equal(names, []string{"backup.sql"}) {
			t.Errorf("db-data archive holds %v, want exactly backup.sql", names)
		}
	}
	want := map[string][]string{"db-data": {"backup.sql"}, "files": {"marker", "sub/f"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("backed up %v, want %v (db-data limited to backup.sql, cache excluded, scratch inside files excluded)", got, want)
	}

	// The generated secret is in the data (the check wrote it there), and nowhere else: not in
	// the manifest, the status (the check printed it: redacted) or the log.
	dump := archiveFile(t, filepath.Join(h.backups, a.name, list[0].ID, "db-data.tar.zst"), "backup.sql")
	_, password, _ := strings.Cut(dump, "pw=")
	password = strings.TrimSpace(password)
	if len(password) < 16 {
		t.Fatalf("no password in the dump %q", dump)
	}
	manifest, err := os.ReadFile(filepath.Join(h.backups, a.name, list[0].ID, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(h.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"manifest": string(manifest), "status": string(st.raw), "log": string(log)} {
		if strings.Contains(text, password) {
			t.Errorf("the generated secret's value is in the %s", what)
		}
	}
	if !strings.Contains(string(st.raw), "the password is [redacted]") {
		t.Errorf("the check's output is not in the status, redacted:\n%s", st)
	}

	h.deleteSpec(a.name)
	if _, err := h.waitDeleted(a.name); err != nil {
		t.Fatal(err)
	}
	if after := h.listBackups(a.name); len(after) != 1 {
		t.Errorf("after teardown %d backups, want the 1 kept", len(after))
	}
}

// archiveFile is the content of file name in the tar archive at path.
func archiveFile(t testing.TB, path, name string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(unzstd(t, f))
	for {
		hd, err := tr.Next()
		if err != nil {
			t.Fatalf("%s in %s: %v", name, path, err)
		}
		if hd.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}

// unzstd decompresses a volume archive (tar.zst), as `zstd -d` would.
func unzstd(t testing.TB, r io.Reader) io.Reader {
	t.Helper()
	zr, err := zstd.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(zr.Close)
	return zr
}

func archiveEntries(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(unzstd(t, f))
	for {
		hd, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hd.Name)
	}
}

// TestBackupFailures: a pre-hook that fails is Failed naming the service, the command, the
// exit code and its last output, its post-hook still ran, and no backup is listed; an
// afterRestore check that fails is Failed saying so.
func TestBackupFailures(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	makeBackupRecipe(t, h, "e2e-backup-fail")
	t.Run("pre-hook", func(t *testing.T) {
		a := h.newApp("bkf")
		pre := `echo dumping; echo "pg_dump: connection refused" >&2; exit 3`
		body := a.specOf("e2e-backup-fail", miniRelease, backupChecks)
		body = bytes.Replace(body, []byte("env:\n  PORT"), []byte(fmt.Sprintf("env:\n  PRE_HOOK: %q\n  PORT", pre)), 1)
		st := h.waitPhase(a.name, h.writeSpec(a.name, body), "Failed")
		for _, w := range []string{"backup pre-hook in service db", pre, "exited 3", "connection refused"} {
			if !strings.Contains(st.Message, w) {
				t.Errorf("message lacks %q:\n%s", w, st.Message)
			}
		}
		b := readBackupStatus(t, st)
		if code, ok := b.LastBackup.hook("db", "backup post-hook"); !ok || code != 0 {
			t.Errorf("post-hook after the failed pre-hook: ran %v, exit %d\n%s", ok, code, st)
		}
		if list := h.listBackups(a.name); len(list) != 0 {
			t.Errorf("a failed backup is listed: %+v", list)
		}
		if left, _ := filepath.Glob(filepath.Join(h.backups, a.name, ".*")); len(left) != 0 {
			t.Errorf("leftovers of the failed backup: %v", left)
		}
	})
	t.Run("afterRestore", func(t *testing.T) {
		a := h.newApp("bkr")
		checks := strings.Replace(backupChecks, `grep -qx rows /var/lib/db/data`, `grep -qx other-rows /var/lib/db/data`, 1)
		st := h.waitPhase(a.name, h.writeSpec(a.name, a.specOf("e2e-backup-fail", miniRelease, checks)), "Failed")
		for _, w := range []string{"restore of backup", "check afterRestore[1] in service db", "exited 1"} {
			if !strings.Contains(st.Message, w) {
				t.Errorf("message lacks %q:\n%s", w, st.Message)
			}
		}
	})
}

// backupStepLine matches the log line of a step of an install ("applied") or of a backup or
// restore ("backup step"): the steps the fault injection counts.
var backupStepLine = regexp.MustCompile(`\t(applied|backup step)\t`)

func (h *harness) backupSteps(offset int64, app string) []string {
	h.t.Helper()
	var steps []string
	for _, line := range h.recLogSince(offset) {
		if backupStepLine.MatchString(line) && strings.Contains(line, `"`+app+`"`) {
			steps = append(steps, line)
		}
	}
	return steps
}

// TestKillAtEveryBackupStep: a reconciler SIGKILLed right after each step of the backup tier's
// backup and restore in turn (a check, a hook, a volume read or written, the commit), then
// started again, never lists a partial backup, removes the leftovers at start-up, and ends
// Ready with exactly one backup (the request carried out once) or, when a restore was cut
// short, Failed saying the restore was interrupted.
func TestKillAtEveryBackupStep(t *testing.T) {
	t.Parallel()
	ref := newHarness(t)
	makeBackupRecipe(t, ref, "e2e-backup-kill")
	a := ref.newApp("bkref")
	offset := ref.recLogSize()
	ref.start()
	ref.waitPhase(a.name, ref.writeSpec(a.name, a.specOf("e2e-backup-kill", miniRelease, backupChecks)), "Ready")
	steps := ref.backupSteps(offset, a.name)
	first := slices.IndexFunc(steps, func(l string) bool { return strings.Contains(l, "\tbackup step\t") })
	if first < 0 {
		t.Fatalf("the clean run logged no backup step:\n%s", strings.Join(steps, "\n"))
	}
	t.Logf("clean run: %d steps, the backup's from %d:\n%s", len(steps), first+1, strings.Join(steps, "\n"))
	restoreFrom := slices.IndexFunc(steps, func(l string) bool { return strings.Contains(l, "beforeRestore") })
	commitAt := slices.IndexFunc(steps, func(l string) bool { return strings.Contains(l, `"step": "commit `) })
	if commitAt < 0 {
		t.Fatalf("the clean run logged no commit step:\n%s", strings.Join(steps, "\n"))
	}

	for k := first + 1; k <= len(steps); k++ {
		t.Run(fmt.Sprintf("step%d", k), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			makeBackupRecipe(t, h, "e2e-backup-kill")
			a := h.newApp(fmt.Sprintf("bkk%d", k))
			var gen string
			died := h.recKilled(k, 0, func() {
				gen = h.writeSpec(a.name, a.specOf("e2e-backup-kill", miniRelease, backupChecks))
			})
			t.Logf("killed: %s", died)
			// Listed only once committed, and then whole: every archive there, read to its end.
			want := 0
			if k > commitAt {
				want = 1
			}
			list := h.listBackups(a.name)
			if len(list) != want {
				t.Errorf("killed after step %d (the commit is step %d): %d backups listed, want %d", k, commitAt+1, len(list), want)
			}
			for _, b := range list {
				for _, v := range b.Volumes {
					archiveEntries(t, filepath.Join(h.backups, a.name, b.ID, v.Archive))
				}
			}
			h.start()
			s := h.waitPhase(a.name, gen, "Ready", "Failed")
			inRestore := restoreFrom >= 0 && k > restoreFrom
			switch {
			case s.Phase == "Ready":
				if list := h.listBackups(a.name); len(list) != 1 {
					t.Errorf("Ready with %d backups, want exactly 1", len(list))
				}
			case !inRestore || !strings.Contains(s.Message, "restore interrupted: the reconciler stopped during the restore"):
				t.Errorf("killed at step %d (restore from step %d): %s, want Ready or, in the restore, Failed saying it was interrupted", k, restoreFrom+1, s)
			}
			if left, _ := filepath.Glob(filepath.Join(h.backups, a.name, ".*")); len(left) != 0 {
				t.Errorf("leftovers after the restart: %v", left)
			}
		})
	}
}

// TestBackupRequestsAndSchedule: `reconciler backup --wait` and `reconciler restore --wait` on
// a live app carry out one run each and exit 0; a schedule of a few seconds makes backups while
// the app lives, keep: 2 leaves the newest two, and the backups stop, and stay, once the app is
// deleted.
func TestBackupRequestsAndSchedule(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	makeBackupRecipe(t, h, "e2e-backup-req")
	a := h.newApp("bkq")
	body := a.specOf("e2e-backup-req", miniRelease)
	body = bytes.Replace(body, []byte("env:\n  PORT"), []byte("env:\n  PRE_HOOK: \"echo rows >> /var/lib/db/data; cp /var/lib/db/data /var/lib/db/backup.sql\"\n  PORT"), 1)
	h.waitPhase(a.name, h.writeSpec(a.name, body), "Ready")

	r := h.cli(phaseDeadline, "backup", a.name, "--wait")
	if r.code != 0 || !strings.Contains(r.stdout, "completed") {
		t.Fatalf("backup --wait: %s", r)
	}
	list := h.listBackups(a.name)
	if len(list) != 1 {
		t.Fatalf("%d backups after one request", len(list))
	}
	r = h.cli(phaseDeadline, "restore", a.name, list[0].ID, "--wait")
	if r.code != 0 || !strings.Contains(r.stdout, "restore "+list[0].ID+" completed") {
		t.Fatalf("restore --wait: %s", r)
	}
	if r = h.cli(30*time.Second, "restore", a.name, "20200101T000000.000Z"); r.code == 0 {
		t.Errorf("restore of a backup that does not exist: %s", r)
	}

	// A schedule of 3s with keep 2.
	body, err := os.ReadFile(h.specPath(a.name))
	if err != nil {
		t.Fatal(err)
	}
	body = bytes.Replace(body, []byte("backup:\n"), []byte("backup:\n  schedule: \"@every 3s\"\n  keep: 2\n"), 1)
	gen := h.writeSpec(a.name, body)
	seen := map[string]bool{}
	if _, err := h.awaitStatus(a.name, "three scheduled backups", func(s appStatus) (bool, string) {
		if s.ObservedGeneration != gen {
			return false, ""
		}
		if b := readBackupStatus(t, s); b.LastBackup != nil && b.LastBackup.State == "Completed" && b.LastBackup.ID != list[0].ID {
			seen[b.LastBackup.ID] = true
		}
		return len(seen) >= 3, ""
	}); err != nil {
		t.Fatal(err)
	}
	kept := h.listBackups(a.name)
	if len(kept) != 2 {
		t.Fatalf("keep: 2 left %d backups", len(kept))
	}

	h.deleteSpec(a.name)
	if _, err := h.waitDeleted(a.name); err != nil {
		t.Fatal(err)
	}
	before := h.listBackups(a.name)
	time.Sleep(7 * time.Second) // two periods of the schedule: nothing may happen in them
	after := h.listBackups(a.name)
	if len(before) != 2 || fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("backups after the app's deletion: %d then %d (%v -> %v), want the 2 kept, unchanged", len(before), len(after), before, after)
	}
}
