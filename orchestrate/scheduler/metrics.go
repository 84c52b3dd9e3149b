package scheduler

import "github.com/prometheus/client_golang/prometheus"

// metrics are the scheduler's Prometheus metrics.
type metrics struct {
	runs          *prometheus.CounterVec
	tasks         *prometheus.CounterVec
	schedDelay    *prometheus.HistogramVec
	startDelay    prometheus.Histogram
	taskDuration  *prometheus.HistogramVec
	queueDepth    prometheus.Gauge
	running       prometheus.Gauge
	activeRuns    *prometheus.GaugeVec
	takeovers     prometheus.Counter
	fenced        prometheus.Counter
	alerts        *prometheus.CounterVec
	alertFailures prometheus.Counter
	ticks         prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orchestrate_runs_total", Help: "DAG runs that finished, by DAG and final state.",
		}, []string{"dag", "state"}),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orchestrate_tasks_total", Help: "Task attempts this scheduler finished, by DAG and resulting state.",
		}, []string{"dag", "state"}),
		schedDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orchestrate_scheduling_delay_seconds",
			Help:    "From a run's due time (its data interval end, or its creation) to its start.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12),
		}, []string{"dag"}),
		startDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orchestrate_task_start_delay_seconds",
			Help:    "Scheduling overhead per task: from ready (upstream done) to started.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12),
		}),
		taskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orchestrate_task_duration_seconds",
			Help:    "Duration of one task attempt (one poke for sensors).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12),
		}, []string{"dag", "task"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orchestrate_queue_depth", Help: "Tasks ready to run that wait for a worker slot, at the last pass.",
		}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orchestrate_tasks_running", Help: "Task attempts executing in this scheduler.",
		}),
		activeRuns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orchestrate_runs_active", Help: "Runs not finished, by state, at the last full pass.",
		}, []string{"state"}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrate_lease_takeovers_total", Help: "Tasks claimed after another owner's lease expired.",
		}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrate_fenced_attempts_total", Help: "Attempts whose result was discarded because a newer attempt owns the task.",
		}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orchestrate_alerts_total", Help: "Alerts sent, by kind.",
		}, []string{"kind"}),
		alertFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrate_alert_failures_total", Help: "Alerts the notifier could not deliver.",
		}),
		ticks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrate_scheduler_passes_total", Help: "Full scheduling passes over the store.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.tasks, m.schedDelay, m.startDelay, m.taskDuration, m.queueDepth,
			m.running, m.activeRuns, m.takeovers, m.fenced, m.alerts, m.alertFailures, m.ticks)
	}
	return m
}
