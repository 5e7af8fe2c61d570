package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
)

// Metrics are the controller's Prometheus metrics. A nil *Metrics records nothing, so unit
// tests and one-shot commands need none.
//
// The work queue's metrics are client-go's own (see queueMetrics): the queue counts them where
// it adds, hands out and finishes an app, so depth, retries and reconcile durations are never
// counted by hand.
type Metrics struct {
	Reconciles      *prometheus.CounterVec
	AppsByPhase     *prometheus.GaugeVec
	TimeToReady     prometheus.Histogram
	TeardownSeconds prometheus.Histogram

	// The work queue's, filled by the queue through queueMetrics.
	queueDepth       prometheus.Gauge
	queueAdds        prometheus.Counter
	queueWait        prometheus.Histogram
	reconcileSeconds prometheus.Histogram
	queueUnfinished  prometheus.Gauge
	queueLongest     prometheus.Gauge
	queueRetries     prometheus.Counter
}

// NewMetrics registers the controller's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarm_reconciler_reconciles_total", Help: "Reconciles by result: success, requeue (waiting on swarm), error (retried with backoff) or canceled.",
		}, []string{"result"}),
		AppsByPhase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "swarm_reconciler_apps", Help: "Apps by phase, from the status files at the last resync.",
		}, []string{"phase"}),
		TimeToReady: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swarm_reconciler_time_to_ready_seconds", Help: "From the spec file's modification to the status saying Ready for it.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 14),
		}),
		TeardownSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swarm_reconciler_teardown_duration_seconds", Help: "From the start of a teardown (its first Deleting, a wait for a removal slot included) to verified zero residual.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 14),
		}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swarm_reconciler_workqueue_depth", Help: "Apps waiting in the work queue.",
		}),
		queueAdds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swarm_reconciler_workqueue_adds_total", Help: "Apps added to the work queue (an app already waiting is merged, and counted again).",
		}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swarm_reconciler_workqueue_queue_duration_seconds", Help: "How long an app waits in the work queue before a worker takes it.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12),
		}),
		reconcileSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swarm_reconciler_reconcile_duration_seconds", Help: "Time spent in one Reconcile (from a worker taking the app off the queue to done).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		queueUnfinished: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swarm_reconciler_workqueue_unfinished_work_seconds", Help: "Seconds the reconciles now running have run, summed: large and growing means stuck workers.",
		}),
		queueLongest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swarm_reconciler_workqueue_longest_running_processor_seconds", Help: "Seconds the longest reconcile now running has run.",
		}),
		queueRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swarm_reconciler_workqueue_retries_total", Help: "Apps put back on the queue with backoff after an error.",
		}),
	}
	reg.MustRegister(m.Reconciles, m.AppsByPhase, m.TimeToReady, m.TeardownSeconds,
		m.queueDepth, m.queueAdds, m.queueWait, m.reconcileSeconds, m.queueUnfinished, m.queueLongest, m.queueRetries)
	return m
}

// queueMetrics hands m's queue metrics to client-go's work queue. The controller has one
// queue, so they carry no name label.
type queueMetrics struct{ m *Metrics }

var _ workqueue.MetricsProvider = queueMetrics{}

func (p queueMetrics) NewDepthMetric(string) workqueue.GaugeMetric       { return p.m.queueDepth }
func (p queueMetrics) NewAddsMetric(string) workqueue.CounterMetric      { return p.m.queueAdds }
func (p queueMetrics) NewLatencyMetric(string) workqueue.HistogramMetric { return p.m.queueWait }
func (p queueMetrics) NewWorkDurationMetric(string) workqueue.HistogramMetric {
	return p.m.reconcileSeconds
}
func (p queueMetrics) NewUnfinishedWorkSecondsMetric(string) workqueue.SettableGaugeMetric {
	return p.m.queueUnfinished
}
func (p queueMetrics) NewLongestRunningProcessorSecondsMetric(string) workqueue.SettableGaugeMetric {
	return p.m.queueLongest
}
func (p queueMetrics) NewRetriesMetric(string) workqueue.CounterMetric { return p.m.queueRetries }
