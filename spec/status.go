package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// statusPath is <dir>/<app>.json; callers have checked app with checkFileApp.
func statusPath(dir, app string) string { return filepath.Join(dir, app+".json") }

// WriteStatus replaces <dir>/<app>.json whole: temp file in the same folder, fsync, rename,
// fsync the dir. A reader (CI polling the file) therefore sees the old or the new status,
// never half of one, and a crash after WriteStatus returns does not lose it.
// Nil lists are written as [] so that scripts can iterate them without a null check.
func WriteStatus(dir string, st *Status) error {
	if err := checkFileApp(st.App); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	out := *st
	if out.Conditions == nil {
		out.Conditions = []Condition{}
	}
	if out.Services == nil {
		out.Services = []ServiceStatus{}
	}
	if out.History == nil {
		out.History = []HistoryEntry{}
	}
	data, err := json.MarshalIndent(&out, "", "  ")
	if err != nil {
		return fmt.Errorf("write status %s: %w", st.App, err)
	}
	data = append(data, '\n')
	err = writeFileAtomic(statusPath(dir, st.App), data, 0o644)
	// The rename gives the file a new inode, which the next read would notice anyway; dropping
	// the entry also frees the old status at once, and holds even on a failed write.
	statusCache.forget(dir, st.App+".json")
	if err != nil {
		return fmt.Errorf("write status %s: %w", st.App, err)
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file that ListStatus and the spec
// scanner ignore (leading "." and ".tmp" suffix).
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename or unlink in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// ReadStatus reads <dir>/<app>.json. When it is absent the error wraps fs.ErrNotExist, so
// callers can tell "never reported" from a broken file. An unchanged file is not parsed again
// (see cache.go); the Status returned is the caller's own to change.
func ReadStatus(dir, app string) (*Status, error) {
	st, err := readStatus(dir, app, nil)
	if err != nil {
		return nil, err
	}
	return st.clone(), nil
}

// readStatus is ReadStatus without the copy: the Status is the cache's and must not be changed.
// listed is the file's fingerprint from a directory listing, or nil to stat it here.
func readStatus(dir, app string, listed *fingerprint) (*Status, error) {
	if err := checkFileApp(app); err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	st, err := statusCache.get(dir, app+".json", listed, anyStatus, parseStatus)
	if err == nil && st.App != app {
		err = &notStatusError{fmt.Errorf("it names app %q", st.App)}
	}
	if err != nil {
		var ns *notStatusError
		if errors.As(err, &ns) {
			return nil, fmt.Errorf("read status %s: %s is not a status file: %w", app, statusPath(dir, app), ns)
		}
		return nil, fmt.Errorf("read status %s: %w", app, err)
	}
	return st, nil
}

// ErrNotStatus marks a status file that was read but is not a status (edited by hand, cut short
// by a full disk under another tool, of another format): the reconciler replaces it with a
// status of the live state.
var ErrNotStatus = errors.New("not a status file")

// notStatusError marks a file that was read but is not a status, whose message says so.
type notStatusError struct{ err error }

func (e *notStatusError) Error() string        { return e.err.Error() }
func (e *notStatusError) Is(target error) bool { return target == ErrNotStatus }

// parseStatus decodes a status file. A broken file is not cached: it is rare, and the
// controller rewrites it on the app's next reconcile.
func parseStatus(data []byte) (*Status, error) {
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, &notStatusError{err}
	}
	return &st, nil
}

// anyStatus: a cached status answers every reader; unlike a spec it depends on no defaults.
func anyStatus(*Status) bool { return true }

// ListStatus reads every status file in dir, sorted by app, ignoring temporary files. A file
// that cannot be read or parsed does not hide the others: they are returned together with an
// error naming each bad file. Unchanged files are not parsed again, and the listing drops
// the cache entries of files that are gone.
func ListStatus(dir string) ([]*Status, error) {
	d, err := os.Open(dir)
	if err != nil {
		statusCache.forgetDir(dir)
		return nil, fmt.Errorf("list status %s: %w", dir, err)
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		statusCache.forgetDir(dir)
		return nil, fmt.Errorf("list status %s: %w", dir, err)
	}
	// Sorted as os.ReadDir sorts, so that errors are reported in name order.
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	var (
		out   []*Status
		errs  []error
		names = make([]string, 0, len(entries))
	)
	for _, e := range entries {
		name := e.Name()
		app, ok := strings.CutSuffix(name, ".json")
		if !ok || e.IsDir() || checkFileApp(app) != nil {
			continue
		}
		names = append(names, name)
		// The stat through the directory is the cheap one (see statAt); when it fails,
		// readStatus finds out why by reading, and reports it as ReadStatus would.
		var listed *fingerprint
		if st, err := statAt(d, name); err == nil {
			listed = &st.fp
		}
		st, err := readStatus(dir, app, listed)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) { // removed since the listing
				errs = append(errs, err)
			}
			continue
		}
		out = append(out, st.clone())
	}
	statusCache.retain(dir, names)
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out, errors.Join(errs...)
}

// Since is when the app came to be: its first deploy, or else its first recorded phase; false
// when the status says neither.
func (s *Status) Since() (time.Time, bool) {
	switch {
	case s.FirstDeployedAt != nil:
		return *s.FirstDeployedAt, true
	case len(s.History) > 0:
		return s.History[0].Time, true
	}
	return time.Time{}, false
}

// RemoveStatus deletes <dir>/<app>.json; absent is not an error, so retries are harmless.
func RemoveStatus(dir, app string) error {
	if err := checkFileApp(app); err != nil {
		return fmt.Errorf("remove status: %w", err)
	}
	err := os.Remove(statusPath(dir, app))
	statusCache.forget(dir, app+".json") // gone: free the entry now rather than at the next listing
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove status %s: %w", app, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("remove status %s: %w", app, err)
	}
	return nil
}

// SetCondition sets or replaces the condition of that type. LastTransitionTime changes only
// when Status changes, so it tells how long the app has been in its current state.
func (s *Status) SetCondition(typ, status, reason, message string, now time.Time) {
	if c := s.Condition(typ); c != nil {
		if c.Status != status {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason, c.Message = status, reason, message
		return
	}
	s.Conditions = append(s.Conditions, Condition{Type: typ, Status: status, Reason: reason, Message: message, LastTransitionTime: now})
}

// Condition returns the condition of that type, or nil. The pointer aliases s.Conditions.
func (s *Status) Condition(typ string) *Condition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == typ {
			return &s.Conditions[i]
		}
	}
	return nil
}

// tempAge is how old a temporary file must be for CleanTemp to take it for a killed writer's:
// a write in progress (a status, a spec placed by a CLI) takes milliseconds.
const tempAge = time.Minute

// CleanTemp removes the temporary files (".<name>.*.tmp") that writers killed between
// creating and renaming them left in dir, and returns their paths. Readers skip them; nothing
// else ever would remove them.
func CleanTemp(dir string, now time.Time) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".tmp") {
			continue
		}
		if fi, err := e.Info(); err != nil || now.Sub(fi.ModTime()) < tempAge {
			continue
		}
		p := filepath.Join(dir, n)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}
