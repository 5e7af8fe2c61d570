package controller

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarm-reconciler/reconciler/spec"
)

func TestUpgradeTierDeploysPreviousTagFirst(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("u", "recipe: echo\nversion: 1.1.0+1\ntier: upgrade\n")
	st := f.settle("u")
	if st.Phase != spec.PhaseReady || !strings.Contains(st.LastAppliedRevision, "echo@1.1.0+1") {
		t.Fatalf("phase %s applied %q: %s", st.Phase, st.LastAppliedRevision, st.Message)
	}
	var steps []string
	for _, h := range st.History {
		steps = append(steps, string(h.Phase)+" "+h.Message)
	}
	all := strings.Join(steps, "\n")
	for _, want := range []string{"Deploying applying echo@1.0.0+1", "echo@1.0.0+1 (", "upgrading in place to 1.1.0+1", "Upgrading applying echo@1.1.0+1"} {
		if !strings.Contains(all, want) {
			t.Errorf("history lacks %q:\n%s", want, all)
		}
	}
	if got := f.engine.writes(); !strings.Contains(strings.Join(got, ","), "create service u_test_app,update service u_test_app") {
		t.Errorf("calls = %v, want a create at the previous tag then an update", got)
	}
}

func TestUpgradeTierWithoutPreviousTagIsInvalid(t *testing.T) {
	f := newFixture(t)
	f.writeSpec("u", "recipe: echo\nversion: 1.0.0+1\ntier: upgrade\n")
	if st := f.settle("u"); st.Phase != spec.PhaseInvalid || !strings.Contains(st.Message, "upgradeFrom") {
		t.Fatalf("phase %s: %s", st.Phase, st.Message)
	}
}

func TestHealthProbesGateReady(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort := closed.Addr().String()
	closed.Close()

	t.Run("succeeds after a delay", func(t *testing.T) {
		f := newFixture(t)
		f.writeSpec("h", fmt.Sprintf("recipe: echo\nversion: 1.0.0+1\nhealth:\n  - http: %q\n", srv.URL+"/"))
		st := f.settle("h")
		if st.Phase != spec.PhaseReady || calls.Load() < 3 {
			t.Fatalf("phase %s after %d probe calls: %s", st.Phase, calls.Load(), st.Message)
		}
	})
	t.Run("never answers", func(t *testing.T) {
		f := newFixture(t)
		f.writeSpec("h", fmt.Sprintf("recipe: echo\nversion: 1.0.0+1\ntimeout: 5s\nhealth:\n  - tcp: %q\n    stable: 2\n", deadPort))
		st := f.settle("h")
		if st.Phase != spec.PhaseFailed || !strings.Contains(st.Message, "tcp "+deadPort) || !strings.Contains(st.Message, "never passed within 5s") {
			t.Fatalf("phase %s: %s", st.Phase, st.Message)
		}
	})
	t.Run("tcp needs stable connects", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		f := newFixture(t)
		f.writeSpec("h", fmt.Sprintf("recipe: echo\nversion: 1.0.0+1\nhealth:\n  - tcp: %q\n    stable: 3\n", ln.Addr().String()))
		var phases []spec.Phase
		for i := 0; i < 8; i++ {
			if _, err := f.r.Reconcile(t.Context(), "h"); err != nil {
				t.Fatal(err)
			}
			f.now = f.now.Add(time.Second)
			st, _ := spec.ReadStatus(f.r.StatusDir, "h")
			phases = append(phases, st.Phase)
		}
		// create, then converged with 1/3 and 2/3 connects, then Ready on the third.
		if phases[2] == spec.PhaseReady || phases[len(phases)-1] != spec.PhaseReady {
			t.Fatalf("phases %v", phases)
		}
	})
}
