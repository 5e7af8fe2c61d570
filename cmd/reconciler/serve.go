package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/docker/docker/client"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/swarm-reconciler/reconciler/swarmstate"
	"github.com/swarm-reconciler/reconciler/webview"
)

// instrumentedEngine is a Docker client whose every request is counted by operation.
func instrumentedEngine(reg prometheus.Registerer) (*client.Client, error) {
	base, err := newEngine()
	if err != nil {
		return nil, err
	}
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "swarm_reconciler_engine_api_calls_total", Help: "Engine API requests by operation.",
	}, []string{"operation"})
	reg.MustRegister(calls)
	hc := base.HTTPClient()
	hc.Transport = swarmstate.CountingTransport{Base: hc.Transport, Count: func(op string) { calls.WithLabelValues(op).Inc() }}
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithHTTPClient(hc), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return c, nil
}

// serveMetrics serves /metrics, /healthz (the process is alive) and /readyz (the engine
// answers, and ready says the replica is ready: its text is the body, so it says the role)
// until ctx ends; and, when ui is set, the web view on every other path.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, ready func() (string, error), engine *client.Client, ui http.Handler, log logr.Logger) error {
	mux := http.NewServeMux()
	if ui != nil {
		mux.Handle("/", ui)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		pingCtx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if _, err := engine.Ping(pingCtx); err != nil {
			http.Error(w, "engine not reachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		text, err := ready()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, text)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	// Served as the web view is (its timeouts; requests live in ctx, so that the view's event
	// streams end with it).
	go func() {
		if err := webview.Serve(ctx, ln, mux); err != nil {
			log.Error(err, "metrics server stopped")
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return nil
}

// checkWebView checks the web view's flags before anything starts, and reads --ui-basic-auth.
func checkWebView(o *options) (map[string][]byte, error) {
	if o.uiAddr == "" {
		if o.uiAuth != "" {
			return nil, errors.New("--ui-basic-auth needs --ui-addr")
		}
		return nil, nil
	}
	var users map[string][]byte
	if o.uiAuth != "" {
		var err error
		if users, err = webview.ReadUsers(o.uiAuth); err != nil {
			return nil, err
		}
	}
	return users, webview.CheckExposure(o.uiAddr, users != nil)
}

// startWebView starts the web view of --ui-addr (checked by checkWebView), following the
// status directory until ctx ends. When --ui-addr is the --metrics-addr address it returns
// the view's handler for the metrics server to serve; otherwise it serves the view itself and
// returns nil.
func startWebView(ctx context.Context, o *options, users map[string][]byte, log logr.Logger) (http.Handler, error) {
	if o.uiAddr == "" {
		return nil, nil
	}
	v := webview.New(o.status, o.specs, o.defaults(), log.WithName("webview"))
	v.Users = users
	go func() {
		if err := v.Watch(ctx); err != nil {
			log.Error(err, "web view: the status directory is not followed; pages show changes on reload")
		}
	}()
	if o.uiAddr == o.metricsAddr {
		log.Info("serving the web view", "addr", o.uiAddr, "with", "metrics")
		return v.Handler(), nil
	}
	ln, err := net.Listen("tcp", o.uiAddr)
	if err != nil {
		return nil, fmt.Errorf("--ui-addr %s: %w", o.uiAddr, err)
	}
	go func() {
		if err := webview.Serve(ctx, ln, v.Handler()); err != nil {
			log.Error(err, "web view stopped")
		}
	}()
	log.Info("serving the web view", "addr", ln.Addr().String(), "basicAuth", users != nil)
	return nil, nil
}

// leaderGauge registers swarm_reconciler_leader: 1 on the replica that reconciles.
func leaderGauge(reg prometheus.Registerer) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "swarm_reconciler_leader", Help: "1 if this replica reconciles (holds the lease, or runs without --leader-elect), 0 if it is a follower.",
	})
	reg.MustRegister(g)
	return g
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
