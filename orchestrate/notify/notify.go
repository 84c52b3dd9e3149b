// Package notify owns the orchestrator's alerts: the Alert the scheduler
// raises when a task fails, exhausts its retries, misses a deadline, times
// out waiting or a run fails (and data-quality checks raise), and the
// Notifiers that deliver it: to the log, to a webhook, to a Pub/Sub topic,
// or to several at once.
//
// An alert carries identifiers and a message, never patient data: messages
// come from operator errors, which name objects, jobs and tables only.
// Delivery errors name the notifier and wrap the cause once.
package notify

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Kind says what happened.
type Kind string

// The alert kinds.
const (
	// TaskFailed: one try of a task failed (it may be retried).
	TaskFailed Kind = "task_failed"
	// RetriesExhausted: a task failed its last try.
	RetriesExhausted Kind = "retries_exhausted"
	// DeadlineMissed: a task ran longer than its expected duration, or a run
	// had not finished by its deadline.
	DeadlineMissed Kind = "deadline_missed"
	// SensorTimeout: a sensor's condition did not hold in time.
	SensorTimeout Kind = "sensor_timeout"
	// RunFailed: a DAG run ended failed.
	RunFailed Kind = "run_failed"
	// QualityAlert: a data-quality check found a problem.
	QualityAlert Kind = "quality_alert"
)

// Alert is one notification. Its JSON form has snake_case field names.
type Alert struct {
	Kind    Kind   `json:"kind"`
	DAGID   string `json:"dag_id"`
	RunID   string `json:"run_id"`
	TaskID  string `json:"task_id"`
	Try     int    `json:"try"`
	Message string `json:"message"`
	// At is when the condition was detected (the scheduler's clock).
	At      time.Time         `json:"at"`
	Details map[string]string `json:"details,omitempty"`
}

// Notifier delivers alerts.
type Notifier interface {
	Notify(ctx context.Context, a Alert) error
}

// Func adapts a function to Notifier.
type Func func(ctx context.Context, a Alert) error

// Notify calls f.
func (f Func) Notify(ctx context.Context, a Alert) error { return f(ctx, a) }

// Multi notifies every notifier, concurrently, and returns the errors.Join of
// their failures; a nil entry is skipped.
type Multi []Notifier

// Notify notifies all.
func (m Multi) Notify(ctx context.Context, a Alert) error {
	errs := make([]error, len(m))
	var wg sync.WaitGroup
	for i, n := range m {
		if n == nil {
			continue
		}
		wg.Go(func() { errs[i] = n.Notify(ctx, a) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Log writes alerts to a logger: run_failed, retries_exhausted and
// sensor_timeout at Error, the other kinds at Warn. A nil Logger means
// slog.Default().
type Log struct{ Logger *slog.Logger }

// Notify logs the message "alert" with the alert's fields as attributes
// (snake_case, as in JSON); details are grouped under "details".
func (l Log) Notify(ctx context.Context, a Alert) error {
	log := l.Logger
	if log == nil {
		log = slog.Default()
	}
	attrs := []slog.Attr{
		slog.String("kind", string(a.Kind)),
		slog.String("dag_id", a.DAGID),
		slog.String("run_id", a.RunID),
		slog.String("task_id", a.TaskID),
		slog.Int("try", a.Try),
		slog.String("message", a.Message),
		slog.Time("at", a.At),
	}
	if len(a.Details) > 0 {
		d := make([]any, 0, len(a.Details))
		for k, v := range a.Details {
			d = append(d, slog.String(k, v))
		}
		attrs = append(attrs, slog.Group("details", d...))
	}
	log.LogAttrs(ctx, a.Kind.level(), "alert", attrs...)
	return nil
}

func (k Kind) level() slog.Level {
	switch k {
	case RunFailed, RetriesExhausted, SensorTimeout:
		return slog.LevelError
	default:
		return slog.LevelWarn
	}
}
