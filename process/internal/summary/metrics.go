package summary

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Updater's Prometheus metrics. Create them once per
// registry (NewMetrics) and share them between Updaters.
type Metrics struct {
	Transactions    *prometheus.CounterVec // outcome: committed, skipped (marker found), failed
	Retries         prometheus.Counter
	PatientsUpdated prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg; with a nil reg
// it returns nil, which an Updater takes as no metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		return nil
	}
	m := &Metrics{
		Transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "process_summary_transactions_total",
			Help: "Summary batch transactions by outcome: committed, skipped (its marker existed), failed.",
		}, []string{"outcome"}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "process_summary_transaction_retries_total",
			Help: "Summary transaction attempts beyond the first (aborted by contention and retried).",
		}),
		PatientsUpdated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "process_summary_patients_updated_total",
			Help: "Patient summary documents written by committed transactions.",
		}),
	}
	reg.MustRegister(m.Transactions, m.Retries, m.PatientsUpdated)
	return m
}

func (m *Metrics) observe(a applied, err error) {
	if m == nil {
		return
	}
	m.Retries.Add(float64(a.retries))
	switch {
	case err != nil:
		m.Transactions.WithLabelValues("failed").Inc()
	case a.skipped:
		m.Transactions.WithLabelValues("skipped").Inc()
	default:
		m.Transactions.WithLabelValues("committed").Inc()
		m.PatientsUpdated.Add(float64(a.updated))
	}
}
