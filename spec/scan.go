package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Desired is one entry of the desired set: a spec file as read. Exactly one of Spec and Err is
// set. An entry with Err still names the app, so the controller can report it as Invalid
// without touching what is deployed.
type Desired struct {
	App string
	// Path is the file read. With two files for one app it is the newer one, whose bytes the
	// Generation is of, so CI polling for the file it just wrote sees the error.
	Path       string
	Generation string // "" only when the file could not be read
	Spec       *Spec
	Err        error
	ModTime    time.Time
}

// specFile is one directory entry that maps to an app.
type specFile struct {
	name, path string
	mod        time.Time
}

// listSpecs groups the spec files of dir by app name, following symlinks (as Kubernetes
// ConfigMap mounts use) and skipping directories.
func listSpecs(dir string) (map[string][]specFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read spec directory %s: %w", dir, err)
	}
	byApp := map[string][]specFile{}
	for _, e := range entries {
		app, ok := AppName(e.Name())
		if !ok {
			continue
		}
		path := filepath.Join(dir, e.Name())
		fi, err := os.Stat(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since ReadDir, or a dangling symlink: not desired
			}
			return nil, fmt.Errorf("stat spec %s: %w", path, err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		byApp[app] = append(byApp[app], specFile{name: e.Name(), path: path, mod: fi.ModTime()})
	}
	return byApp, nil
}

// readApp parses the spec files of one app; nil when they vanished since they were listed.
func readApp(app string, files []specFile, d Defaults) *Desired {
	sort.Slice(files, func(i, j int) bool {
		if !files[i].mod.Equal(files[j].mod) {
			return files[i].mod.Before(files[j].mod)
		}
		return files[i].name < files[j].name
	})
	f := files[len(files)-1]
	des := &Desired{App: app, Path: f.path, ModTime: f.mod}
	data, err := os.ReadFile(f.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if len(files) == 1 {
				return nil
			}
			return readApp(app, files[:len(files)-1], d)
		}
		des.Err = &FieldError{File: f.path, Msg: fmt.Sprintf("cannot read the spec: %v", err)}
		return des
	}
	des.Generation = Generation(data)
	if len(files) > 1 {
		names := make([]string, len(files))
		for i, f := range files {
			names[i] = f.name
		}
		sort.Strings(names)
		des.Err = &FieldError{File: f.path, Msg: fmt.Sprintf("app %q has %d spec files (%s): remove all but one", app, len(files), strings.Join(names, ", "))}
		return des
	}
	des.Spec, des.Err = Parse(f.path, app, data, d)
	return des
}

// resolveStacks turns every valid spec whose stack another valid spec already claims into an
// error naming the other. The older file keeps the stack (then the earlier name), so an
// existing app is not displaced by a newcomer.
func resolveStacks(set map[string]*Desired) {
	byStack := map[string][]*Desired{}
	for _, des := range set {
		if des.Spec == nil {
			continue
		}
		stack, err := StackName(des.Spec.Domain)
		if err != nil {
			continue // Parse has rejected it already
		}
		byStack[stack] = append(byStack[stack], des)
	}
	for stack, group := range byStack {
		if len(group) < 2 {
			continue
		}
		sort.Slice(group, func(i, j int) bool {
			if !group[i].ModTime.Equal(group[j].ModTime) {
				return group[i].ModTime.Before(group[j].ModTime)
			}
			return group[i].App < group[j].App
		})
		owner := group[0]
		for _, des := range group[1:] {
			des.Err = &FieldError{File: des.Path, Field: "domain", Msg: fmt.Sprintf(
				"domain %q maps to stack %q, which app %q (%s) already uses: give one of them another domain",
				des.Spec.Domain, stack, owner.App, owner.Path)}
			des.Spec = nil
		}
	}
}

// Scan reads every spec file in dir into the desired set keyed by app name. Two specs mapping
// to one stack: the one whose file is newer (then, by name, the later) gets Err naming the other.
// Only a failure to list dir is an error; a bad file is an entry with Err.
func Scan(dir string, d Defaults) (map[string]*Desired, error) {
	byApp, err := listSpecs(dir)
	if err != nil {
		return nil, err
	}
	set := make(map[string]*Desired, len(byApp))
	for app, files := range byApp {
		if des := readApp(app, files, d); des != nil {
			set[app] = des
		}
	}
	resolveStacks(set)
	return set, nil
}

// Load reads the spec of one app from dir. It returns (nil, nil) when no file exists for the
// app. Two files for one app (a.yml and a.json) is an Err on the Desired, not an I/O error.
// A valid spec is checked against the other specs of dir for a shared stack exactly as Scan
// does, so Reconcile(app) and a full scan always agree.
func Load(dir, app string, d Defaults) (*Desired, error) {
	if err := checkFileApp(app); err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	byApp, err := listSpecs(dir)
	if err != nil {
		return nil, err
	}
	files, ok := byApp[app]
	if !ok {
		return nil, nil
	}
	des := readApp(app, files, d)
	if des == nil || des.Spec == nil {
		return des, nil
	}
	set := map[string]*Desired{app: des}
	for other, files := range byApp {
		if other == app {
			continue
		}
		if o := readApp(other, files, d); o != nil && o.Spec != nil && sameStack(o.Spec.Domain, des.Spec.Domain) {
			set[other] = o
		}
	}
	resolveStacks(set)
	return des, nil
}

func sameStack(a, b string) bool {
	sa, erra := StackName(a)
	sb, errb := StackName(b)
	return erra == nil && errb == nil && sa == sb
}

// checkFileApp rejects app names that would escape the directory or hide as a dotfile when
// used as a file name. It is looser than ValidateAppName, so that a misnamed spec's status
// can still be written and read.
func checkFileApp(app string) error {
	if app == "" || app == "." || app == ".." || strings.HasPrefix(app, ".") ||
		strings.ContainsAny(app, `/\`+"\x00") {
		return fmt.Errorf("app name %q cannot be used as a file name", app)
	}
	return nil
}
