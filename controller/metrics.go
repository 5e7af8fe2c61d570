package controller

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the controller's Prometheus metrics. A nil *Metrics records nothing, so unit
// tests and one-shot commands need none.
type Metrics struct {
	Reconciles       *prometheus.CounterVec
	ReconcileSeconds prometheus.Histogram
	QueueRetries     prometheus.Counter
	AppsByPhase      *prometheus.GaugeVec
	TimeToReady      prometheus.Histogram
	TeardownSeconds  prometheus.Histogram
}

// NewMetrics registers the controller's metrics with reg. queueDepth is read at scrape time.
func NewMetrics(reg prometheus.Registerer, queueDepth func() float64) *Metrics {
	m := &Metrics{
		Reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarm_reconciler_reconciles_total", Help: "Reconciles by result: success, requeue (waiting on swarm) or error (retried with backoff).",
		}, []string{"result"}),
		ReconcileSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swarm_reconciler_reconcile_duration_seconds", Help: "Time spent in one Reconcile.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		QueueRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swarm_reconciler_workqueue_retries_total", Help: "Apps put back on the queue with backoff after an error.",
		}),
		AppsByPhase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "swarm_reconciler_apps", Help: "Apps by phase, from the status files at the last resync.",
		}, []string{"phase"}),
		TimeToReady: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swarm_reconciler_time_to_ready_seconds", Help: "From the spec file's modification to the status saying Ready for it.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 14),
		}),
		TeardownSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swarm_reconciler_teardown_duration_seconds", Help: "From the start of a teardown to verified zero residual.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 14),
		}),
	}
	reg.MustRegister(m.Reconciles, m.ReconcileSeconds, m.QueueRetries, m.AppsByPhase, m.TimeToReady, m.TeardownSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "swarm_reconciler_workqueue_depth", Help: "Apps waiting in the work queue.",
		}, queueDepth))
	return m
}
