package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Bounds of an app's overlays: how many, and how large each file may be.
const (
	MaxOverlays     = 16
	MaxOverlayBytes = 1 << 20
)

// OverlayDoc is one overlay as read when its spec was read: what the render merges, and what
// the status records.
type OverlayDoc struct {
	// Name is the file as the spec names it, or "inline[N]" (N its index in overlays).
	Name string
	// Data is the compose document.
	Data []byte
	// SHA256 is the hex SHA-256 of Data.
	SHA256 string
	// Line is where the document's first line is in the file that holds it: 1 for a file,
	// the inline block's line in the spec for an inline one; for messages.
	Line int
}

// checkOverlayPath says what is wrong with an overlay's file path, "" if nothing: it must name
// a file under the spec directory.
func checkOverlayPath(p string) string {
	switch {
	case filepath.IsAbs(p) || strings.HasPrefix(p, "/"):
		return "an absolute path: name a file relative to the spec directory, inside it"
	case p != filepath.Clean(p) || strings.Contains(p, `\`):
		return fmt.Sprintf("not a clean relative path: write %q", filepath.ToSlash(filepath.Clean(p)))
	case p == ".." || strings.HasPrefix(p, "../"):
		return "leaves the spec directory: overlays must be files under it"
	}
	if _, ok := AppName(filepath.Base(p)); ok && !strings.Contains(p, "/") {
		return "a spec file name (the spec directory's own .yml files are apps): keep overlays in a folder, e.g. overlays/" + p
	}
	return ""
}

// ReadOverlays reads the overlays of s, whose spec file is in dir: the files at once, with
// their bytes, so that editing one is a new generation of the app.
func ReadOverlays(dir string, s *Spec) ([]OverlayDoc, error) {
	var docs []OverlayDoc
	for i, o := range s.Overlays {
		doc := OverlayDoc{Name: fmt.Sprintf("inline[%d]", i), Data: []byte(o.Inline), Line: o.InlineLine}
		field := fmt.Sprintf("overlays[%d]", i)
		if o.File != "" {
			data, err := readOverlayFile(dir, o.File)
			if err != nil {
				return nil, &overlayError{FieldError: &FieldError{Line: o.Line, Field: field + ".file", Msg: fmt.Sprintf("%s.file %q: %v", field, o.File, err)},
					why: fmt.Sprintf("%s.file %q: %s", field, o.File, overlayFailure(err))}
			}
			doc = OverlayDoc{Name: o.File, Data: data, Line: 1}
		}
		sum := sha256.Sum256(doc.Data)
		doc.SHA256 = hex.EncodeToString(sum[:])
		docs = append(docs, doc)
	}
	return docs, nil
}

// overlayError is an overlay that cannot be read, with why: what went wrong in words that
// name no path. A spec's generation names the failure, so that fixing the overlay is a change,
// and must not depend on how the spec directory was spelled: the reconciler's --specs and a
// CLI's (relative, ".", through a symbolic link) must agree on it.
type overlayError struct {
	*FieldError
	why string
}

func (e *overlayError) Unwrap() error { return e.FieldError }

// overlayFailure is what went wrong reading an overlay, without the paths the error names.
func overlayFailure(err error) string {
	var pe *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "missing"
	case errors.Is(err, errOverlayOutside):
		return "outside"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.As(err, &pe):
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// overlayMissing is an overlay file the spec directory dir does not have.
type overlayMissing struct{ dir string }

func (e overlayMissing) Error() string {
	return fmt.Sprintf("no such file in the spec directory %s: create it or fix the path", e.dir)
}

func (overlayMissing) Is(target error) bool { return target == fs.ErrNotExist }

// errOverlayOutside is an overlay whose path, once symlinks are followed, is not under the
// spec directory.
var errOverlayOutside = errors.New("resolves outside the spec directory (a symlink out of it): overlays must be files under it")

func readOverlayFile(dir, name string) ([]byte, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(filepath.Join(root, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, overlayMissing{dir}
	}
	if err != nil {
		return nil, err
	}
	if rel, err := filepath.Rel(root, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, errOverlayOutside
	}
	// Opened through an os.Root of the spec directory, not by the path just resolved: a
	// directory on that path swapped for a symlink out of it since the check above must not
	// be followed (os.Root refuses every escape, at the moment of the open).
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, and with it
	// the scan; the Stat below refuses it (and any other non-regular file) at once.
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	data, err := readRegular(f, MaxOverlayBytes)
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("larger than %d bytes (1 MiB)", MaxOverlayBytes)
	}
	return data, err
}

var (
	errNotRegular = errors.New("not a regular file")
	errTooLarge   = errors.New("too large")
)

// readRegular reads f, opened with O_NONBLOCK (a FIFO put in a file's place must not make the
// open wait for a writer), and closes it: errNotRegular for what is not a regular file,
// errTooLarge past limit bytes, read no further.
func readRegular(f *os.File, limit int) ([]byte, error) {
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, errTooLarge
	}
	return data, nil
}

// overlayGeneration is the generation of a spec with overlays: the spec file's own, then
// each overlay's name and hash. A spec without overlays keeps the generation of its bytes.
func overlayGeneration(specGen string, docs []OverlayDoc) string {
	if len(docs) == 0 {
		return specGen
	}
	h := sha256.New()
	io.WriteString(h, specGen)
	for _, d := range docs {
		fmt.Fprintf(h, "\x00%s\x00%s", d.Name, d.SHA256)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
