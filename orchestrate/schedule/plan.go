package schedule

import (
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
)

// Containing returns the data interval [Prev(t), Next(Prev(t))) that
// contains t. When no fire time lies within SearchYears before t, Start is
// zero and End is Next(t).
func (s *Schedule) Containing(t time.Time) dag.Interval {
	p := s.Prev(t)
	if p.IsZero() {
		return dag.Interval{End: s.Next(t)}
	}
	return dag.Interval{Start: p, End: s.Next(p)}
}

// Between returns the intervals whose Start lies in [from, to] (inclusive),
// in order; backfills use it.
func (s *Schedule) Between(from, to time.Time) []dag.Interval {
	var out []dag.Interval
	for f := s.atOrAfter(from); !f.IsZero() && !f.After(to); {
		n := s.Next(f)
		if n.IsZero() {
			break
		}
		out = append(out, dag.Interval{Start: f, End: n})
		f = n
	}
	return out
}

// atOrAfter returns the first fire time at or after t.
func (s *Schedule) atOrAfter(t time.Time) time.Time {
	return s.Next(t.Add(-time.Nanosecond))
}

// latestCompleted returns the newest interval that ended at or before now.
func (s *Schedule) latestCompleted(now time.Time) (dag.Interval, bool) {
	end := s.Prev(now)
	if end.IsZero() {
		return dag.Interval{}, false
	}
	start := s.Prev(end.Add(-time.Nanosecond))
	if start.IsZero() {
		return dag.Interval{}, false
	}
	return dag.Interval{Start: start, End: end}, true
}

// Plan returns, oldest first, the intervals a scheduler must create runs for
// at now: intervals that ended (End <= now), with Start >= start, and, when
// last is not nil, Start >= last.End, so nothing before or overlapping the
// latest scheduled run. On the first run of a DAG without a start (last nil,
// start zero) only the latest completed interval is considered.
//
// The catchup policy then filters: CatchupAll keeps every interval,
// CatchupLatest only the newest, CatchupLateness those with
// End >= now-MaxLateness. An empty or unknown mode behaves as CatchupAll (the
// dag package's default; dag.New rejects unknown modes). A nil s (a
// manual-only DAG) plans nothing.
func Plan(s *Schedule, start time.Time, last *dag.Interval, now time.Time, c dag.Catchup) []dag.Interval {
	if s == nil {
		return nil
	}
	lo := start
	if last != nil && last.End.After(lo) {
		lo = last.End
	}
	lateness := c.Mode == dag.CatchupLateness
	oldestEnd := now.Add(-c.MaxLateness)

	if lo.IsZero() || c.Mode == dag.CatchupLatest {
		iv, ok := s.latestCompleted(now)
		if !ok || iv.Start.Before(lo) || (lateness && iv.End.Before(oldestEnd)) {
			return nil
		}
		return []dag.Interval{iv}
	}

	begin := lo
	if lateness {
		// The first interval ending at or after oldestEnd starts at the last
		// fire time before it.
		if b := s.Prev(oldestEnd.Add(-time.Nanosecond)); b.After(begin) {
			begin = b
		}
	}
	var out []dag.Interval
	for f := s.atOrAfter(begin); !f.IsZero(); {
		n := s.Next(f)
		if n.IsZero() || n.After(now) {
			break
		}
		if !lateness || !n.Before(oldestEnd) {
			out = append(out, dag.Interval{Start: f, End: n})
		}
		f = n
	}
	return out
}
