package schedule_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/schedule"
)

func ivs(t *testing.T, pairs ...string) []dag.Interval {
	t.Helper()
	var out []dag.Interval
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, dag.Interval{Start: at(t, pairs[i]), End: at(t, pairs[i+1])})
	}
	return out
}

func equalIntervals(a, b []dag.Interval) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Start.Equal(b[i].Start) || !a[i].End.Equal(b[i].End) {
			return false
		}
	}
	return true
}

func TestBetween(t *testing.T) {
	berlin := load(t, "Europe/Berlin")
	daily := mustParse(t, "@daily", time.UTC, defaultPolicy)
	tests := []struct {
		name     string
		s        *schedule.Schedule
		from, to string
		want     []dag.Interval
	}{
		{name: "both ends inclusive", s: daily, from: "2026-01-01T00:00:00Z", to: "2026-01-03T00:00:00Z",
			want: ivs(t, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z",
				"2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z")},
		{name: "unaligned ends", s: daily, from: "2026-01-01T00:00:01Z", to: "2026-01-02T23:59:59Z",
			want: ivs(t, "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z")},
		{name: "no start inside", s: daily, from: "2026-01-01T01:00:00Z", to: "2026-01-01T23:00:00Z", want: nil},
		{name: "to before from", s: daily, from: "2026-01-05T00:00:00Z", to: "2026-01-01T00:00:00Z", want: nil},
		{name: "berlin daily over spring forward", s: mustParse(t, "0 0 * * *", berlin, defaultPolicy),
			from: "2026-03-28T00:00:00+01:00", to: "2026-03-29T00:00:00+01:00",
			want: ivs(t, "2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00", "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00")},
		{name: "berlin 02:30 skip over spring forward", s: mustParse(t, "30 2 * * *", berlin, skipFirst),
			from: "2026-03-28T00:00:00+01:00", to: "2026-03-30T12:00:00+02:00",
			want: ivs(t, "2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.s.Between(at(t, tt.from), at(t, tt.to))
			if !equalIntervals(got, tt.want) {
				t.Errorf("Between(%s, %s) =\n %v\nwant\n %v", tt.from, tt.to, got, tt.want)
			}
		})
	}
}

func TestBetweenYearHourly(t *testing.T) {
	s := mustParse(t, "@hourly", load(t, "Europe/Berlin"), defaultPolicy)
	got := s.Between(at(t, "2026-01-01T00:00:00+01:00"), at(t, "2026-12-31T23:59:59+01:00"))
	// 365 days of 24 hours; the repeated hour is not a fire time of its own.
	if len(got) != 365*24-1 {
		t.Errorf("%d intervals, want %d", len(got), 365*24-1)
	}
	var total time.Duration
	for _, iv := range got {
		total += iv.End.Sub(iv.Start)
	}
	if want := 365 * 24 * time.Hour; total != want {
		t.Errorf("intervals cover %v, want %v", total, want)
	}
}

