package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// dropCaches empties both caches, so a benchmark or test starts cold.
func dropCaches() {
	specCache.reset()
	statusCache.reset()
}

// counts returns the reads and parses done through the caches since the last call.
type counter struct{ reads, parses int64 }

func (c *counter) delta() (reads, parses int64) {
	r, p := cacheReads.Load(), cacheParses.Load()
	reads, parses = r-c.reads, p-c.parses
	c.reads, c.parses = r, p
	return reads, parses
}

// settleAtOnce makes files count as settled as soon as they are written (see racyWindow), so a
// test can show the fast path without waiting out the window.
func settleAtOnce(t *testing.T) {
	t.Helper()
	old := racyWindow
	racyWindow = 0
	t.Cleanup(func() { racyWindow = old })
}

// statusDirWith writes sample statuses of apps into a fresh directory.
func statusDirWith(t *testing.T, apps ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, app := range apps {
		if err := WriteStatus(dir, sampleStatus(app)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRepeatedCallsDoNotParse(t *testing.T) {
	dropCaches()
	specs := t.TempDir()
	for _, app := range []string{"a", "b", "c"} {
		writeSpec(t, specs, app+".yml", minimal+"domain: "+app+".example.org\n", time.Time{})
	}
	writeSpec(t, specs, "bad.yml", minimal+"foo: 1\n", time.Time{})
	status := statusDirWith(t, "a", "b", "c")

	calls := func() {
		t.Helper()
		if set, err := Scan(specs, testDefaults); err != nil || len(set) != 4 {
			t.Fatalf("Scan: %d, %v", len(set), err)
		}
		if des, err := Load(specs, "b", testDefaults); err != nil || des.Spec == nil {
			t.Fatalf("Load: %+v, %v", des, err)
		}
		if all, err := ListStatus(status); err != nil || len(all) != 3 {
			t.Fatalf("ListStatus: %d, %v", len(all), err)
		}
		if _, err := ReadStatus(status, "c"); err != nil {
			t.Fatal(err)
		}
	}
	var c counter
	c.delta()
	calls()
	if _, parses := c.delta(); parses != 7 {
		t.Errorf("first calls parsed %d files, want 7 (4 specs, 3 statuses)", parses)
	}
	// Just written: not settled, so the files are read again and hashed, but not parsed.
	calls()
	if _, parses := c.delta(); parses != 0 {
		t.Errorf("repeated calls on fresh files parsed %d files", parses)
	}

	settleAtOnce(t)
	dropCaches()
	calls()
	c.delta()
	calls()
	if reads, parses := c.delta(); reads != 0 || parses != 0 {
		t.Errorf("repeated calls on settled files: %d reads, %d parses; want none", reads, parses)
	}
}

// TestUnsettledEntriesAreReread stands in for a filesystem whose timestamps are too coarse to
// show a rewrite: the stat after it returns the fingerprint of before. A file changed within
// racyWindow of being read must then still be read again.
func TestUnsettledEntriesAreReread(t *testing.T) {
	c := newFileCache[string]()
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	always := func(string) bool { return true }
	asString := func(b []byte) (string, error) { return string(b), nil }
	if v, err := c.get(dir, "f", nil, always, asString); err != nil || v != "v1" {
		t.Fatalf("get = %q, %v", v, err)
	}
	e := c.lookup(dir, "f")
	if e == nil || e.settled {
		t.Fatalf("entry of a file written just now: %+v, want one that is not settled", e)
	}
	if err := os.WriteFile(path, []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := e.fp
	if v, err := c.get(dir, "f", &before, always, asString); err != nil || v != "v2" {
		t.Errorf("after a rewrite the stat did not show: %q, %v", v, err)
	}
}

func TestSettledAt(t *testing.T) {
	now := time.Now()
	at := func(ctime time.Time, has bool) fingerprint {
		return fingerprint{ctime: ctime.UnixNano(), hasCtime: has}
	}
	for _, tc := range []struct {
		fp   fingerprint
		want bool
	}{
		{at(now.Add(-2*racyWindow), true), true},
		{at(now.Add(-racyWindow), true), true},
		{at(now.Add(-racyWindow+time.Millisecond), true), false},
		{at(now, true), false},
		{at(now.Add(time.Hour), true), false}, // a clock ahead of ours
		{at(now.Add(-time.Hour), false), false},
	} {
		if got := tc.fp.settledAt(now); got != tc.want {
			t.Errorf("ctime %v before the read (ctime known: %v): settled = %v, want %v",
				now.Sub(time.Unix(0, tc.fp.ctime)), tc.fp.hasCtime, got, tc.want)
		}
	}
}

// TestLoadParsesOnlyWhatChanged is the reconcile cost of issue 7: with every spec cached,
// loading each app parses nothing, and a change to one file costs one parse.
func TestLoadParsesOnlyWhatChanged(t *testing.T) {
	dropCaches()
	dir := t.TempDir()
	const n = 50
	for i := range n {
		writeSpec(t, dir, fmt.Sprintf("app-%02d.yml", i), minimal, time.Time{})
	}
	if _, err := Scan(dir, testDefaults); err != nil {
		t.Fatal(err)
	}
	var c counter
	c.delta()
	for i := range n {
		if des, err := Load(dir, fmt.Sprintf("app-%02d", i), testDefaults); err != nil || des.Spec == nil {
			t.Fatalf("Load: %+v, %v", des, err)
		}
	}
	if _, parses := c.delta(); parses != 0 {
		t.Errorf("loading %d cached apps parsed %d files", n, parses)
	}
	writeSpec(t, dir, "app-07.yml", minimal+"domain: app-03.ci.example.org\n", time.Now().Add(time.Hour))
	des, err := Load(dir, "app-03", testDefaults)
	if err != nil || des.Spec == nil {
		t.Fatalf("Load(app-03): %+v, %v", des, err)
	}
	if _, parses := c.delta(); parses != 1 {
		t.Errorf("Load after one file changed parsed %d files, want 1", parses)
	}
	// The changed file now claims app-03's stack, and is the newer one: it gets the error.
	if des, _ := Load(dir, "app-07", testDefaults); des == nil || des.Err == nil || !strings.Contains(des.Err.Error(), `app "app-03"`) {
		t.Errorf("Load(app-07) = %+v", des)
	}
}

// TestCacheSeesRewrites covers the ways a file changes under the cache, including the one
// its fingerprint alone cannot see: an in-place rewrite to the same size with mtime put back.
func TestCacheSeesRewrites(t *testing.T) {
	dropCaches()
	specs, status := t.TempDir(), t.TempDir()
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	path := writeSpec(t, specs, "a.yml", "recipe: r\nversion: v1\n", t0)
	load := func() *Desired {
		t.Helper()
		des, err := Load(specs, "a", testDefaults)
		if err != nil || des == nil {
			t.Fatalf("Load: %+v, %v", des, err)
		}
		return des
	}
	if v := load().Spec.Version; v != "v1" {
		t.Fatalf("version %s", v)
	}

	// Same size, same inode, mtime restored: only ctime (and the racy window) tells.
	writeSpec(t, specs, "a.yml", "recipe: r\nversion: v2\n", t0)
	if des := load(); des.Spec.Version != "v2" || des.Generation != Generation([]byte("recipe: r\nversion: v2\n")) {
		t.Errorf("after an in-place rewrite: %+v %+v", des, des.Spec)
	}

	// Touched only: read again, not parsed again.
	var c counter
	c.delta()
	if err := os.Chtimes(path, t0.Add(time.Hour), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if des := load(); des.Spec.Version != "v2" || !des.ModTime.Equal(t0.Add(time.Hour)) {
		t.Errorf("after a touch: %+v", des)
	}
	if _, parses := c.delta(); parses != 0 {
		t.Errorf("a touch caused %d parses", parses)
	}

	// Replaced by rename (Place), and a symlink retargeted as a ConfigMap mount does.
	if err := Place(specs, "a", []byte("recipe: r\nversion: v3\n")); err != nil {
		t.Fatal(err)
	}
	if v := load().Spec.Version; v != "v3" {
		t.Errorf("after Place: %s", v)
	}
	data := t.TempDir()
	for _, v := range []string{"v4", "v5"} {
		if err := os.WriteFile(filepath.Join(data, v), []byte("recipe: r\nversion: "+v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(specs, "b.yml")
	if err := os.Symlink(filepath.Join(data, "v4"), link); err != nil {
		t.Fatal(err)
	}
	if des, _ := Load(specs, "b", testDefaults); des == nil || des.Spec == nil || des.Spec.Version != "v4" {
		t.Fatalf("symlinked spec: %+v", des)
	}
	if err := os.Symlink(filepath.Join(data, "v5"), link+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link+".new", link); err != nil {
		t.Fatal(err)
	}
	if des, _ := Load(specs, "b", testDefaults); des == nil || des.Spec == nil || des.Spec.Version != "v5" {
		t.Errorf("after retargeting the symlink: %+v", des)
	}

	// Other defaults are another parse, not the cached one.
	if set, _ := Scan(specs, Defaults{DomainSuffix: "other.org"}); set["a"].Spec.Domain != "a.other.org" {
		t.Errorf("domain with other defaults: %s", set["a"].Spec.Domain)
	}

	// Statuses: replaced by WriteStatus, rewritten in place to the same size, removed.
	if err := WriteStatus(status, &Status{App: "s", Phase: PhaseDeploying, Message: "m1"}); err != nil {
		t.Fatal(err)
	}
	read := func() *Status {
		t.Helper()
		st, err := ReadStatus(status, "s")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if m := read().Message; m != "m1" {
		t.Fatalf("message %s", m)
	}
	if err := WriteStatus(status, &Status{App: "s", Phase: PhaseDeploying, Message: "m2"}); err != nil {
		t.Fatal(err)
	}
	if m := read().Message; m != "m2" {
		t.Errorf("after WriteStatus: %s", m)
	}
	sp := filepath.Join(status, "s.json")
	fi, err := os.Stat(sp)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(sp)
	if err := os.WriteFile(sp, []byte(strings.Replace(string(raw), `"m2"`, `"m3"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(sp, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if m := read().Message; m != "m3" {
		t.Errorf("after an in-place rewrite: %s", m)
	}
	if all, err := ListStatus(status); err != nil || len(all) != 1 || all[0].Message != "m3" {
		t.Errorf("ListStatus: %+v, %v", all, err)
	}
	if err := RemoveStatus(status, "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadStatus(status, "s"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after RemoveStatus: %v", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	dropCaches()
	specs := t.TempDir()
	for i := range 10 {
		writeSpec(t, specs, fmt.Sprintf("s%d.yml", i), minimal, time.Time{})
	}
	writeSpec(t, specs, "dup.json", `{"recipe": "r", "version": "v"}`, time.Time{})
	writeSpec(t, specs, "dup.yml", minimal, time.Time{})
	if _, err := Scan(specs, testDefaults); err != nil {
		t.Fatal(err)
	}
	if n := specCache.size(); n != 11 { // dup: only its newer file is read
		t.Errorf("%d specs cached, want 11", n)
	}
	for i := range 5 {
		if err := Unplace(specs, fmt.Sprintf("s%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(specs, "s5.yml")) // behind the package's back
	if n := specCache.size(); n != 6 {
		t.Errorf("%d specs cached after Unplace, want 6", n)
	}
	if _, err := Load(specs, "s9", testDefaults); err != nil {
		t.Fatal(err)
	}
	if n := specCache.size(); n != 5 {
		t.Errorf("%d specs cached after a listing, want 5", n)
	}
	if err := os.RemoveAll(specs); err != nil {
		t.Fatal(err)
	}
	if _, err := Scan(specs, testDefaults); err == nil {
		t.Fatal("Scan of a removed directory succeeded")
	}
	if n := specCache.size(); n != 0 {
		t.Errorf("%d specs cached of a removed directory", n)
	}

	status := statusDirWith(t, "a", "b", "c")
	if _, err := ListStatus(status); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(status, "a.json"))
	if _, err := ReadStatus(status, "a"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(status, "b.json"))
	if n := statusCache.size(); n != 2 {
		t.Errorf("%d statuses cached, want 2 (a was found missing)", n)
	}
	if _, err := ListStatus(status); err != nil {
		t.Fatal(err)
	}
	if n := statusCache.size(); n != 1 {
		t.Errorf("%d statuses cached after a listing, want 1", n)
	}

	// Directories beyond maxCachedDirs push out the least recently used.
	for range 2 * maxCachedDirs {
		if _, err := ReadStatus(statusDirWith(t, "x"), "x"); err != nil {
			t.Fatal(err)
		}
	}
	if n := statusCache.size(); n != maxCachedDirs {
		t.Errorf("%d statuses cached from %d directories, want %d", n, 2*maxCachedDirs+1, maxCachedDirs)
	}
}

// TestResultsAreCopies changes everything a caller can reach in what it got, and expects the
// next caller to get the file's content regardless.
func TestResultsAreCopies(t *testing.T) {
	dropCaches()
	specs := t.TempDir()
	full := minimal + "env:\n  A: a\nhealth:\n  - http: \"https://{domain}/\"\n    ok: [200]\n"
	writeSpec(t, specs, "a.yml", full, time.Time{})
	writeSpec(t, specs, "bad.yml", minimal+"foo: 1\nbar: 2\n", time.Time{})
	want, _ := Parse(filepath.Join(specs, "a.yml"), "a", []byte(full), testDefaults)
	_, wantErr := Parse(filepath.Join(specs, "bad.yml"), "bad", []byte(minimal+"foo: 1\nbar: 2\n"), testDefaults)

	vandalize := func(des *Desired) {
		if s := des.Spec; s != nil {
			s.Env["A"] = "changed"
			s.Env["B"] = "added"
			s.Health[0].OK[0] = 500
			s.Health[0].HTTP = "changed"
			s.Domain = "changed"
		}
		var fe *FieldError
		if errors.As(des.Err, &fe) {
			fe.Msg, fe.Line = "changed", 99
		}
	}
	check := func(how string, a, bad *Desired) {
		t.Helper()
		if !reflect.DeepEqual(a.Spec, want) {
			t.Errorf("%s: spec a = %+v, want %+v", how, a.Spec, want)
		}
		if bad.Err == nil || bad.Err.Error() != wantErr.Error() {
			t.Errorf("%s: error of bad = %v, want %v", how, bad.Err, wantErr)
		}
	}
	set, _ := Scan(specs, testDefaults)
	vandalize(set["a"])
	vandalize(set["bad"])
	set, _ = Scan(specs, testDefaults)
	check("Scan after Scan", set["a"], set["bad"])
	a, _ := Load(specs, "a", testDefaults)
	bad, _ := Load(specs, "bad", testDefaults)
	vandalize(a)
	vandalize(bad)
	a, _ = Load(specs, "a", testDefaults)
	bad, _ = Load(specs, "bad", testDefaults)
	check("Load after Load", a, bad)
	set, _ = Scan(specs, testDefaults)
	check("Scan after Load", set["a"], set["bad"])

	status := statusDirWith(t, "a")
	wantSt := sampleStatus("a")
	vandalizeStatus := func(st *Status) {
		st.SetCondition("Ready", "False", "changed", "changed", time.Now())
		*st.Services[0].Tasks[1].ExitCode = 1
		st.Services[0].Tasks[0].State = "changed"
		st.Services[0].Running = 9
		*st.FirstDeployedAt = time.Now()
		st.History[0].Message = "changed"
		st.Removed[0] = "changed"
		st.Message = "changed"
	}
	st, _ := ReadStatus(status, "a")
	vandalizeStatus(st)
	all, _ := ListStatus(status)
	if len(all) != 1 || !reflect.DeepEqual(all[0], wantSt) {
		t.Errorf("ListStatus after a caller changed a ReadStatus result: %+v", all)
	}
	vandalizeStatus(all[0])
	if st, _ := ReadStatus(status, "a"); !reflect.DeepEqual(st, wantSt) {
		t.Errorf("ReadStatus after a caller changed a ListStatus result: %+v", st)
	}
}

// TestCloneSharesNothing fills every exported field of Spec and Status by reflection, so that
// a field added to the types without a matching line in clone.go fails here.
func TestCloneSharesNothing(t *testing.T) {
	n := 0
	spec, status := &Spec{}, &Status{}
	fill(t, reflect.ValueOf(spec).Elem(), &n)
	fill(t, reflect.ValueOf(status).Elem(), &n)
	for _, tc := range []struct {
		orig, copy any
	}{
		{spec, spec.clone()},
		{status, status.clone()},
		{&Spec{}, (&Spec{}).clone()},
		{&Status{}, (&Status{}).clone()},
		{&Spec{Env: map[string]string{}, Health: []Probe{{OK: []int{}}}}, (&Spec{Env: map[string]string{}, Health: []Probe{{OK: []int{}}}}).clone()},
		{&Status{Conditions: []Condition{}, Services: []ServiceStatus{{Tasks: []TaskStatus{}}}, Removed: []string{}, History: []HistoryEntry{}},
			(&Status{Conditions: []Condition{}, Services: []ServiceStatus{{Tasks: []TaskStatus{}}}, Removed: []string{}, History: []HistoryEntry{}}).clone()},
	} {
		if !reflect.DeepEqual(tc.orig, tc.copy) {
			t.Errorf("copy differs:\n got %+v\nwant %+v", tc.copy, tc.orig)
		}
		if path := shared(reflect.ValueOf(tc.orig), reflect.ValueOf(tc.copy), "", true); path != "" {
			t.Errorf("%T: copy shares %s with the original", tc.orig, path)
		}
	}
	if (*Spec)(nil).clone() != nil || (*Status)(nil).clone() != nil {
		t.Error("clone of nil is not nil")
	}

	one := &FieldError{File: "f", Line: 1, Field: "x", Msg: "m"}
	joined := errors.Join(one, &FieldError{File: "f", Msg: "n"})
	for _, err := range []error{nil, one, joined} {
		c := cloneErr(err)
		if (c == nil) != (err == nil) || c != nil && c.Error() != err.Error() {
			t.Errorf("cloneErr(%v) = %v", err, c)
		}
		var fe *FieldError
		if errors.As(c, &fe) && fe == one {
			t.Errorf("cloneErr(%v) shares the *FieldError", err)
		}
	}
	other := fmt.Errorf("%w and %w", one, one) // not a shape Parse makes: left as it is
	if cloneErr(other) != other {
		t.Error("cloneErr rewrote an error of another shape")
	}
}

// fill sets every exported field reachable from v to a distinct non-zero value.
func fill(t *testing.T, v reflect.Value, n *int) {
	t.Helper()
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), n)
		v.Set(p)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(int64(*n), 0).UTC()))
			return
		}
		for i := range v.NumField() {
			if !v.Type().Field(i).IsExported() {
				t.Fatalf("%s.%s is unexported: teach fill and shared about it", v.Type(), v.Type().Field(i).Name)
			}
			fill(t, v.Field(i), n)
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, s.Index(i), n)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(t, k, n)
			fill(t, e, n)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.String:
		v.SetString(fmt.Sprint("s", *n))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Bool:
		v.SetBool(true)
	default:
		t.Fatalf("fill: %s is a %s: teach fill and shared about it", v.Type(), v.Kind())
	}
}

// shared returns the path of the first pointer, slice or map that a and b have in common.
// top is true for the pointers passed in, which are the originals and copies themselves.
func shared(a, b reflect.Value, path string, top bool) string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return ""
		}
		if a.Pointer() == b.Pointer() && !top {
			return path
		}
		return shared(a.Elem(), b.Elem(), path, false)
	case reflect.Slice:
		if a.Len() > 0 && b.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := range min(a.Len(), b.Len()) {
			if p := shared(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i), false); p != "" {
				return p
			}
		}
	case reflect.Map:
		if !a.IsNil() && !b.IsNil() && a.Pointer() == b.Pointer() {
			return path
		}
		for _, k := range a.MapKeys() {
			if bv := b.MapIndex(k); bv.IsValid() {
				if p := shared(a.MapIndex(k), bv, fmt.Sprintf("%s[%v]", path, k), false); p != "" {
					return p
				}
			}
		}
	case reflect.Struct:
		if a.Type() == reflect.TypeFor[time.Time]() {
			return "" // a value; its *Location is immutable
		}
		for i := range a.NumField() {
			if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name, false); p != "" {
				return p
			}
		}
	}
	return ""
}

// TestCacheCoherenceUnderRace rewrites a spec and a status file, in place and by rename, while
// other goroutines read them through every function. Readers must never see a spec whose
// generation is not of its bytes, a status mixing two writes, or an older version after a
// newer one; the writer must read back exactly what it wrote. Run it with -race.
func TestCacheCoherenceUnderRace(t *testing.T) {
	dropCaches()
	specs, status := t.TempDir(), t.TempDir()
	writes := 400
	if testing.Short() {
		writes = 60
	}
	// JSON, fixed width: every rewrite has the same size, and a half-written file never parses.
	specOf := func(i int) []byte { return fmt.Appendf(nil, `{"recipe": "r", "version": "v%05d"}`, i) }
	statusOf := func(i int) *Status {
		return &Status{App: "s", Phase: PhaseReady, Deploys: i, Message: fmt.Sprintf("write %05d", i)}
	}
	specPath := filepath.Join(specs, "a.json")
	if err := os.WriteFile(specPath, specOf(0), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"b", "c"} { // bystanders, for Scan and Load's stack check
		writeSpec(t, specs, app+".yml", minimal, time.Time{})
	}
	if err := WriteStatus(status, statusOf(0)); err != nil {
		t.Fatal(err)
	}

	var done atomic.Bool
	var wg sync.WaitGroup
	checkSpec := func(des *Desired, last *int) {
		if des == nil || des.Err != nil {
			return // a half-written file: Invalid until the write ends
		}
		var i int
		if _, err := fmt.Sscanf(des.Spec.Version, "v%d", &i); err != nil {
			t.Errorf("version %q", des.Spec.Version)
			return
		}
		if des.Generation != Generation(specOf(i)) {
			t.Errorf("spec version %d with the generation of other bytes", i)
		}
		if i < *last {
			t.Errorf("spec went back from %d to %d", *last, i)
		}
		*last = i
	}
	checkStatus := func(st *Status, last *int) {
		if st.Message != fmt.Sprintf("write %05d", st.Deploys) {
			t.Errorf("status mixes writes: deploys %d, message %q", st.Deploys, st.Message)
		}
		if st.Deploys < *last {
			t.Errorf("status went back from %d to %d", *last, st.Deploys)
		}
		*last = st.Deploys
	}
	reader := func(id int) {
		defer wg.Done()
		lastSpec, lastStatus := 0, 0
		for !done.Load() {
			switch id {
			case 0:
				des, err := Load(specs, "a", testDefaults)
				if err != nil {
					t.Error(err)
					return
				}
				checkSpec(des, &lastSpec)
				des.Spec = nil // callers may change what they get
			case 1:
				set, err := Scan(specs, testDefaults)
				if err != nil {
					t.Error(err)
					return
				}
				checkSpec(set["a"], &lastSpec)
			case 2:
				if st, err := ReadStatus(status, "s"); err == nil {
					checkStatus(st, &lastStatus)
					st.Message = "changed by a caller"
				}
			case 3:
				all, _ := ListStatus(status) // a half-written file is an error, and skipped
				for _, st := range all {
					checkStatus(st, &lastStatus)
				}
			}
		}
	}
	for id := range 4 {
		wg.Add(1)
		go reader(id)
	}

	for i := 1; i <= writes && !t.Failed(); i++ {
		// Alternate in-place rewrites (same inode and size: only ctime and the racy window
		// tell them apart) with atomic replacements.
		var err error
		if i%2 == 0 {
			err = os.WriteFile(specPath, specOf(i), 0o644)
		} else {
			err = writeFileAtomic(specPath, specOf(i), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			data, merr := jsonMarshal(statusOf(i))
			if merr != nil {
				t.Fatal(merr)
			}
			err = os.WriteFile(filepath.Join(status, "s.json"), data, 0o644)
		} else {
			err = WriteStatus(status, statusOf(i))
		}
		if err != nil {
			t.Fatal(err)
		}
		des, err := Load(specs, "a", testDefaults)
		if err != nil || des == nil || des.Spec == nil || des.Spec.Version != fmt.Sprintf("v%05d", i) {
			t.Fatalf("write %d: Load = %+v, %v", i, des, err)
		}
		if st, err := ReadStatus(status, "s"); err != nil || st.Deploys != i {
			t.Fatalf("write %d: ReadStatus = %+v, %v", i, st, err)
		}
	}
	done.Store(true)
	wg.Wait()
}
