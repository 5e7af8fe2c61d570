package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Place writes data as <dir>/<app>.yml atomically (a dot-named temporary file, which the
// reconciler ignores, then a rename), removing the app's other spec files so exactly one
// describes it. A watcher never sees a half-written spec.
func Place(dir, app string, data []byte) error {
	if err := ValidateAppName(app); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("place spec %s: %w", app, err)
	}
	tmp, err := os.CreateTemp(dir, "."+app+".*.tmp")
	if err != nil {
		return fmt.Errorf("place spec %s: %w", app, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("place spec %s: %w", app, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("place spec %s: %w", app, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("place spec %s: %w", app, err)
	}
	target := filepath.Join(dir, app+".yml")
	for _, ext := range []string{".yaml", ".json"} {
		if err := os.Remove(filepath.Join(dir, app+ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("place spec %s: %w", app, err)
		}
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("place spec %s: %w", app, err)
	}
	return nil
}

// Unplace removes every spec file of app; an app without one is not an error.
func Unplace(dir, app string) error {
	for _, ext := range []string{".yml", ".yaml", ".json"} {
		err := os.Remove(filepath.Join(dir, app+ext))
		specCache.forget(dir, app+ext) // gone: free the entry now rather than at the next listing
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete spec %s: %w", app, err)
		}
	}
	return nil
}