func TestPlan(t *testing.T) {
	hourly := mustParse(t, "0 * * * *", time.UTC, defaultPolicy)
	daily := mustParse(t, "0 0 * * *", time.UTC, defaultPolicy)
	berlinDaily := mustParse(t, "0 0 * * *", load(t, "Europe/Berlin"), defaultPolicy)
	all := dag.Catchup{Mode: dag.CatchupAll}
	latest := dag.Catchup{Mode: dag.CatchupLatest}
	lateness := func(d time.Duration) dag.Catchup { return dag.Catchup{Mode: dag.CatchupLateness, MaxLateness: d} }
	last := func(start, end string) *dag.Interval { return &dag.Interval{Start: at(t, start), End: at(t, end)} }
	downtime := last("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
	const afterDowntime = "2026-01-05T10:00:00Z"

	tests := []struct {
		name    string
		s       *schedule.Schedule
		start   string
		last    *dag.Interval
		now     string
		catchup dag.Catchup
		want    []dag.Interval
	}{
		{name: "first run without start: latest completed only", s: hourly, now: "2026-01-01T10:30:00Z", catchup: all,
			want: ivs(t, "2026-01-01T09:00:00Z", "2026-01-01T10:00:00Z")},
		{name: "first run without start, now on a fire time", s: hourly, now: "2026-01-01T10:00:00Z", catchup: all,
			want: ivs(t, "2026-01-01T09:00:00Z", "2026-01-01T10:00:00Z")},
		{name: "first run without start, late", s: hourly, now: "2026-01-01T10:30:00Z", catchup: lateness(10 * time.Minute), want: nil},
		{name: "first run without start, within lateness", s: hourly, now: "2026-01-01T10:30:00Z", catchup: lateness(time.Hour),
			want: ivs(t, "2026-01-01T09:00:00Z", "2026-01-01T10:00:00Z")},
		{name: "first run with start: all since start", s: hourly, start: "2026-01-01T06:00:00Z", now: "2026-01-01T09:30:00Z", catchup: all,
			want: ivs(t, "2026-01-01T06:00:00Z", "2026-01-01T07:00:00Z", "2026-01-01T07:00:00Z", "2026-01-01T08:00:00Z",
				"2026-01-01T08:00:00Z", "2026-01-01T09:00:00Z")},
		{name: "first run with start: latest", s: hourly, start: "2026-01-01T06:00:00Z", now: "2026-01-01T09:30:00Z", catchup: latest,
			want: ivs(t, "2026-01-01T08:00:00Z", "2026-01-01T09:00:00Z")},
		{name: "unaligned start", s: hourly, start: "2026-01-01T06:30:00Z", now: "2026-01-01T09:30:00Z", catchup: all,
			want: ivs(t, "2026-01-01T07:00:00Z", "2026-01-01T08:00:00Z", "2026-01-01T08:00:00Z", "2026-01-01T09:00:00Z")},
		{name: "nothing ended yet", s: hourly, start: "2026-01-01T06:00:00Z", now: "2026-01-01T06:59:59Z", catchup: all, want: nil},
		{name: "start in the future", s: hourly, start: "2026-02-01T00:00:00Z", now: "2026-01-01T09:30:00Z", catchup: latest, want: nil},
		{name: "downtime: all", s: daily, start: "2025-06-01T00:00:00Z", last: downtime, now: afterDowntime, catchup: all,
			want: ivs(t, "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z",
				"2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z")},
		{name: "downtime: latest", s: daily, start: "2025-06-01T00:00:00Z", last: downtime, now: afterDowntime, catchup: latest,
			want: ivs(t, "2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z")},
		{name: "downtime: max lateness 36h", s: daily, last: downtime, now: afterDowntime, catchup: lateness(36 * time.Hour),
			want: ivs(t, "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z")},
		{name: "downtime: max lateness ends exactly at the bound", s: daily, last: downtime, now: afterDowntime, catchup: lateness(58 * time.Hour),
			want: ivs(t, "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z",
				"2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z")},
		{name: "downtime: max lateness just misses", s: daily, last: downtime, now: afterDowntime, catchup: lateness(58*time.Hour - time.Second),
			want: ivs(t, "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z")},
		{name: "downtime: max lateness shorter than the wait", s: daily, last: downtime, now: afterDowntime, catchup: lateness(time.Hour), want: nil},
		{name: "downtime without start: all since last", s: daily, last: downtime, now: afterDowntime, catchup: all,
			want: ivs(t, "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z",
				"2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z")},
		{name: "up to date", s: daily, last: last("2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z"), now: afterDowntime, catchup: all, want: nil},
		{name: "up to date: latest", s: daily, last: last("2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z"), now: afterDowntime, catchup: latest, want: nil},
		{name: "unaligned last end", s: daily, last: last("2026-01-01T00:00:00Z", "2026-01-02T12:00:00Z"), now: afterDowntime, catchup: all,
			want: ivs(t, "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z")},
		{name: "latest overlaps the last run", s: daily, last: last("2026-01-04T00:00:00Z", "2026-01-04T12:00:00Z"), now: afterDowntime, catchup: latest, want: nil},
		{name: "start after last", s: daily, start: "2026-01-04T00:00:00Z", last: downtime, now: afterDowntime, catchup: all,
			want: ivs(t, "2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z")},
		{name: "several days in berlin over spring forward", s: berlinDaily, start: "2026-03-28T00:00:00+01:00", now: "2026-03-31T00:00:00+02:00", catchup: all,
			want: ivs(t, "2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00", "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00",
				"2026-03-30T00:00:00+02:00", "2026-03-31T00:00:00+02:00")},
		{name: "manual only", s: nil, start: "2026-01-01T00:00:00Z", now: afterDowntime, catchup: all, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var start time.Time
			if tt.start != "" {
				start = at(t, tt.start)
			}
			got := schedule.Plan(tt.s, start, tt.last, at(t, tt.now), tt.catchup)
			if !equalIntervals(got, tt.want) {
				t.Errorf("Plan =\n %v\nwant\n %v", got, tt.want)
			}
		})
	}
}

