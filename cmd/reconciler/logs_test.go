package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// logsFake lists the services it has and answers their logs as the engine does with
// details=true: stdcopy frames of "k=v,k=v message" lines.
type logsFake struct {
	services []swarm.Service
	lines    map[string][]string // by service ID: task ID, then message, alternating
	filters  []string
}

func (f *logsFake) ServiceList(_ context.Context, o swarm.ServiceListOptions) ([]swarm.Service, error) {
	f.filters = o.Filters.Get("label")
	return f.services, nil
}

func (f *logsFake) ServiceLogs(_ context.Context, id string, _ container.LogsOptions) (io.ReadCloser, error) {
	var b bytes.Buffer
	l := f.lines[id]
	for i := 0; i+1 < len(l); i += 2 {
		stream := stdcopy.Stdout
		if strings.HasPrefix(l[i+1], "ERR") {
			stream = stdcopy.Stderr
		}
		stdcopy.NewStdWriter(&b, stream).Write([]byte("com.docker.swarm.node.id=n1,com.docker.swarm.service.id=" + id +
			",com.docker.swarm.task.id=" + l[i] + " " + l[i+1] + "\n"))
	}
	return io.NopCloser(&b), nil
}

func TestPrintLogs(t *testing.T) {
	svc := func(id, name string) swarm.Service {
		return swarm.Service{ID: id, Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "a_example_com_" + name,
			Labels: map[string]string{swarmstate.LabelNamespace: "a_example_com"}}}}
	}
	nodeJob := svc("j1", "volumes-n2")
	nodeJob.Spec.Labels = map[string]string{swarmstate.LabelNamespace: "a_example_com", swarmstate.LabelJob: "volumes"}
	f := &logsFake{
		services: []swarm.Service{svc("s1", "app"), svc("s2", "db"), nodeJob},
		lines: map[string][]string{
			"s1": {"task1aaaaaaaaaaaa", "listening on :8080", "task1aaaaaaaaaaaa", "ERR lost the database"},
			"s2": {"task2bbbbbbbbbbbb", "ready to accept connections"},
			"j1": {"task3cccccccccccc", `{"volume":"a_example_com_data"}`},
		},
	}
	owner := swarmstate.Owner{App: "a", Dir: "d1"}
	// A teardown's volume job on another node carries the app's labels: not one of its services.
	for _, tc := range []struct {
		service string
		want    []string
		err     string
	}{
		{"", []string{"app.task1aaaaaaa | listening on :8080", "app.task1aaaaaaa | ERR lost the database", "db.task2bbbbbbb | ready to accept connections"}, ""},
		{"db", []string{"db.task2bbbbbbb | ready to accept connections"}, ""},
		{"web", nil, `app a has no service "web": it has app, db`},
		{"a_example_com_volumes-n2", []string{`volumes-n2.task3ccccccc | {"volume":"a_example_com_data"}`}, ""},
	} {
		var out bytes.Buffer
		err := printLogs(t.Context(), f, owner, tc.service, container.LogsOptions{}, &out)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("--service %q: error %v, want %q", tc.service, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Split(strings.TrimSpace(out.String()), "\n")
		// The services are read at once: lines of one service keep their order.
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w+"\n") {
				t.Errorf("--service %q: output lacks %q:\n%s", tc.service, w, out.String())
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("--service %q: %d lines, want %d:\n%s", tc.service, len(got), len(tc.want), out.String())
		}
	}
	if want := []string{manifests.LabelApp + "=a", manifests.LabelOwner + "=d1"}; strings.Join(f.filters, " ") != strings.Join(want, " ") &&
		strings.Join(f.filters, " ") != strings.Join([]string{want[1], want[0]}, " ") {
		t.Errorf("listed services by %q, want both ownership labels", f.filters)
	}
	f.services = nil
	if err := printLogs(t.Context(), f, owner, "", container.LogsOptions{}, io.Discard); err == nil || !strings.Contains(err.Error(), "reconciler status a") {
		t.Errorf("no services: %v", err)
	}
}

// TestLineWriterBoundsALineWithoutEnd: a stream that never ends a line (a progress bar redrawn
// with \r) is printed in pieces of at most maxLogLine bytes, not held for ever.
func TestLineWriterBoundsALineWithoutEnd(t *testing.T) {
	var out bytes.Buffer
	w := &lineWriter{mu: &sync.Mutex{}, out: &out, service: "app"}
	chunk := []byte(strings.Repeat("progress 42%\r", 1000))
	for range 16 << 20 / len(chunk) { // 16 MiB
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if len(w.partial) >= maxLogLine || out.Len() < 15<<20 {
		t.Errorf("%d bytes held, %d printed; want at most %d held", len(w.partial), out.Len(), maxLogLine)
	}
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if !strings.HasPrefix(l, "app | ") || len(l) > maxLogLine+len("app | ") {
			t.Fatalf("a printed piece: %.40q... of %d bytes", l, len(l))
		}
	}
}
