package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	if err := writeFileAtomic(statusPath(dir, st.App), data, 0o644); err != nil {
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
// callers can tell "never reported" from a broken file.
func ReadStatus(dir, app string) (*Status, error) {
	if err := checkFileApp(app); err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	path := statusPath(dir, app)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read status %s: %w", app, err)
	}
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read status %s: %s is not a status file: %w", app, path, err)
	}
	return &st, nil
}

// ListStatus reads every status file in dir, sorted by app, ignoring temporary files. A file
// that cannot be read or parsed does not hide the others: they are returned together with an
// error naming each bad file.
func ListStatus(dir string) ([]*Status, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list status %s: %w", dir, err)
	}
	var (
		out  []*Status
		errs []error
	)
	for _, e := range entries {
		name := e.Name()
		app, ok := strings.CutSuffix(name, ".json")
		if !ok || e.IsDir() || checkFileApp(app) != nil {
			continue
		}
		st, err := ReadStatus(dir, app)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) { // removed since ReadDir
				errs = append(errs, err)
			}
			continue
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out, errors.Join(errs...)
}

// RemoveStatus deletes <dir>/<app>.json; absent is not an error, so retries are harmless.
func RemoveStatus(dir, app string) error {
	if err := checkFileApp(app); err != nil {
		return fmt.Errorf("remove status: %w", err)
	}
	if err := os.Remove(statusPath(dir, app)); err != nil {
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
