package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func sampleStatus(app string) *Status {
	t0 := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	code := 137
	return &Status{
		App:                app,
		ObservedGeneration: Generation([]byte(app)),
		Phase:              PhaseReady,
		Conditions:         []Condition{{Type: "Ready", Status: "True", Reason: "Converged", LastTransitionTime: t0}},
		Message:            "2/2 services converged; update completed",
		Recipe:             "custom-html", Version: "1.7.1+1.27.2", Tier: TierInstall,
		Domain: app + ".example.org", Stack: app + "_example_org",
		LastAttemptedRevision: "custom-html@1.7.1+1.27.2 (3f2a9c1)",
		LastAppliedRevision:   "custom-html@1.7.1+1.27.2 (3f2a9c1)",
		Deploys:               1,
		FirstDeployedAt:       &t0,
		Services: []ServiceStatus{{Name: app + "_example_org_app", Image: "nginx:1.27.2", Running: 1, Desired: 1, UpdateState: "completed",
			Tasks: []TaskStatus{{State: "running", Since: t0}, {State: "failed", Error: "exit 137", ExitCode: &code, Since: t0}}}},
		Removed:   []string{"service x"},
		History:   []HistoryEntry{{Time: t0, Phase: PhaseDeploying, Message: "deploying"}},
		UpdatedAt: t0,
	}
}

func TestStatusRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st := sampleStatus("ch-1a2b3c")
	if err := WriteStatus(dir, st); err != nil {
		t.Fatal(err)
	}
	got, err := ReadStatus(dir, "ch-1a2b3c")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, st)
	}
	fi, err := os.Stat(filepath.Join(dir, "ch-1a2b3c.json"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("status file mode: %v %v", fi.Mode(), err)
	}
	// The field names are the contract CI scripts against.
	raw, _ := os.ReadFile(filepath.Join(dir, "ch-1a2b3c.json"))
	for _, key := range []string{`"app"`, `"observedGeneration"`, `"phase"`, `"conditions"`, `"lastTransitionTime"`, `"lastAppliedRevision"`, `"deploys"`, `"services"`, `"updateState"`, `"history"`, `"updatedAt"`} {
		if !strings.Contains(string(raw), key) {
			t.Errorf("status file lacks %s:\n%s", key, raw)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestWriteStatusNilListsAreEmpty(t *testing.T) {
	dir := t.TempDir()
	st := &Status{App: "a", Phase: PhasePending}
	if err := WriteStatus(dir, st); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "a.json"))
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"conditions", "services", "history"} {
		if _, ok := m[k].([]any); !ok {
			t.Errorf("%s = %v, want []", k, m[k])
		}
	}
	if st.Conditions != nil {
		t.Error("WriteStatus changed the caller's status")
	}
}

func TestReadStatusAbsent(t *testing.T) {
	_, err := ReadStatus(t.TempDir(), "nope")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}

func TestStatusRejectsPathNames(t *testing.T) {
	dir := t.TempDir()
	for _, app := range []string{"", "../x", "a/b", ".hidden"} {
		if err := WriteStatus(dir, &Status{App: app}); err == nil {
			t.Errorf("WriteStatus(%q) succeeded", app)
		}
		if _, err := ReadStatus(dir, app); err == nil {
			t.Errorf("ReadStatus(%q) succeeded", app)
		}
		if err := RemoveStatus(dir, app); err == nil {
			t.Errorf("RemoveStatus(%q) succeeded", app)
		}
	}
}

