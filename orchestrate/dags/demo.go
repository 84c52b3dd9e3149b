package dags

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/labplatform/platform/orchestrate/dag"
)

// DemoFactor is how much faster the platform's DAGs wait in demo mode: an
// hour becomes a minute.
const DemoFactor = 60

// The schedules of the platform's DAGs in demo mode (UTC). A day divided by
// DemoFactor is 24 minutes, which cron cannot express; the daily DAGs run
// every 15 minutes instead, offset so that they never fire in the same
// minute as each other, and in the order of the real schedule (quality at
// 01:30, lifecycle at 03:00): quality two minutes after the quarter hour,
// when the bq_load run of the minute before it has usually finished, and
// lifecycle five minutes later.
const (
	DemoBQLoadSchedule    = "* * * * *"
	DemoQualitySchedule   = "2-59/15 * * * *"
	DemoLifecycleSchedule = "7-59/15 * * * *"
)

// DemoTag is added to the tags of the DAGs Demo changes.
const DemoTag = "demo"

// Demo returns the platform's DAGs for a demo on a live local stack, where
// robots ship files in real time and a newcomer should see every DAG run
// within minutes. Each DAG it knows is compressed with dag.Compress by
// DemoFactor (retry delays, poke intervals, sensor timeouts, deadlines)
// onto its demo schedule:
//
//	bq_load    @hourly     -> * * * * *        (every minute)
//	quality    30 1 * * *  -> 2-59/15 * * * *  (every 15 minutes, at :02)
//	lifecycle  0 3 * * *   -> 7-59/15 * * * *  (every 15 minutes, at :07)
//
// Catchup is bounded by the compressed run deadline (bq_load 2 minutes,
// quality 6 minutes; lifecycle, which has none, "latest"): after a restart
// only the intervals that can still finish on time get a run, so a restart
// neither replays the missed minutes (each bq_load run reloads the whole day
// anyway) nor raises a deadline alert by itself; a daily DAG whose latest
// interval ended longer ago waits for its next fire, at most 15 minutes.
//
// The data are not compressed: a day of results is still a UTC day. So the
// demo quality DAG checks the day its data interval starts on, today so
// far, instead of the day before its interval end (the real DAG's "day that
// just ended"): run every 15 minutes on yesterday it would re-check a day
// that a fresh demo has no data for, or that stopped changing, and record
// nothing useful. The run parameter "day" still overrides it. The last run
// of a day (its interval starts at 23:47, it runs at 00:02) sees the whole
// day as bq_load last loaded it. A breach that persists is alerted at every
// run, every 15 minutes.
//
// Lifecycle judges ages as of its interval end, in real time: with the
// policies' ages in days it has nothing to move or delete on a fresh demo,
// and it rewrites today's cost report at each run.
//
// A DAG whose ID Demo does not know is returned unchanged (the same value).
// The result is in the order of list; errors name the DAG.
func Demo(list []*dag.DAG) ([]*dag.DAG, error) {
	out := make([]*dag.DAG, 0, len(list))
	var errs []error
	for _, d := range list {
		g, err := demo(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, g)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// demo returns d's demo version.
func demo(d *dag.DAG) (*dag.DAG, error) {
	var (
		schedule string
		note     string
		wrap     func(dag.Operator) dag.Operator
	)
	switch d.ID {
	case BQLoadID:
		schedule, note = DemoBQLoadSchedule, "Demo: every minute."
	case QualityID:
		schedule, note, wrap = DemoQualitySchedule, "Demo: every 15 minutes, on the UTC day its interval starts on (today so far).", onIntervalStartDay
	case LifecycleID:
		schedule, note = DemoLifecycleSchedule, "Demo: every 15 minutes."
	default:
		return d, nil
	}
	c, err := dag.Compress(d, DemoFactor, schedule)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	spec := *c
	spec.Catchup = dag.Catchup{Mode: dag.CatchupLatest}
	if spec.RunDeadline > 0 {
		spec.Catchup = dag.Catchup{Mode: dag.CatchupLateness, MaxLateness: spec.RunDeadline}
	}
	spec.Tags = append(spec.Tags, DemoTag)
	if spec.Description != "" {
		spec.Description += " "
	}
	spec.Description += note
	tasks := make([]*dag.Task, 0, len(c.Tasks()))
	for _, t := range c.Tasks() {
		cp := *t
		if wrap != nil && cp.Operator != nil {
			cp.Operator = wrap(cp.Operator)
		}
		tasks = append(tasks, &cp)
	}
	g, err := dag.New(spec, tasks...)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return g, nil
}

// onIntervalStartDay runs op with the run parameter "day" set to the UTC
// date its data interval starts on (bq_load's rule), unless the run sets it.
func onIntervalStartDay(op dag.Operator) dag.Operator {
	return dag.Func(func(ctx context.Context, tc *dag.TaskContext) error {
		if tc.Param(ParamDay, "") != "" {
			return op.Execute(ctx, tc)
		}
		day, err := loadDay(tc)
		if err != nil {
			return err
		}
		c := *tc
		c.Params = maps.Clone(tc.Params)
		if c.Params == nil {
			c.Params = map[string]string{}
		}
		c.Params[ParamDay] = day.String()
		return op.Execute(ctx, &c)
	})
}
