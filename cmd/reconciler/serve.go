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
// until ctx ends.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, ready func() (string, error), engine *client.Client, log logr.Logger) error {
	mux := http.NewServeMux()
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
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(err, "metrics server stopped")
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return nil
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
