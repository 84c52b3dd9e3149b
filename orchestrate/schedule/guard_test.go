package schedule

import (
	"testing"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
)

// TestGuardImpossibleSchedule builds a schedule Parse would reject (February
// 30th) and checks that the searches give up instead of looping.
func TestGuardImpossibleSchedule(t *testing.T) {
	if _, err := Parse("0 0 30 2 *", time.UTC, dag.DSTPolicy{}); err == nil {
		t.Fatal("Parse accepted February 30th")
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	s := &Schedule{expr: "0 0 30 2 *", loc: berlin, gap: dag.GapShift, repeat: dag.RepeatFirst,
		minute: 1, hour: 1, dom: 1 << 30, month: 1 << 2, dow: 0x7f, and: true}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	if got := s.Next(now); !got.IsZero() {
		t.Errorf("Next = %v, want the zero time", got)
	}
	if got := s.Prev(now); !got.IsZero() {
		t.Errorf("Prev = %v, want the zero time", got)
	}
	if got := s.Between(now.AddDate(-1, 0, 0), now); len(got) != 0 {
		t.Errorf("Between = %v, want none", got)
	}
	if got := Plan(s, now.AddDate(-1, 0, 0), nil, now, dag.Catchup{Mode: dag.CatchupAll}); len(got) != 0 {
		t.Errorf("Plan = %v, want none", got)
	}
	if got := s.Containing(now); !got.Start.IsZero() || !got.End.IsZero() {
		t.Errorf("Containing = %v, want the zero interval", got)
	}
}

// TestGuardReachesRareDates checks that the search horizon covers the
// longest wait Parse allows: February 29th across 2100.
func TestGuardReachesRareDates(t *testing.T) {
	s, err := Parse("0 0 29 2 *", time.UTC, dag.DSTPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Next(time.Date(2096, 3, 1, 0, 0, 0, 0, time.UTC)), time.Date(2104, 2, 29, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Next = %v, want %v", got, want)
	}
	if got, want := s.Prev(time.Date(2104, 2, 28, 0, 0, 0, 0, time.UTC)), time.Date(2096, 2, 29, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Prev = %v, want %v", got, want)
	}
}
