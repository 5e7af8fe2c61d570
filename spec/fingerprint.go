package spec

import "time"

// fingerprint identifies one version of a file without reading it: the device and inode tell
// a replaced file (an atomic rename, a retargeted ConfigMap symlink) from the old one, size and
// mtime catch ordinary edits, and ctime catches edits whose writer reset mtime, since no user
// can set ctime. Times are in nanoseconds; how coarse their ticks are is the reason for
// fingerprint.settledAt.
type fingerprint struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // Unix nanoseconds
	hasCtime     bool  // false where the platform gives no ctime: then never settled
}

// settledAt reports whether any change to the file after start would show in its fingerprint:
// true when the file's ctime is at least racyWindow older than start, so a later change gets a
// later ctime tick. Where ctime is unknown, a cached entry is always checked against the bytes.
func (fp fingerprint) settledAt(start time.Time) bool {
	return fp.hasCtime && fp.ctime <= start.Add(-racyWindow).UnixNano()
}

// fileStat is what a directory listing needs of each file.
type fileStat struct {
	regular bool
	mod     time.Time
	fp      fingerprint
}
