package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// The backup store is the third on-disk record next to specs and statuses: what CI and
// operators list and restore from. Its layout is a contract:
//
//	<dir>/<app>/<id>/manifest.json   what the backup holds (BackupManifest)
//	<dir>/<app>/<id>/<volume>.tar    one archive per volume, names relative to the volume's root
//
// A backup is written under <dir>/<app>/.<id>.partial and renamed to <id> only once every
// archive and the manifest are on disk, so a listed backup is always whole; removals rename to
// .<id>.removing first for the same reason. Leftovers of a process that died are removed by
// CleanPartial at start-up. Backups hold an app's data (database dumps, keys): directories are
// 0700 and files 0600.

// ParseSchedule reads a backup schedule: a descriptor ("@every 24h", "@daily") or a
// five-field cron line, in UTC.
func ParseSchedule(s string) (cron.Schedule, error) {
	if strings.HasPrefix(strings.TrimSpace(s), "CRON_TZ=") || strings.HasPrefix(strings.TrimSpace(s), "TZ=") {
		return nil, errors.New("schedules are in UTC: drop the time zone and give the time in UTC")
	}
	if every, ok := strings.CutPrefix(strings.TrimSpace(s), "@every "); ok {
		// cron takes any interval under a second, zero and negative ones included, for one
		// second: a backup after another, hooks and all, until the disk is full.
		if d, err := time.ParseDuration(strings.TrimSpace(every)); err == nil && (d < time.Second || d%time.Second != 0) {
			return nil, fmt.Errorf("@every %s: the interval must be whole seconds, at least 1s (such as @every 24h)", strings.TrimSpace(every))
		}
	}
	// cron reads a line without a zone in the zone of the time Next is given: time.Now()'s is
	// the host's. Schedules are in UTC.
	sch, err := cron.ParseStandard("CRON_TZ=UTC " + strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("not a schedule (use \"@every 24h\", \"@daily\" or a cron line such as \"30 3 * * *\"): %w", err)
	}
	if sch.Next(time.Now()).IsZero() {
		return nil, errors.New("this schedule never comes (a date that does not exist, such as 30 February): use one that does")
	}
	return sch, nil
}

// backupIDLayout names a backup by when it began, in UTC to the millisecond, so that IDs sort
// as the backups were made.
const backupIDLayout = "20060102T150405.000Z"

