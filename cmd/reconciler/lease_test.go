package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/swarm-reconciler/reconciler/controller"
	"github.com/swarm-reconciler/reconciler/manifests"
)

// fakeLeaseEngine serves, on a unix socket, an engine whose swarm holds the live lease of the
// --leader-elect replicas of owner "ha" (renewed just now), and answers every other call with
// a 500. It counts the service lists: a reconciler's resync starts with one.
func fakeLeaseEngine(t *testing.T) (socket string, serviceLists *atomic.Int32) {
	t.Helper()
	serviceLists = &atomic.Int32{}
	rec, _ := json.Marshal(map[string]any{"holderIdentity": "mgr1-42", "leaseDurationSeconds": 15,
		"acquireTime": time.Now().Add(-time.Hour), "renewTime": time.Now(), "leaderTransitions": 3})
	lease := swarm.Config{ID: "lease1", Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: controller.LeaseName("ha"),
		Labels: map[string]string{manifests.LabelOwner: "ha", controller.LeaseLabel: string(rec)}}}}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case strings.HasSuffix(p, "/_ping"):
			w.Header().Set("API-Version", "1.41")
			_, _ = w.Write([]byte("OK"))
		case strings.HasSuffix(p, "/configs"):
			_ = json.NewEncoder(w).Encode([]swarm.Config{lease})
		default:
			if strings.HasSuffix(p, "/services") {
				serviceLists.Add(1)
			}
			http.Error(w, `{"message":"not in this fake"}`, http.StatusInternalServerError)
		}
	})
	socket = filepath.Join(t.TempDir(), "docker.sock")
	serveFakeEngine(t, socket, mux)
	return socket, serviceLists
}

// TestRunRefusesBesideLiveReplicas: `reconciler once` refuses to run while --leader-elect
// replicas of its owner lead ("once would act on their apps beside their leader"); `reconciler
// run` without --leader-elect, with the same --owner on the same directories (the systemd unit
// left enabled on a manager after moving to deploy/compose.ha.yml), acts beside their leader
// just the same, for as long as it runs. It must refuse as once does.
func TestRunRefusesBesideLiveReplicas(t *testing.T) {
	socket, serviceLists := fakeLeaseEngine(t)
	t.Setenv("DOCKER_HOST", "unix://"+socket)
	dir := t.TempDir()
	for _, cmd := range []string{"once", "run"} {
		serviceLists.Store(0)
		root := newRoot(&options{})
		root.SetOut(&bytes.Buffer{})
		root.SetErr(&bytes.Buffer{})
		root.SetArgs([]string{cmd, "--owner", "ha", "--specs", filepath.Join(dir, "specs"), "--status", filepath.Join(dir, "status"),
			"--recipes", dir, "--lock-dir", filepath.Join(dir, "locks"), "--resync", "100ms"})
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		err := root.ExecuteContext(ctx)
		cancel()
		t.Logf("%s: err %v; service lists %d", cmd, err, serviceLists.Load())
		if err == nil || !strings.Contains(err.Error(), "lead on this swarm") || serviceLists.Load() > 0 {
			t.Errorf("%s --owner ha beside the live lease of ha's replicas: err %v, %d service lists; want a refusal naming the lease, before any resync",
				cmd, err, serviceLists.Load())
		}
	}
}

// serveFakeEngine serves handler as a Docker engine on a unix socket at path until the test ends.
func serveFakeEngine(t *testing.T, path string, handler http.Handler) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}
