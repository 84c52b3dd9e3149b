package dag

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// MinCompressed is the shortest waiting duration Compress produces from a
// longer one: a 30 s retry delay divided by 60 becomes one second, not
// half a second.
const MinCompressed = time.Second

// Compress returns a copy of d that runs on a faster clock, for demos: its
// Schedule is replaced by schedule (a DAG without a schedule stays manual
// and schedule is ignored), and every duration the engine waits is divided
// by factor:
//
//   - Task.RetryDelay, Task.MaxRetryDelay, Task.PokeInterval,
//     Task.SensorTimeout, Task.ExpectedDuration;
//   - DAG.RunDeadline and DAG.Catchup.MaxLateness.
//
// A compressed duration is at least MinCompressed (or the original, when
// that is shorter); zero stays zero (it means the default or none).
// Task.Timeout is not compressed: it bounds work, which takes as long as it
// takes. The copy is built with New and shares no task, map or slice with
// d; operators and sensors are the same values.
//
// Errors: factor < 1; a scheduled d with an empty schedule (it would turn
// manual silently). schedule itself is parsed by the schedule package, when
// a scheduler is built.
func Compress(d *DAG, factor int, schedule string) (*DAG, error) {
	if factor < 1 {
		return nil, fmt.Errorf("dag %s: compression factor %d < 1", d.ID, factor)
	}
	spec := DAG{
		ID:            d.ID,
		Description:   d.Description,
		Schedule:      d.Schedule,
		Location:      d.Location,
		DST:           d.DST,
		Start:         d.Start,
		Catchup:       Catchup{Mode: d.Catchup.Mode, MaxLateness: compress(d.Catchup.MaxLateness, factor)},
		MaxActiveRuns: d.MaxActiveRuns,
		RunDeadline:   compress(d.RunDeadline, factor),
		Params:        maps.Clone(d.Params),
		Tags:          slices.Clone(d.Tags),
	}
	if d.Schedule != "" {
		if schedule == "" {
			return nil, fmt.Errorf("dag %s: compress a scheduled DAG: empty schedule", d.ID)
		}
		spec.Schedule = schedule
	}
	tasks := make([]*Task, 0, len(d.tasks))
	for _, t := range d.Tasks() {
		c := *t
		c.RetryDelay = compress(t.RetryDelay, factor)
		c.MaxRetryDelay = compress(t.MaxRetryDelay, factor)
		c.PokeInterval = compress(t.PokeInterval, factor)
		c.SensorTimeout = compress(t.SensorTimeout, factor)
		c.ExpectedDuration = compress(t.ExpectedDuration, factor)
		tasks = append(tasks, &c)
	}
	out, err := New(spec, tasks...)
	if err != nil {
		return nil, fmt.Errorf("compress: %w", err)
	}
	return out, nil
}

// compress divides a positive duration by factor, with a floor of
// MinCompressed that never lengthens it; zero and negative durations are
// returned unchanged.
func compress(d time.Duration, factor int) time.Duration {
	if d <= 0 {
		return d
	}
	c := d / time.Duration(factor)
	if c < MinCompressed {
		c = min(d, MinCompressed)
	}
	return c
}