// TestPlanProperty checks Plan's promises over random inputs: nothing before
// last.End or start, nothing unfinished, intervals of the schedule in order,
// and what each catchup policy keeps.
func TestPlanProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	berlin := load(t, "Europe/Berlin")
	scheds := []*schedule.Schedule{
		mustParse(t, "0 * * * *", berlin, shiftFirst),
		mustParse(t, "30 2 * * *", berlin, skipBoth),
		mustParse(t, "*/20 * * * *", load(t, "America/New_York"), shiftBoth),
		mustParse(t, "0 6 * * 1", time.UTC, shiftFirst),
	}
	modes := []dag.CatchupMode{dag.CatchupAll, dag.CatchupLatest, dag.CatchupLateness}
	base := at(t, "2026-03-20T00:00:00Z")
	for i := range 400 {
		s := scheds[r.IntN(len(scheds))]
		c := dag.Catchup{Mode: modes[r.IntN(len(modes))], MaxLateness: time.Duration(1+r.IntN(72)) * time.Hour}
		now := base.Add(time.Duration(r.Int64N(int64(30 * 24 * time.Hour))))
		var start time.Time
		if r.IntN(3) > 0 {
			start = now.Add(-time.Duration(r.Int64N(int64(15 * 24 * time.Hour))))
		}
		var last *dag.Interval
		if r.IntN(4) > 0 {
			iv := s.Containing(now.Add(-time.Duration(r.Int64N(int64(12 * 24 * time.Hour)))))
			if r.IntN(5) == 0 { // a manual run with an arbitrary interval
				iv.End = iv.Start.Add(time.Duration(r.Int64N(int64(48 * time.Hour))))
			}
			last = &iv
		}
		got := schedule.Plan(s, start, last, now, c)
		desc := fmt.Sprintf("case %d: Plan(%v, start=%v, last=%v, now=%v, %+v) = %v", i, s, start, last, now, c, got)

		lo := start
		if last != nil && last.End.After(lo) {
			lo = last.End
		}
		for j, iv := range got {
			if last != nil && iv.Start.Before(last.End) {
				t.Fatalf("%s: %v starts before last.End", desc, iv)
			}
			if iv.Start.Before(start) || iv.End.After(now) {
				t.Fatalf("%s: %v outside [start, now]", desc, iv)
			}
			if !s.Next(iv.Start).Equal(iv.End) || !s.Prev(iv.Start).Equal(iv.Start) {
				t.Fatalf("%s: %v is not one of the schedule's intervals", desc, iv)
			}
			if j > 0 && !got[j-1].End.Equal(iv.Start) {
				t.Fatalf("%s: not consecutive at %d", desc, j)
			}
		}
		// What "all" would return, computed independently.
		var eligible []dag.Interval
		if lo.IsZero() {
			c := s.Containing(now)
			eligible = s.Between(s.Prev(c.Start.Add(-time.Nanosecond)), c.Start)
			eligible = eligible[:1]
		} else {
			for _, iv := range s.Between(lo, now) {
				if !iv.End.After(now) {
					eligible = append(eligible, iv)
				}
			}
		}
		var want []dag.Interval
		switch c.Mode {
		case dag.CatchupAll:
			want = eligible
		case dag.CatchupLatest:
			if len(eligible) > 0 {
				want = eligible[len(eligible)-1:]
			}
		case dag.CatchupLateness:
			for _, iv := range eligible {
				if !iv.End.Before(now.Add(-c.MaxLateness)) {
					want = append(want, iv)
				}
			}
		}
		if !equalIntervals(got, want) {
			t.Fatalf("%s, want %v", desc, want)
		}
	}
}

func BenchmarkBetweenYearHourly(b *testing.B) {
	s := mustParse(b, "@hourly", load(b, "Europe/Berlin"), defaultPolicy)
	from, to := at(b, "2026-01-01T00:00:00+01:00"), at(b, "2026-12-31T23:59:59+01:00")
	for b.Loop() {
		if n := len(s.Between(from, to)); n != 365*24-1 {
			b.Fatalf("%d intervals", n)
		}
	}
}
