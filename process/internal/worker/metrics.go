package worker

import (
	"github.com/labplatform/platform/process/internal/clean"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's Prometheus metrics, all prefixed process_.
type Metrics struct {
	files    *prometheus.CounterVec
	rows     *prometheus.CounterVec
	reasons  *prometheus.CounterVec
	bytes    prometheus.Counter
	latency  prometheus.Histogram
	inFlight prometheus.Gauge
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered, for tests). The summary transactions have their own metrics
// (summary.NewMetrics), registered beside these.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		files: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "process_files_total",
			Help: "Raw objects handled, by outcome: done, duplicate (already done), retry, failed (sent to the DLQ), poison."}, []string{"outcome"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "process_rows_total",
			Help: "Rows cleaned, by outcome: valid, quarantined, superseded."}, []string{"outcome"}),
		reasons: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "process_quarantine_reasons_total",
			Help: "Reasons given for quarantined and superseded rows."}, []string{"reason"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "process_bytes_total",
			Help: "Bytes of raw objects cleaned; its rate is the throughput."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "process_file_seconds",
			Help: "Time from receiving a notification to the file's lineage being done.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "process_files_in_flight",
			Help: "Files being processed now."}),
	}
	if reg != nil {
		reg.MustRegister(m.files, m.rows, m.reasons, m.bytes, m.latency, m.inFlight)
	}
	return m
}

func (m *Metrics) observe(rep *clean.Report) {
	m.files.WithLabelValues("done").Inc()
	m.rows.WithLabelValues("valid").Add(float64(rep.RowsValid))
	m.rows.WithLabelValues("quarantined").Add(float64(rep.RowsQuarantined))
	m.rows.WithLabelValues("superseded").Add(float64(rep.RowsSuperseded))
	for r, n := range rep.Reasons {
		m.reasons.WithLabelValues(r).Add(float64(n))
	}
	m.bytes.Add(float64(rep.Bytes))
}
