package schedule_test

import (
	"context"
	"strings"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/schedule"
)

var (
	defaultPolicy = dag.DSTPolicy{Gap: dag.GapShift, Repeat: dag.RepeatFirst}
	shiftFirst    = dag.DSTPolicy{Gap: dag.GapShift, Repeat: dag.RepeatFirst}
	shiftBoth     = dag.DSTPolicy{Gap: dag.GapShift, Repeat: dag.RepeatBoth}
	skipFirst     = dag.DSTPolicy{Gap: dag.GapSkip, Repeat: dag.RepeatFirst}
	skipBoth      = dag.DSTPolicy{Gap: dag.GapSkip, Repeat: dag.RepeatBoth}
	allPolicies   = []dag.DSTPolicy{shiftFirst, shiftBoth, skipFirst, skipBoth}
)

func load(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

func mustParse(t testing.TB, expr string, loc *time.Location, p dag.DSTPolicy) *schedule.Schedule {
	t.Helper()
	s, err := schedule.Parse(expr, loc, p)
	if err != nil {
		t.Fatalf("Parse(%q): %v", expr, err)
	}
	return s
}

func at(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("parse time %q: %v", s, err)
	}
	return v
}

func TestParseRejects(t *testing.T) {
	berlin := load(t, "Europe/Berlin")
	tests := []struct {
		name    string
		expr    string
		loc     *time.Location
		policy  dag.DSTPolicy
		wantErr string
	}{
		{name: "empty", expr: "  ", loc: berlin, wantErr: "empty expression"},
		{name: "every", expr: "@every 1h", loc: berlin, wantErr: "@every is not supported"},
		{name: "unknown descriptor", expr: "@reboot", loc: berlin, wantErr: "unknown descriptor"},
		{name: "seconds field", expr: "0 0 * * * *", loc: berlin, wantErr: "seconds"},
		{name: "too few fields", expr: "0 * * *", loc: berlin, wantErr: "4 fields; want 5"},
		{name: "TZ prefix", expr: "TZ=Europe/Berlin 0 * * * *", loc: berlin, wantErr: "time zone prefixes"},
		{name: "CRON_TZ prefix", expr: "CRON_TZ=UTC 0 * * * *", loc: berlin, wantErr: "time zone prefixes"},
		{name: "minute out of range", expr: "60 * * * *", loc: berlin, wantErr: "above maximum"},
		{name: "garbage", expr: "a b c d e", loc: berlin, wantErr: "schedule \"a b c d e\""},
		{name: "nil location", expr: "0 * * * *", loc: nil, wantErr: "nil location"},
		{name: "unknown gap policy", expr: "0 * * * *", loc: berlin, policy: dag.DSTPolicy{Gap: "later"}, wantErr: "unknown DST gap policy \"later\""},
		{name: "unknown repeat policy", expr: "0 * * * *", loc: berlin, policy: dag.DSTPolicy{Repeat: "second"}, wantErr: "unknown DST repeat policy \"second\""},
		{name: "february 30th", expr: "0 0 30 2 *", loc: berlin, wantErr: "never fires"},
		{name: "april and june 31st", expr: "0 0 31 4,6 *", loc: berlin, wantErr: "never fires"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := schedule.Parse(tt.expr, tt.loc, tt.policy)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tt.expr, s)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) error %q, want it to contain %q", tt.expr, err, tt.wantErr)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	berlin := load(t, "Europe/Berlin")
	tests := []struct {
		name string
		expr string
		// same is an equivalent 5-field expression.
		same string
	}{
		{name: "yearly", expr: "@yearly", same: "0 0 1 1 *"},
		{name: "annually", expr: "@annually", same: "0 0 1 1 *"},
		{name: "monthly", expr: "@monthly", same: "0 0 1 * *"},
		{name: "weekly", expr: "@weekly", same: "0 0 * * 0"},
		{name: "daily", expr: "@daily", same: "0 0 * * *"},
		{name: "midnight", expr: "@midnight", same: "0 0 * * *"},
		{name: "hourly", expr: "@hourly", same: "0 * * * *"},
		{name: "names", expr: "30 6 * jan-mar mon-fri", same: "30 6 * 1-3 1-5"},
		{name: "february 29th", expr: "0 0 29 2 *", same: "0 0 29 2 *"},
		{name: "day 31 or a weekday", expr: "0 0 31 2 1", same: "0 0 * 2 1"},
		{name: "surrounding spaces", expr: "  0 3 * * *  ", same: "0 3 * * *"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, berlin, dag.DSTPolicy{})
			same := mustParse(t, tt.same, berlin, defaultPolicy)
			cur := at(t, "2023-12-30T12:00:00Z")
			for range 20 {
				got, want := s.Next(cur), same.Next(cur)
				if !got.Equal(want) {
					t.Fatalf("%s.Next(%v) = %v, want %v (as %q)", tt.expr, cur, got, want, tt.same)
				}
				cur = got
			}
		})
	}
}

func TestString(t *testing.T) {
	s := mustParse(t, " 30 2 * * * ", load(t, "Europe/Berlin"), dag.DSTPolicy{Repeat: dag.RepeatBoth})
	if got, want := s.String(), "30 2 * * * in Europe/Berlin (gap=shift, repeat=both)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestFor(t *testing.T) {
	berlin := load(t, "Europe/Berlin")
	noop := &dag.Task{ID: "noop", Operator: dag.Func(func(context.Context, *dag.TaskContext) error { return nil })}
	newDAG := func(t *testing.T, spec dag.DAG) *dag.DAG {
		t.Helper()
		d, err := dag.New(spec, noop)
		if err != nil {
			t.Fatalf("dag.New: %v", err)
		}
		return d
	}

	t.Run("manual only", func(t *testing.T) {
		s, err := schedule.For(newDAG(t, dag.DAG{ID: "manual"}))
		if s != nil || err != nil {
			t.Errorf("For(manual DAG) = %v, %v; want nil, nil", s, err)
		}
	})
	t.Run("location and policy", func(t *testing.T) {
		d := newDAG(t, dag.DAG{ID: "nightly", Schedule: "30 2 * * *", Location: berlin, DST: dag.DSTPolicy{Gap: dag.GapSkip}})
		s, err := schedule.For(d)
		if err != nil {
			t.Fatalf("For: %v", err)
		}
		if got, want := s.String(), "30 2 * * * in Europe/Berlin (gap=skip, repeat=first)"; got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
		// Skip: no fire on the spring-forward day.
		got := s.Next(at(t, "2026-03-28T12:00:00+01:00"))
		if want := at(t, "2026-03-30T02:30:00+02:00"); !got.Equal(want) {
			t.Errorf("Next = %v, want %v", got, want)
		}
	})
	t.Run("nil location is UTC", func(t *testing.T) {
		s, err := schedule.For(&dag.DAG{ID: "raw", Schedule: "@daily"})
		if err != nil {
			t.Fatalf("For: %v", err)
		}
		if got, want := s.Next(at(t, "2026-01-01T12:00:00Z")), at(t, "2026-01-02T00:00:00Z"); !got.Equal(want) {
			t.Errorf("Next = %v, want %v", got, want)
		}
	})
	t.Run("bad schedule names the dag", func(t *testing.T) {
		_, err := schedule.For(newDAG(t, dag.DAG{ID: "broken", Schedule: "@every 5m"}))
		if err == nil || !strings.Contains(err.Error(), "dag broken") {
			t.Errorf("For(broken) error = %v, want one naming dag broken", err)
		}
	})
}
