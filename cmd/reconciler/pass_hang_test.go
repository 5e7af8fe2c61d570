package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// silentEngine serves, on a unix socket, an engine that answers its ping and accepts every
// other call without ever answering it: a manager still electing its Raft leader after a
// restart, or a dockerd wedged behind a stuck lock.
func silentEngine(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			w.Header().Set("API-Version", "1.41")
			_, _ = w.Write([]byte("OK"))
			return
		}
		<-r.Context().Done()
	})
	socket := filepath.Join(t.TempDir(), "docker.sock")
	serveFakeEngine(t, socket, mux)
	return socket
}

// TestOnceTimeoutBoundsTheWholePass: `reconciler once --timeout 1s` against an engine that takes
// calls and never answers ends after about its timeout with exit 1, as --timeout says ("give up
// the pass after this long"). The check for live leases made before the pass counts too: it
// hung for ever, so a CI job running `once` waited for its own job timeout.
func TestOnceTimeoutBoundsTheWholePass(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+silentEngine(t))
	dir := t.TempDir()
	root := newRoot(&options{})
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"once", "--timeout", "1s", "--specs", filepath.Join(dir, "specs"), "--status", filepath.Join(dir, "status"),
		"--recipes", dir, "--lock-dir", filepath.Join(dir, "locks")})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- root.ExecuteContext(ctx) }()
	select {
	case err := <-done:
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitFailed || !strings.Contains(err.Error(), "timed out after 1s") {
			t.Errorf("once --timeout 1s against a silent engine: %v; want exit 1 saying it timed out", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("once --timeout 1s took %s", took)
		}
	case <-time.After(10 * time.Second):
		cancel()
		err := <-done
		t.Fatalf("once --timeout 1s still running after 10s against an engine that does not answer (ended by a signal then: %v)", err)
	}
}