func TestListAndRemoveStatus(t *testing.T) {
	dir := t.TempDir()
	for _, app := range []string{"c", "a", "b"} {
		if err := WriteStatus(dir, sampleStatus(app)); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		".a.json.123.tmp": "{half",
		"x.json.tmp":      "{half",
		"notes.txt":       "hello",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	list, err := ListStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	var apps []string
	for _, st := range list {
		apps = append(apps, st.App)
	}
	if got := strings.Join(apps, ","); got != "a,b,c" {
		t.Errorf("ListStatus = %s, want a,b,c", got)
	}

	// A corrupt file is reported without hiding the others.
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err = ListStatus(dir)
	if err == nil || !strings.Contains(err.Error(), "broken") || len(list) != 3 {
		t.Errorf("ListStatus with a broken file = %d statuses, %v", len(list), err)
	}

	if err := RemoveStatus(dir, "b"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveStatus(dir, "b"); err != nil {
		t.Errorf("removing an absent status: %v", err)
	}
	if _, err := ReadStatus(dir, "b"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("status b still readable: %v", err)
	}
}

func TestSetCondition(t *testing.T) {
	t1 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	t2, t3 := t1.Add(time.Minute), t1.Add(2*time.Minute)
	var s Status
	if s.Condition("Ready") != nil {
		t.Fatal("condition on an empty status")
	}
	s.SetCondition("Ready", "False", "Deploying", "creating services", t1)
	s.SetCondition("Stalled", "False", "", "", t1)
	// Same status: reason and message change, transition time does not.
	s.SetCondition("Ready", "False", "Waiting", "1/2 running", t2)
	c := s.Condition("Ready")
	if c == nil || c.Reason != "Waiting" || c.Message != "1/2 running" || !c.LastTransitionTime.Equal(t1) {
		t.Errorf("after same-status update: %+v", c)
	}
	// Status change: transition time moves.
	s.SetCondition("Ready", "True", "Converged", "", t3)
	if c := s.Condition("Ready"); c.Status != "True" || !c.LastTransitionTime.Equal(t3) {
		t.Errorf("after transition: %+v", c)
	}
	if len(s.Conditions) != 2 || s.Conditions[0].Type != "Ready" || s.Conditions[1].Type != "Stalled" {
		t.Errorf("conditions replaced instead of updated in place: %+v", s.Conditions)
	}
	if c := s.Condition("Stalled"); !c.LastTransitionTime.Equal(t1) {
		t.Errorf("other condition touched: %+v", c)
	}
}

// TestStatusReaderNeverSeesHalfAFile polls the file the way CI does while it is rewritten
// thousands of times with contents of varying size.
func TestStatusReaderNeverSeesHalfAFile(t *testing.T) {
	dir := t.TempDir()
	writes := 2000 // each one fsyncs twice, which is slow on a busy disk
	if testing.Short() {
		writes = 200
	}
	first := make(chan struct{})
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer done.Store(true)
		for i := range writes {
			st := sampleStatus("race")
			st.Deploys = i
			st.Message = fmt.Sprintf("write %d %s", i, strings.Repeat("x", (i*37)%5000))
			st.History = make([]HistoryEntry, i%13)
			if err := WriteStatus(dir, st); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
			if i == 0 {
				close(first)
			}
		}
	}()
	<-first
	reads, last := 0, -1
	for !done.Load() {
		st, err := ReadStatus(dir, "race")
		if err != nil {
			t.Fatalf("read %d: %v", reads, err)
		}
		if !strings.HasPrefix(st.Message, fmt.Sprintf("write %d ", st.Deploys)) || len(st.History) != st.Deploys%13 {
			t.Fatalf("inconsistent status: deploys %d, message %.20q, %d history entries", st.Deploys, st.Message, len(st.History))
		}
		if st.Deploys < last {
			t.Fatalf("went back in time: %d after %d", st.Deploys, last)
		}
		last = st.Deploys
		reads++
	}
	wg.Wait()
	t.Logf("%d reads during %d writes", reads, writes)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %d entries", len(entries))
	}
}

// TestCleanTemp: the temporary files of writes a kill cut short (a status's, a placed spec's)
// are removed once they are a minute old; younger ones, which may be a write in progress, the
// statuses and specs themselves, and folders stay.
func TestCleanTemp(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	files := map[string]time.Duration{
		".a.json.123.tmp": 2 * time.Minute,  // a status write killed
		".b.456.tmp":      time.Hour,        // a spec placed by a killed apply
		".c.json.789.tmp": 10 * time.Second, // maybe in progress
		"a.json":          time.Hour,
		"b.yml":           time.Hour,
		"x.tmp":           time.Hour, // not ours: no leading dot
	}
	for name, age := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".d.tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	removed, err := CleanTemp(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if want := []string{filepath.Join(dir, ".a.json.123.tmp"), filepath.Join(dir, ".b.456.tmp")}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{".c.json.789.tmp", ".d.tmp", "a.json", "b.yml", "x.tmp"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}