var backupIDRE = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z$`)

// NewBackupID is the ID of a backup begun at t.
func NewBackupID(t time.Time) string { return t.UTC().Format(backupIDLayout) }

// NextBackupID is the ID of a backup begun at t that sorts after the backup last: IDs are the
// store's order (keep prunes the first, a restore of the newest takes the last), so a clock
// set back, or two backups begun in one millisecond, must not give a new backup an ID at or
// before the last one's. last may be empty or not an ID: then it is NewBackupID(t).
func NextBackupID(t time.Time, last string) string {
	id := NewBackupID(t)
	if !ValidBackupID(last) || id > last {
		return id
	}
	lt, err := time.Parse(backupIDLayout, last)
	if err != nil {
		return id
	}
	return NewBackupID(lt.Add(time.Millisecond))
}

// ValidBackupID reports whether id has the shape NewBackupID gives.
func ValidBackupID(id string) bool { return backupIDRE.MatchString(id) }

// BackupManifest is <id>/manifest.json: everything a restore needs to know, and what a person
// reads to know what a backup holds. It never holds a secret's value.
type BackupManifest struct {
	App      string `json:"app"`
	ID       string `json:"id"`
	Recipe   string `json:"recipe"`
	Version  string `json:"version"`
	Revision string `json:"revision"`
	Trigger  string `json:"trigger"`
	// Request is the requestedAt value a requested backup carried out.
	Request string `json:"request,omitempty"`
	// Owner is the spec directory's ID (or --owner) of the reconciler that made it: a store
	// shared by reconcilers whose apps have the same name keeps their backups apart.
	Owner string    `json:"owner,omitempty"`
	Time  time.Time `json:"time"`
	// Finished is when the last archive was written.
	Finished time.Time      `json:"finished"`
	Volumes  []VolumeBackup `json:"volumes"`
}

// Bytes and Files total the manifest's volumes.
func (m *BackupManifest) Bytes() (n int64) {
	for _, v := range m.Volumes {
		n += v.Bytes
	}
	return n
}

// Files counts the regular files of the manifest's volumes.
func (m *BackupManifest) Files() (n int) {
	for _, v := range m.Volumes {
		n += len(v.Files)
	}
	return n
}

// VolumeBackup is one volume's archive.
type VolumeBackup struct {
	// Name is the volume's key in the recipe (e.g. db-data); Full its name in the swarm.
	Name string `json:"name"`
	Full string `json:"full"`
	// Service and Target are the recipe's service it was read through, and where it mounts it.
	Service string `json:"service"`
	Target  string `json:"target"`
	// Paths are the paths read, relative to the volume's root; none: the whole volume.
	Paths []string `json:"paths,omitempty"`
	// Skip are the paths, relative to the volume's root, not read: where the service mounts
	// something else.
	Skip []string `json:"skip,omitempty"`
	// Archive is the file in the backup's directory.
	Archive string `json:"archive"`
	Bytes   int64  `json:"bytes"`
	// Files are the regular files archived, with their SHA-256, by path in the volume.
	Files []BackedUpFile `json:"files"`
}

// BackedUpFile is one regular file of a volume archive.
type BackedUpFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// BackupStore is a backup directory (--backups).
type BackupStore struct{ Dir string }

const (
	partialSuffix  = ".partial"
	removingSuffix = ".removing"
	manifestName   = "manifest.json"
)

// PendingBackup is a backup being written: invisible to List until Commit.
type PendingBackup struct {
	dir, final, owner string
}

// Begin starts backup id of app for owner (the spec directory's ID, locks.SpecDirID): only
// that owner's CleanPartial removes it, so reconcilers of several spec directories can share
// a store.
func (s BackupStore) Begin(app, id, owner string) (*PendingBackup, error) {
	if err := checkFileApp(app); err != nil {
		return nil, fmt.Errorf("begin backup: %w", err)
	}
	if !ValidBackupID(id) {
		return nil, fmt.Errorf("begin backup of %s: %q is not a backup ID", app, id)
	}
	if strings.ContainsAny(owner, `/\`) || owner == ".." { // a part of a file name: "ci..1" is one
		return nil, fmt.Errorf("begin backup of %s: owner %q cannot be part of a file name", app, owner)
	}
	appDir := filepath.Join(s.Dir, app)
	if _, err := os.Stat(appDir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(appDir, 0o700); err != nil {
			return nil, fmt.Errorf("begin backup of %s: %w (is --backups %s writable?)", app, err, s.Dir)
		}
		// Commit syncs the app's folder; the folder itself, an app's first backup, must
		// survive a crash too.
		if err := syncDir(s.Dir); err != nil {
			return nil, fmt.Errorf("begin backup of %s: %w", app, err)
		}
	}
	tmp := filepath.Join(appDir, "."+id+"."+owner+partialSuffix)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("begin backup %s of %s: %w", id, app, err)
	}
	return &PendingBackup{dir: tmp, final: filepath.Join(appDir, id), owner: owner}, nil
}

// Create opens a new file of the backup for writing; name is a plain file name.
func (p *PendingBackup) Create(name string) (*os.File, error) {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") || name == manifestName {
		return nil, fmt.Errorf("backup file %q: not a plain file name", name)
	}
	return os.OpenFile(filepath.Join(p.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// Commit writes the manifest, makes every file durable, and only then gives the backup its
// name: from that moment on it is listed.
func (p *PendingBackup) Commit(m *BackupManifest) error {
	m.Owner = p.owner
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("commit backup %s: %w", m.ID, err)
	}
	for _, v := range m.Volumes {
		if err := syncFile(filepath.Join(p.dir, v.Archive)); err != nil {
			return fmt.Errorf("commit backup %s: %w", m.ID, err)
		}
	}
	if err := writeFileAtomic(filepath.Join(p.dir, manifestName), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("commit backup %s: %w", m.ID, err)
	}
	if err := os.Rename(p.dir, p.final); err != nil {
		return fmt.Errorf("commit backup %s: %w", m.ID, err)
	}
	return syncDir(filepath.Dir(p.final))
}

// Abort removes what was written of the backup.
func (p *PendingBackup) Abort() error { return os.RemoveAll(p.dir) }

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// List returns the complete backups of app, oldest first; none is not an error.
func (s BackupStore) List(app string) ([]*BackupManifest, error) {
	if err := checkFileApp(app); err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(s.Dir, app))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list backups of %s: %w", app, err)
	}
	var (
		out  []*BackupManifest
		errs []error
	)
	for _, e := range entries {
		if !e.IsDir() || !ValidBackupID(e.Name()) {
			continue
		}
		m, err := s.Manifest(app, e.Name())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *BackupManifest) int { return strings.Compare(a.ID, b.ID) })
	return out, errors.Join(errs...)
}

// ListOf returns the complete backups of app that owner made, oldest first, with those made
// before manifests named their owner: what a restore of the newest and `keep` consider.
func (s BackupStore) ListOf(app, owner string) ([]*BackupManifest, error) {
	list, err := s.List(app)
	return slices.DeleteFunc(list, func(m *BackupManifest) bool { return m.Owner != "" && m.Owner != owner }), err
}

// Apps lists the apps that have a folder in the store.
func (s BackupStore) Apps() ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list backups %s: %w", s.Dir, err)
	}
	var apps []string
	for _, e := range entries {
		if e.IsDir() && checkFileApp(e.Name()) == nil {
			apps = append(apps, e.Name())
		}
	}
	return apps, nil
}

// Manifest reads backup id of app.
func (s BackupStore) Manifest(app, id string) (*BackupManifest, error) {
	if err := checkFileApp(app); err != nil {
		return nil, fmt.Errorf("read backup: %w", err)
	}
	if !ValidBackupID(id) {
		return nil, fmt.Errorf("read backup of %s: %q is not a backup ID: `reconciler backups %s` lists them", app, id, app)
	}
	data, err := os.ReadFile(filepath.Join(s.Dir, app, id, manifestName))
	if err != nil {
		return nil, fmt.Errorf("read backup %s of %s: %w", id, app, err)
	}
	var m BackupManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read backup %s of %s: %s is not a backup manifest: %w", id, app, manifestName, err)
	}
	return &m, nil
}

// Open opens a file of backup id of app for reading.
func (s BackupStore) Open(app, id, name string) (*os.File, error) {
	if checkFileApp(app) != nil || !ValidBackupID(id) || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("open backup file %s/%s/%s: not a backup file", app, id, name)
	}
	return os.Open(filepath.Join(s.Dir, app, id, name))
}

// Prune removes the oldest complete backups of app that owner made beyond the newest keep
// (ListOf), and returns the IDs it removed.
func (s BackupStore) Prune(app, owner string, keep int) ([]string, error) {
	list, err := s.ListOf(app, owner)
	if err != nil || keep <= 0 || len(list) <= keep {
		return nil, err
	}
	var removed []string
	for _, m := range list[:len(list)-keep] {
		dir := filepath.Join(s.Dir, app, m.ID)
		gone := filepath.Join(s.Dir, app, "."+m.ID+removingSuffix)
		if err := os.Rename(dir, gone); err != nil {
			return removed, fmt.Errorf("remove backup %s of %s: %w", m.ID, app, err)
		}
		if err := os.RemoveAll(gone); err != nil {
			return removed, fmt.Errorf("remove backup %s of %s: %w", m.ID, app, err)
		}
		removed = append(removed, m.ID)
	}
	return removed, syncDir(filepath.Join(s.Dir, app))
}

// partialOf reports whether n is the name of a backup being written by owner: exactly
// .<id>.<owner>.partial, so that owner "ci" does not take "x.ci"'s for its own.
func partialOf(n, owner string) bool {
	rest, ok := strings.CutPrefix(n, ".")
	if !ok {
		return false
	}
	if rest, ok = strings.CutSuffix(rest, "."+owner+partialSuffix); !ok {
		return false
	}
	return ValidBackupID(rest)
}

// CleanPartial removes what processes of owner that died left of backups being written, and
// what any process left of backups being removed, and returns their paths. Only the process
// holding owner's spec-directory lock may call it: no other is writing owner's backups.
func (s BackupStore) CleanPartial(owner string) ([]string, error) {
	all, err := s.Apps()
	if err != nil {
		return nil, err
	}
	var (
		removed []string
		errs    []error
	)
	for _, app := range all {
		entries, err := os.ReadDir(filepath.Join(s.Dir, app))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range entries {
			n := e.Name()
			if !partialOf(n, owner) && !(strings.HasPrefix(n, ".") && strings.HasSuffix(n, removingSuffix)) {
				continue
			}
			p := filepath.Join(s.Dir, app, n)
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, p)
		}
	}
	return removed, errors.Join(errs...)
}
