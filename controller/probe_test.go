package controller

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarm-reconciler/reconciler/spec"
)

// TestHTTPProbeStable: `stable: N` on an http probe asks for N answers in a row, as it does of
// a tcp probe (the spec accepts it on both, "it counts consecutive successes"); a failure in
// between starts the count again.
func TestHTTPProbeStable(t *testing.T) {
	url, setCode := codeServer(t)
	var p prober
	pr := spec.Probe{HTTP: url, Stable: 3}
	var got []bool
	for _, c := range []int{200, 200, 503, 200, 200, 200} {
		setCode(c)
		got = append(got, p.run(t.Context(), "h", 0, pr, "h.example.org").OK)
	}
	want := []bool{false, false, false, false, false, true}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("http probe with stable: 3 passed %v, want %v", got, want)
		}
	}
}

// TestHTTPProbeHidesUserInfo: a probe URL's user info (a token) is in no result: not in its
// name, and not in the transport's error, which quotes the URL and masks only a password.
func TestHTTPProbeHidesUserInfo(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	var p prober
	for _, u := range []string{"http://s3cr3t-token@" + dead + "/", "http://ci:s3cr3t-token@" + dead + "/"} {
		r := p.run(t.Context(), "h", 0, spec.Probe{HTTP: u}, "h.example.org")
		if r.OK || strings.Contains(r.Name+r.Last, "s3cr3t") || strings.Contains(r.Name+r.Last, "ci:") {
			t.Errorf("probe of %s: %+v: the user info shows", u, r)
		}
	}
}

// TestHTTPProbeLeavesNoConnection: a probe keeps no connection open to the app once it is
// done, even when the answer had an empty body (the transport would keep that connection
// idle for reuse by a client that is dropped: one connection and two goroutines per probe).
func TestHTTPProbeLeavesNoConnection(t *testing.T) {
	var mu sync.Mutex
	open := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open++
		case http.StateClosed, http.StateHijacked:
			open--
		}
	}
	srv.Start()
	defer srv.Close()
	var p prober
	for range 5 {
		if r := p.run(t.Context(), "h", 0, spec.Probe{HTTP: srv.URL + "/", OK: []int{204}}, "h.example.org"); !r.OK {
			t.Fatalf("probe: %+v", r)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		n := open
		mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections to the app still open after 5 probes", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProbeStableBrokenByAnEarlierProbe: a check stops at the first probe that fails, so the
// probes after it are not asked in that check. Their `stable` count must start again too: the
// app did not answer in that check, and N successes "in a row" must not span it. Here probe 1
// (stable: 3) passed twice, probe 0 then failed once; probe 1 needs three more checks.
func TestProbeStableBrokenByAnEarlierProbe(t *testing.T) {
	first, setCode := codeServer(t)
	second, _ := codeServer(t)
	s := &spec.Spec{Domain: "h.example.org", Health: []spec.Probe{{HTTP: first}, {HTTP: second, Stable: 3}}}
	var p prober
	var got []bool
	for _, c := range []int{200, 200, 503, 200, 200, 200} {
		setCode(c)
		got = append(got, p.check(t.Context(), "h", s).OK)
	}
	want := []bool{false, false, false, false, false, true}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("checks passed %v, want %v (probe 1's three in a row start after probe 0's failure)", got, want)
		}
	}
}

// codeServer serves every request with a status code, 200 until set: its URL and the setter.
func codeServer(t *testing.T) (string, func(int)) {
	var mu sync.Mutex
	code := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/", func(c int) { mu.Lock(); code = c; mu.Unlock() }
}
