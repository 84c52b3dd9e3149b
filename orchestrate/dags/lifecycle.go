package dags

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
)

// Lifecycle is what the lifecycle DAG needs from the lifecycle module. It
// uses only standard types, so that module satisfies it without importing
// orchestrate. Each method returns a one-line human summary for the task log.
type Lifecycle interface {
	// Apply plans the bucket lifecycle policies and applies them (plans
	// only, with dryRun).
	Apply(ctx context.Context, dryRun bool) (summary string, err error)
	// Enforce runs the data-aware enforcer as of now.
	Enforce(ctx context.Context, now time.Time, dryRun bool) (summary string, err error)
	// Cost reports the storage cost as of now and alerts on anomalies.
	Cost(ctx context.Context, now time.Time) (summary string, err error)
}

// LifecycleID is the ID of the lifecycle DAG.
const LifecycleID = "lifecycle"

// The tasks of the lifecycle DAG, in order.
const (
	TaskApplyPolicies = "apply_policies"
	TaskEnforce       = "enforce"
	TaskCostReport    = "cost_report"
)

// ParamDryRun, "true" on a run, makes apply_policies and enforce plan
// without changing anything. A task under `orchestrate tasks test` is a dry
// run too.
const ParamDryRun = "dry_run"

// LifecycleDAG returns the daily DAG apply_policies -> enforce -> cost_report.
// Enforce and Cost get the end of the run's data interval as "now", so a
// re-run or a late run judges ages as of its own day, not of the moment it
// runs; a run without an interval uses the scheduler's clock.
func LifecycleDAG(d Deps) (*dag.DAG, error) {
	if d.Lifecycle == nil {
		return nil, errors.New("dag lifecycle: no Lifecycle")
	}
	lc := d.Lifecycle
	task := func(id string, upstream []string, run func(ctx context.Context, tc *dag.TaskContext, dry bool) (string, error)) *dag.Task {
		return &dag.Task{
			ID:       id,
			Upstream: upstream,
			Operator: dag.Func(func(ctx context.Context, tc *dag.TaskContext) error {
				dry, err := dryRun(tc)
				if err != nil {
					return err
				}
				summary, err := run(ctx, tc, dry)
				if err != nil {
					return fmt.Errorf("%s: %w", id, err)
				}
				logger(tc).Info(id+" done", "summary", summary, "dry_run", dry)
				return nil
			}),
			Retries:    2,
			RetryDelay: 5 * time.Minute,
			Timeout:    time.Hour,
		}
	}
	return dag.New(dag.DAG{
		ID:            LifecycleID,
		Description:   "Apply the buckets' lifecycle policies, enforce the data-aware retention rules, report storage cost.",
		Schedule:      "0 3 * * *",
		Location:      time.UTC,
		Catchup:       dag.Catchup{Mode: dag.CatchupLatest},
		MaxActiveRuns: 1,
		Params:        map[string]string{ParamDryRun: "false"},
		Tags:          []string{"storage", "lifecycle"},
	},
		task(TaskApplyPolicies, nil, func(ctx context.Context, _ *dag.TaskContext, dry bool) (string, error) {
			return lc.Apply(ctx, dry)
		}),
		task(TaskEnforce, []string{TaskApplyPolicies}, func(ctx context.Context, tc *dag.TaskContext, dry bool) (string, error) {
			return lc.Enforce(ctx, asOf(tc), dry)
		}),
		task(TaskCostReport, []string{TaskEnforce}, func(ctx context.Context, tc *dag.TaskContext, _ bool) (string, error) {
			return lc.Cost(ctx, asOf(tc))
		}),
	)
}

// dryRun reports whether the run only plans. A malformed dry_run is an
// error rather than a real run.
func dryRun(tc *dag.TaskContext) (bool, error) {
	s := tc.Param(ParamDryRun, "false")
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("run parameter %s=%q is not true or false", ParamDryRun, s)
	}
	return v || tc.DryRun, nil
}

// asOf is the instant a lifecycle run judges ages at.
func asOf(tc *dag.TaskContext) time.Time {
	if !tc.Interval.End.IsZero() {
		return tc.Interval.End
	}
	return now(tc)
}
