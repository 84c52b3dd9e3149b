package worker

import (
	"github.com/labplatform/platform/process/internal/clean"
	"github.com/labplatform/platform/process/internal/summary"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's Prometheus metrics, all prefixed process_.
type Metrics struct {
	files      *prometheus.CounterVec
	rows       *prometheus.CounterVec
	reasons    *prometheus.CounterVec
	bytes      prometheus.Counter
	latency    prometheus.Histogram
	inFlight   prometheus.Gauge
	patients   prometheus.Counter
	txnRetries prometheus.Counter
	skipped    prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered, for tests).
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
		patients: prometheus.NewCounter(prometheus.CounterOpts{Name: "process_summary_patients_total",
			Help: "Patient summaries updated."}),
		txnRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "process_summary_transaction_retries_total",
			Help: "Firestore summary transactions retried after contention or abort."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "process_summary_batches_skipped_total",
			Help: "Summary batches found already applied (marker present): redeliveries and re-uploads."}),
	}
	if reg != nil {
		reg.MustRegister(m.files, m.rows, m.reasons, m.bytes, m.latency, m.inFlight, m.patients, m.txnRetries, m.skipped)
	}
	return m
}

func (m *Metrics) observe(rep *clean.Report, st summary.Stats) {
	m.files.WithLabelValues("done").Inc()
	m.rows.WithLabelValues("valid").Add(float64(rep.RowsValid))
	m.rows.WithLabelValues("quarantined").Add(float64(rep.RowsQuarantined))
	m.rows.WithLabelValues("superseded").Add(float64(rep.RowsSuperseded))
	for r, n := range rep.Reasons {
		m.reasons.WithLabelValues(r).Add(float64(n))
	}
	m.bytes.Add(float64(rep.Bytes))
	m.patients.Add(float64(st.Patients))
	m.txnRetries.Add(float64(st.TxnRetries))
	m.skipped.Add(float64(st.BatchesSkipped))
}
