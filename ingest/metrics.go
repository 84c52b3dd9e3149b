package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the shipper's Prometheus metrics. Register them on a registry
// of their own (NewMetrics), so several shippers can live in one process.
type Metrics struct {
	FilesShipped  *prometheus.CounterVec   // robot, kind (file|chunk)
	BytesShipped  *prometheus.CounterVec   // robot, kind
	Deduplicated  *prometheus.CounterVec   // robot
	Lag           *prometheus.HistogramVec // kind: mtime to confirmed upload
	Retries       *prometheus.CounterVec   // robot
	Errors        *prometheus.CounterVec   // robot, kind (see errorKind)
	BacklogFiles  *prometheus.GaugeVec     // robot
	BacklogBytes  *prometheus.GaugeVec     // robot
	Series        *prometheus.CounterVec   // robot, reason (new|rotated|truncated)
	Passes        prometheus.Counter
	PassDuration  prometheus.Histogram
	LastPassEnded prometheus.Gauge
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		FilesShipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingest_objects_shipped_total", Help: "Objects confirmed by GCS: whole files (kind=file) and database chunks (kind=chunk).",
		}, []string{"robot", "kind"}),
		BytesShipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingest_bytes_shipped_total", Help: "Bytes of confirmed objects (chunk bodies include the repeated header).",
		}, []string{"robot", "kind"}),
		Deduplicated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingest_files_deduplicated_total", Help: "Complete files whose content (sha256) was already shipped; nothing uploaded.",
		}, []string{"robot"}),
		Lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ingest_lag_seconds", Help: "From the source's mtime to GCS confirming the object.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 900, 3600, 4 * 3600},
		}, []string{"kind"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingest_retries_total", Help: "Attempts at a file or database that failed before (after its backoff).",
		}, []string{"robot"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingest_errors_total", Help: "Failed attempts by kind: not_found, permission, stale, changed, gcs, conflict, io, checkpoint, rotated_missing, archive.",
		}, []string{"robot", "kind"}),
		BacklogFiles: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ingest_backlog_files", Help: "Files in a robot folder not yet confirmed (complete or not), at the end of the last pass.",
		}, []string{"robot"}),
		BacklogBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ingest_backlog_bytes", Help: "Bytes of those files plus unshipped database bytes, at the end of the last pass.",
		}, []string{"robot"}),
		Series: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingest_db_series_total", Help: "Database series started: new, rotated or truncated.",
		}, []string{"robot", "reason"}),
		Passes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingest_passes_total", Help: "Polling passes completed.",
		}),
		PassDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ingest_pass_duration_seconds", Help: "Duration of a polling pass.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8),
		}),
		LastPassEnded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ingest_last_pass_end_timestamp_seconds", Help: "When the last pass ended (Unix time).",
		}),
	}
	reg.MustRegister(m.FilesShipped, m.BytesShipped, m.Deduplicated, m.Lag, m.Retries, m.Errors,
		m.BacklogFiles, m.BacklogBytes, m.Series, m.Passes, m.PassDuration, m.LastPassEnded)
	return m
}
