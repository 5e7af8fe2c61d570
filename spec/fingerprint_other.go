//go:build !linux

package spec

import (
	"io/fs"
	"os"
	"path/filepath"
)

// fingerprintOf reads size and mtime only: without ctime no entry is ever settled, so every
// call reads the file and compares its hash (still no parse of unchanged bytes). Only Linux is
// a target of the reconciler; this keeps the package portable for `validate` and tests.
func fingerprintOf(fi fs.FileInfo) fingerprint {
	return fingerprint{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}

// statAt stats name in the open directory d, following symlinks.
func statAt(d *os.File, name string) (fileStat, error) {
	fi, err := os.Stat(filepath.Join(d.Name(), name))
	if err != nil {
		return fileStat{}, err
	}
	return fileStat{regular: fi.Mode().IsRegular(), mod: fi.ModTime(), fp: fingerprintOf(fi)}, nil
}
