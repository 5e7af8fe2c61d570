package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// editLockName is the file in a spec directory whose flock the commands that edit specs (apply,
// delete, backup and restore requests) hold while they edit (lockEdits): a request reads the
// spec, adds to it and writes it back, and an apply or delete landing in between would be
// undone. Its name is a dotfile, which the reconciler ignores.
const editLockName = ".edits.lock"

// removeOther removes one of the app's other spec files in Place: a variable so that a test
// can look at the directory at that moment.
var removeOther = os.Remove

// Place writes data as <dir>/<app>.yml atomically (a dot-named temporary file, which the
// reconciler ignores, then a rename), then removes the app's other spec files (.yaml, .json)
// so exactly one describes it. A watcher never sees a half-written spec, and never sees the
// app without one: the rename comes first, so at worst it briefly sees two files of the app,
// which is an Invalid that touches nothing deployed; removing first would tear the app down.
func Place(dir, app string, data []byte) error {
	if err := ValidateAppName(app); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("place spec %s: %w", app, err)
	}
	unlock, err := lockEdits(dir)
	if err != nil {
		return err
	}
	defer unlock()
	return place(dir, app, data)
}

// place is Place under the edit lock.
func place(dir, app string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+app+".*.tmp")
	if err != nil {
		return fmt.Errorf("place spec %s: %w", app, err)
	}
	defer os.Remove(tmp.Name())
	// A temporary file is made 0600; a spec is read by whoever runs the reconciler and the CLI,
	// so it gets the mode of the file it replaces, else 0644 (what a shell's umask 022 gives).
	mode := fs.FileMode(0o644)
	for _, ext := range []string{".yml", ".yaml", ".json"} {
		if fi, err := os.Stat(filepath.Join(dir, app+ext)); err == nil {
			mode = fi.Mode().Perm()
			break
		}
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("place spec %s: %w", app, err)
	}
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
	if err := os.Rename(tmp.Name(), filepath.Join(dir, app+".yml")); err != nil {
		return fmt.Errorf("place spec %s: %w", app, err)
	}
	for _, ext := range []string{".yaml", ".json"} {
		if err := removeOther(filepath.Join(dir, app+ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("place spec %s: %s.yml is in place, but %s%s is left (two specs: the app is Invalid until one goes): %w",
				app, app, app, ext, err)
		}
	}
	// An apply that said it placed the spec must not be undone by a crash.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("place spec %s: %w", app, err)
	}
	return nil
}

// Unplace removes every spec file of app; an app without one is not an error.
func Unplace(dir, app string) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil // no spec directory: no spec
	}
	unlock, err := lockEdits(dir)
	if err != nil {
		return err
	}
	defer unlock()
	for _, ext := range []string{".yml", ".yaml", ".json"} {
		err := os.Remove(filepath.Join(dir, app+ext))
		specCache.forget(dir, app+ext) // gone: free the entry now rather than at the next listing
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete spec %s: %w", app, err)
		}
	}
	// A delete that said it removed the spec must not be undone by a crash (the app deployed
	// again), as a placed spec must not be.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("delete spec %s: %w", app, err)
	}
	return nil
}
