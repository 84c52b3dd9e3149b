package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/notify"
	"github.com/labplatform/platform/orchestrate/scheduler"
)

// testResult is the outcome of "tasks test" (its JSON output).
type testResult struct {
	DAGID    string       `json:"dag_id"`
	TaskID   string       `json:"task_id"`
	Sensor   bool         `json:"sensor"`
	Interval dag.Interval `json:"interval"`
	// Outcome is succeeded, skipped, failed, condition_met or waiting.
	Outcome string  `json:"outcome"`
	Waiting string  `json:"waiting,omitempty"`
	Error   string  `json:"error,omitempty"`
	Seconds float64 `json:"seconds"`
}

func (a *app) tasksTest(ctx context.Context, args []string) error {
	var c common
	fs := a.flagSet("tasks test", &c)
	date := fs.String("date", "", "logical date: RFC 3339 or YYYY-MM-DD (default: the latest complete interval)")
	params := paramsFlag{}
	fs.Var(params, "param", "run parameter name=value (repeatable)")
	level := fs.String("log-level", "debug", "task log level on standard error: debug, info, warn or error")
	pos, err := a.parse(fs, &c, args, "<dag> <task> [--date D] [--param k=v ...]", 2, 2)
	if err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return usageErrorf("--log-level: %v", err)
	}
	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl}))
	// Names and parameters are checked first on DAGs built without
	// credentials, so that a typo is a usage error wherever it is made.
	check, err := a.open(ctx, &c, needs{})
	if err != nil {
		return err
	}
	err = checkTask(check, pos[0], pos[1], params)
	check.Close()
	if err != nil {
		return err
	}
	// The store is not opened: a test reads and writes no state.
	s, d, err := a.openDAG(ctx, &c, needs{clients: true, notifier: notify.Log{Logger: log}}, pos[0])
	if err != nil {
		return err
	}
	defer s.Close()
	t, ok := d.Task(pos[1])
	if !ok {
		return usageErrorf("dag %s has no task %q", d.ID, pos[1])
	}
	var at time.Time
	if *date != "" {
		if at, _, err = parseDate("date", *date, d.Location); err != nil {
			return err
		}
	}
	iv, err := scheduler.TriggerInterval(d, at, a.now())
	if err != nil {
		return err
	}
	res := testResult{DAGID: d.ID, TaskID: t.ID, Sensor: t.IsSensor(), Interval: iv}
	log.Info("testing task; nothing is recorded", "dag", d.ID, "task", t.ID, "interval", iv.String(),
		"params", fmtParams(mergeParams(d.Params, params)))
	start := a.now()
	done, waiting, terr := scheduler.TestTask(ctx, d, t.ID, at, params, a.now, log)
	res.Seconds = a.now().Sub(start).Seconds()
	var result error
	switch {
	case errors.Is(terr, scheduler.ErrUnknownParam):
		return withCode(exitUsage, terr)
	case errors.Is(terr, dag.ErrSkip):
		res.Outcome, res.Error = "skipped", terr.Error()
	case terr != nil:
		res.Outcome, res.Error = "failed", terr.Error()
		result = withCode(exitFailure, fmt.Errorf("task %s of %s failed: %w", t.ID, d.ID, terr))
	case t.IsSensor() && done:
		res.Outcome = "condition_met"
	case t.IsSensor():
		res.Outcome, res.Waiting = "waiting", waiting
		result = withCode(exitWaiting, fmt.Errorf("sensor %s of %s: condition not met; waiting for: %s", t.ID, d.ID, orDash(waiting)))
	default:
		res.Outcome = "succeeded"
	}
	if c.json {
		if err := writeJSON(a.stdout, res); err != nil {
			return err
		}
		return result
	}
	switch res.Outcome {
	case "succeeded":
		fmt.Fprintf(a.stdout, "task %s of %s succeeded in %s for %s\n", t.ID, d.ID, fmtDuration(time.Duration(res.Seconds*float64(time.Second))), iv)
	case "skipped":
		fmt.Fprintf(a.stdout, "task %s of %s skipped itself: %s\n", t.ID, d.ID, res.Error)
	case "failed":
		fmt.Fprintf(a.stdout, "task %s of %s failed for %s: %s\n", t.ID, d.ID, iv, res.Error)
	case "condition_met":
		fmt.Fprintf(a.stdout, "sensor %s of %s: condition met for %s\n", t.ID, d.ID, iv)
	case "waiting":
		fmt.Fprintf(a.stdout, "sensor %s of %s: condition not met for %s; still waiting for: %s\n", t.ID, d.ID, iv, orDash(waiting))
	}
	return result
}

// checkTask reports an unknown DAG, task or parameter as a usage error.
func checkTask(s *session, dagID, taskID string, params map[string]string) error {
	d, err := s.dag(dagID)
	if err != nil {
		return err
	}
	if _, ok := d.Task(taskID); !ok {
		ids := make([]string, 0, len(d.Tasks()))
		for _, t := range d.Tasks() {
			ids = append(ids, t.ID)
		}
		return usageErrorf("dag %s has no task %q (tasks: %s)", d.ID, taskID, strings.Join(ids, ", "))
	}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if _, ok := d.Params[k]; !ok {
			known := slices.Sorted(maps.Keys(d.Params))
			return withCode(exitUsage, fmt.Errorf("dag %s: %w %q (known: %s)", d.ID, scheduler.ErrUnknownParam, k, strings.Join(known, ", ")))
		}
	}
	return nil
}

// mergeParams returns the defaults overridden by the given parameters.
func mergeParams(defaults, given map[string]string) map[string]string {
	out := make(map[string]string, len(defaults)+len(given))
	maps.Copy(out, defaults)
	maps.Copy(out, given)
	return out
}
