package spec

import (
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
	// Overlays are the spec's overlays as read with it (files read then), in order.
	Overlays []OverlayDoc
	// OverlayFiles are the paths of the spec's overlay files, also when one could not be
	// read: what a watch of the spec directory must also watch.
	OverlayFiles []string
}

// specFile is one directory entry that maps to an app.
type specFile struct {
	name, path string
	mod        time.Time
	fp         fingerprint // from the listing's stat, so an unchanged file is not stat'ed again
}

// listSpecs groups the spec files of dir by app name, following symlinks (as Kubernetes
// ConfigMap mounts use) and skipping directories. It drops the cache entries of files that
// are gone, which keeps the cache bounded by the directory.
func listSpecs(dir string) (map[string][]specFile, error) {
	d, err := os.Open(dir)
	if err != nil {
		specCache.forgetDir(dir)
		return nil, fmt.Errorf("read spec directory %s: %w", dir, err)
	}
	defer d.Close()
	// Names only: every candidate is stat'ed anyway, to follow symlinks.
	names, err := d.Readdirnames(-1)
	if err != nil {
		specCache.forgetDir(dir)
		return nil, fmt.Errorf("read spec directory %s: %w", dir, err)
	}
	slices.Sort(names) // the order os.ReadDir gave, so nothing depends on the directory's
	byApp := map[string][]specFile{}
	kept := names[:0] // the names of spec files, for pruning the cache
	for _, name := range names {
		app, ok := AppName(name)
		if !ok {
			continue
		}
		path := filepath.Join(dir, name)
		st, err := statAt(d, name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the listing, or a dangling symlink: not desired
			}
			return nil, fmt.Errorf("stat spec %s: %w", path, err)
		}
		if !st.regular {
			continue
		}
		byApp[app] = append(byApp[app], specFile{name: name, path: path, mod: st.mod, fp: st.fp})
		kept = append(kept, name)
	}
	specCache.retain(dir, kept)
	return byApp, nil
}

// specVal is what the cache keeps of one spec file. spec and err are shared by every caller
// that gets them from the cache: never modified, and copied (handOut) before leaving the package.
type specVal struct {
	gen     string
	parsed  bool     // spec and err are set; a file shadowed by another file of its app is only hashed
	d       Defaults // what spec was parsed with: other defaults mean another parse
	spec    *Spec
	err     error
	stack   string // StackName(spec.Domain), so Load compares stacks without allocating
	stackOK bool
}

// readSpec returns the generation of one spec file and, with parse, its parsed spec; through
// the cache, so an unchanged file is neither parsed nor, once settled, read.
func readSpec(dir, app string, f specFile, d Defaults, parse bool) (specVal, error) {
	if f.fp.size > MaxSpecBytes {
		// Refused unread: its generation is its size and time, so a change is seen.
		return specVal{gen: fmt.Sprintf("oversize:%d:%d", f.fp.size, f.fp.mtime), parsed: parse, d: d, err: tooLarge(f.path, f.fp.size)}, nil
	}
	fresh := func(v specVal) bool { return !parse || v.parsed && v.d == d }
	return specCache.get(dir, f.name, &f.fp, fresh, func(data []byte) (specVal, error) {
		v := specVal{gen: Generation(data)}
		if parse {
			v.parsed, v.d = true, d
			v.spec, v.err = Parse(f.path, app, data, d)
			if v.spec != nil {
				stack, err := StackName(v.spec.Domain)
				v.stack, v.stackOK = stack, err == nil
			}
		}
		return v, nil
	})
}

// byModThenName orders an app's files oldest first, then by name, so the last one is the file
// the app is read from.
func byModThenName(a, b specFile) int {
	if c := a.mod.Compare(b.mod); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// readApp reads the spec files of one app; nil when they vanished since they were listed.
// The Spec and Err it returns may be the cache's: hand the result out with handOut.
func readApp(dir, app string, files []specFile, d Defaults) *Desired {
	slices.SortFunc(files, byModThenName)
	f := files[len(files)-1]
	des := &Desired{App: app, Path: f.path, ModTime: f.mod}
	v, err := readSpec(dir, app, f, d, len(files) == 1)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if len(files) == 1 {
				return nil
			}
			return readApp(dir, app, files[:len(files)-1], d)
		}
		des.Err = &FieldError{File: f.path, Msg: fmt.Sprintf("cannot read the spec: %v", err)}
		return des
	}
	des.Generation = v.gen
	if len(files) > 1 {
		names := make([]string, len(files))
		for i, f := range files {
			names[i] = f.name
		}
		sort.Strings(names)
		des.Err = &FieldError{File: f.path, Msg: fmt.Sprintf("app %q has %d spec files (%s): remove all but one", app, len(files), strings.Join(names, ", "))}
		return des
	}
	des.Spec, des.Err = v.spec, v.err
	if des.Spec != nil && len(des.Spec.Overlays) > 0 {
		for _, o := range des.Spec.Overlays {
			if o.File != "" {
				des.OverlayFiles = append(des.OverlayFiles, filepath.Join(dir, o.File))
			}
		}
		docs, err := ReadOverlays(dir, des.Spec)
		if err != nil {
			// The generation names the failure, so that fixing the overlay is seen as a change,
			// without the paths the message names (overlayError).
			why := err.Error()
			var oe *overlayError
			if errors.As(err, &oe) {
				why = oe.why
			}
			var fe *FieldError
			if errors.As(err, &fe) {
				fe.File = f.path
			}
			des.Generation = overlayGeneration(v.gen, []OverlayDoc{{Name: "unreadable", SHA256: Generation([]byte(why))}})
			des.Spec, des.Err = nil, err
			return des
		}
		des.Overlays = docs
		des.Generation = overlayGeneration(v.gen, docs)
	}
	return des
}

