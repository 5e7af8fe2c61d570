package controller

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/swarm-reconciler/reconciler/spec"
)

// A restore's read-back asks the container's sha256sum first and reads back through the
// archive endpoint whatever it did not confirm; only that read decides a mismatch.
func TestRestoreVerifiedInPlace(t *testing.T) {
	const newline = "files/new\nline"
	tests := []struct {
		name      string
		setup     func(fb *fakeBackup)
		inPlace   int // files confirmed by sha256sum, over the two volumes
		readBack  []string
		wantPhase spec.Phase
		want      string
	}{
		{name: "sha256sum confirms every file it is asked about: nothing else read back",
			inPlace: 3, wantPhase: spec.PhaseReady},
		{name: "no sha256sum in the image: every file read back",
			setup:    func(fb *fakeBackup) { fb.noSha256sum = true },
			readBack: []string{"data:dump.sql", "files:a/b.txt", "files:marker", "files:" + newline}, wantPhase: spec.PhaseReady},
		{name: "sha256sum prints another sum: read back, and the engine's read says it matches",
			setup: func(fb *fakeBackup) {
				fb.sha256sumSays = func(name, sum string) string {
					if name == "a/b.txt" {
						return strings.Repeat("0", 64)
					}
					return sum
				}
			},
			inPlace: 2, readBack: []string{"files:a/b.txt"}, wantPhase: spec.PhaseReady},
		{name: "sha256sum cannot read a file: that one is read back",
			setup: func(fb *fakeBackup) {
				fb.sha256sumSays = func(name, sum string) string {
					if name == "marker" {
						return "sha256sum: marker: Permission denied"
					}
					return sum
				}
			},
			inPlace: 2, readBack: []string{"files:marker"}, wantPhase: spec.PhaseReady},
		{name: "a restored file differs: sha256sum does not confirm it, the read-back names it",
			setup:    func(fb *fakeBackup) { fb.corrupt = func(name, content string) string { return content + "!" } },
			readBack: []string{"data:dump.sql"}, wantPhase: spec.PhaseFailed,
			want: "restored volume data does not match backup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, fb := newBackupFixture(t, nil)
			f.writeSpec("a", backupTierSpec)
			seed(f, fb)
			fb.mu.Lock()
			fb.fs("a_test_app")["/"+newline] = "a name sha256sum would escape"
			if tt.setup != nil {
				tt.setup(fb)
			}
			fb.mu.Unlock()
			st := f.settle("a")
			if st.Phase != tt.wantPhase || !strings.Contains(st.Message, tt.want) {
				t.Fatalf("phase %s %q, want %s %q", st.Phase, st.Message, tt.wantPhase, tt.want)
			}
			if slices.Contains(fb.hashed, newline) {
				t.Errorf("sha256sum was asked about %q: its output would escape the name", newline)
			}
			inPlace, readBack := 0, 0
			for _, v := range st.LastRestore.Volumes {
				inPlace += v.VerifiedInPlace
				readBack += v.VerifiedReadBack
			}
			wantReadBack := len(tt.readBack)
			if tt.wantPhase == spec.PhaseReady && !slices.Contains(tt.readBack, "files:"+newline) {
				wantReadBack++ // the name with a line break is always read back
			}
			if tt.wantPhase == spec.PhaseReady && (inPlace != tt.inPlace || readBack != wantReadBack) {
				t.Errorf("verified %d in place and %d read back, want %d and %d: %+v", inPlace, readBack, tt.inPlace, wantReadBack, st.LastRestore.Volumes)
			}
		})
	}
}

// sumEngine is an engine whose containers' sha256sum knows every file's sum: it counts the
// execs and the argument bytes of each.
type sumEngine struct {
	BackupEngine
	sums  map[string]string
	execs []int // bytes of names per exec
	out   string
}

func (e *sumEngine) ContainerExecCreate(_ context.Context, _ string, o container.ExecOptions) (container.ExecCreateResponse, error) {
	n := 0
	e.out = ""
	for _, name := range o.Cmd[2:] {
		n += len(name) + 1
		e.out += e.sums[name] + "  " + name + "\n"
	}
	e.execs = append(e.execs, n)
	return container.ExecCreateResponse{ID: "x"}, nil
}

func (e *sumEngine) ContainerExecAttach(context.Context, string, container.ExecAttachOptions) (types.HijackedResponse, error) {
	var buf bytes.Buffer
	w := stdcopy.NewStdWriter(&buf, stdcopy.Stdout)
	// In pieces that split lines, as a stream does.
	for s := e.out; s != ""; {
		k := min(len(s), 1000)
		_, _ = w.Write([]byte(s[:k]))
		s = s[k:]
	}
	c1, c2 := net.Pipe()
	c2.Close()
	return types.HijackedResponse{Conn: c1, Reader: bufio.NewReader(&buf)}, nil
}

func (e *sumEngine) ContainerExecInspect(context.Context, string) (container.ExecInspect, error) {
	return container.ExecInspect{}, nil
}

// A volume of many files is hashed in several execs, none given more names than one exec's
// arguments can hold, and every file is confirmed.
func TestConfirmInPlaceBatches(t *testing.T) {
	e := &sumEngine{sums: map[string]string{}}
	want := map[string]spec.BackedUpFile{}
	for i := range 3000 {
		name := fmt.Sprintf("dir/%0200d", i)
		sum := fmt.Sprintf("%064x", i)
		e.sums[name] = sum
		want[name] = spec.BackedUpFile{Path: name, SHA256: sum}
	}
	got := confirmInPlace(t.Context(), e, "c", "/data", want)
	if len(got) != len(want) {
		t.Errorf("%d of %d files confirmed", len(got), len(want))
	}
	if len(e.execs) < 2 {
		t.Errorf("%d execs for %d KiB of names", len(e.execs), 3000*205/1024)
	}
	for _, n := range e.execs {
		if n > hashArgs {
			t.Errorf("an exec was given %d bytes of names, more than %d", n, hashArgs)
		}
	}
}