// handOut copies what des may share with the cache, so the caller can change it freely.
func (des *Desired) handOut() *Desired {
	if des != nil {
		des.Spec = des.Spec.clone()
		des.Err = cloneErr(des.Err)
	}
	return des
}

// resolveStacks turns every valid spec whose stack another valid spec already claims into an
// error naming the other. An app deployed in the stack keeps it (deployed, when given, says
// which is: the reconciler decides by what is deployed), then the older file (then the earlier
// name), so an existing app is not displaced by a newcomer.
func resolveStacks(set map[string]*Desired, deployed func(app, stack string) bool) {
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
			if deployed != nil {
				if di, dj := deployed(group[i].App, stack), deployed(group[j].App, stack); di != dj {
					return di
				}
			}
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
// Files unchanged since an earlier Scan or Load are not parsed again (see cache.go), and the
// entries are the caller's own: changing them changes nothing for the next caller.
func Scan(dir string, d Defaults) (map[string]*Desired, error) {
	byApp, err := listSpecs(dir)
	if err != nil {
		return nil, err
	}
	set := make(map[string]*Desired, len(byApp))
	for app, files := range byApp {
		if des := readApp(dir, app, files, d); des != nil {
			set[app] = des
		}
	}
	resolveStacks(set, nil)
	for _, des := range set {
		des.handOut()
	}
	return set, nil
}

// Load reads the spec of one app from dir. It returns (nil, nil) when no file exists for the
// app. Two files for one app (a.yml and a.json) is an Err on the Desired, not an I/O error.
// A valid spec is checked against the other specs of dir for a shared stack exactly as Scan
// does, so Reconcile(app) and a full scan always agree. That check stats every spec file but
// parses only those that changed since they were last read, so with the cache warm a Load
// parses at most the files that changed (see cache.go).
func Load(dir, app string, d Defaults) (*Desired, error) {
	return LoadDeployed(dir, app, d, nil)
}

// LoadDeployed is Load with a contested stack given to the app deployed in it, as the
// reconciler gives it: deployed(app, stack) reports whether app runs in stack (the CLI reads
// that from the status files). nil decides by the files' age alone, as a scan does.
func LoadDeployed(dir, app string, d Defaults, deployed func(app, stack string) bool) (*Desired, error) {
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
	des := readApp(dir, app, files, d)
	if des == nil || des.Spec == nil {
		return des.handOut(), nil
	}
	stack, err := StackName(des.Spec.Domain)
	if err != nil {
		return des.handOut(), nil // Parse has rejected such a domain already
	}
	set := map[string]*Desired{app: des}
	for other, files := range byApp {
		// An app with several files is an error, never a valid spec holding a stack, and a
		// file that cannot be read holds none either: only single files can collide.
		if other == app || len(files) != 1 {
			continue
		}
		f := files[0]
		v, err := readSpec(dir, other, f, d, true)
		if err == nil && v.spec != nil && v.stackOK && v.stack == stack {
			// Read as Scan reads it, overlays included: a spec whose overlay is missing is
			// invalid there and holds no stack, so it holds none here either.
			if o := readApp(dir, other, files, d); o != nil && o.Spec != nil {
				set[other] = o
			}
		}
	}
	resolveStacks(set, deployed)
	return des.handOut(), nil
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

// LoadApp reads the spec of one app and looks at no other file: it costs the same however many
// specs the directory holds. Unlike Load it does not check whether another spec claims the
// same stack; a caller that reconciles many apps keeps a stack index from Scan for that. It
// returns (nil, nil) when no file exists for the app.
func LoadApp(dir, app string, d Defaults) (*Desired, error) {
	if err := checkFileApp(app); err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	dh, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("read spec directory %s: %w", dir, err)
	}
	defer dh.Close()
	var files []specFile
	for _, ext := range []string{".json", ".yaml", ".yml"} {
		name := app + ext
		st, err := statAt(dh, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("stat spec %s: %w", filepath.Join(dir, name), err)
		}
		if st.regular {
			files = append(files, specFile{name: name, path: filepath.Join(dir, name), mod: st.mod, fp: st.fp})
		}
	}
	if len(files) == 0 {
		return nil, nil
	}
	return readApp(dir, app, files, d).handOut(), nil
}
