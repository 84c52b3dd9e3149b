// Package schedule owns the meaning of a DAG's schedule: which instants a
// cron expression fires at in a time zone, the data intervals those instants
// delimit, and which intervals a scheduler must create runs for after
// downtime (Plan). It is pure logic: no I/O, no clock; every function takes
// the time it reasons about.
//
// # Fire times and data intervals
//
// An expression is a 5-field cron expression (minute hour day-of-month month
// day-of-week) or one of @yearly, @annually, @monthly, @weekly, @daily,
// @midnight and @hourly, read as wall-clock time in the schedule's location.
// When both day fields are restricted, a day matches if either does (Vixie
// cron). A run's data interval is [fire_k, fire_k+1): its logical date is the
// interval start and it is due at the interval end, as in Airflow. Intervals
// tile time: consecutive intervals share their endpoints, so no instant is
// ever missed or covered twice, also across daylight saving time changes.
// All computation is in absolute time; only matching is done on wall-clock
// fields.
//
// # Daylight saving time
//
// The DST policy (dag.DSTPolicy) decides what happens to wall-clock times that
// a transition skips or repeats. The examples are in Europe/Berlin, which
// springs forward on 2026-03-29 (02:00 CET becomes 03:00 CEST, so 02:00-02:59
// does not exist) and falls back on 2026-10-25 (03:00 CEST becomes 02:00 CET,
// so 02:00-02:59 happens twice).
//
// Gap "shift" (the default) fires a skipped wall time once, at the first
// instant after the gap. "30 2 * * *" fires at 03:00 CEST on 2026-03-29, and
// the intervals of the 28th and 29th are 23.5 hours long. If that instant is
// itself a fire time it fires only once: "0 * * * *" fires 23 times that day,
// and "*/15 2 * * *" fires once, at 03:00.
//
// Gap "skip" does not fire for a skipped wall time: "30 2 * * *" has no fire
// on 2026-03-29 and one interval of 47 hours, [03-28 02:30 CET,
// 03-30 02:30 CEST).
//
// Repeat "first" (the default) fires a repeated wall time at its first
// occurrence only: "30 2 * * *" fires at 02:30 CEST on 2026-10-25, and
// "0 * * * *" fires 24 times that day, with one interval of two hours
// [02:00 CEST, 03:00 CET).
//
// Repeat "both" fires at both occurrences: "30 2 * * *" fires at 02:30 CEST
// and again at 02:30 CET, and "0 * * * *" fires 25 times that day.
//
// A repeat is recognised against the offset in force just before a
// transition, which is how every current time zone behaves.
//
// # Errors and limits
//
// Parse rejects @every (intervals must align to the wall clock), a seconds
// field, TZ= and CRON_TZ= prefixes (the location is an argument), a nil
// location, unknown DST policy values and expressions that can never fire,
// such as "0 0 30 2 *". As a guard, Next and Prev look at most SearchYears
// ahead or back and return the zero time when they find nothing there.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/labplatform/platform/orchestrate/dag"
)

// SearchYears bounds how far Next and Prev look for a fire time. The longest
// gap between fires of a schedule Parse accepts is eight years (February 29th
// across 2100).
const SearchYears = 12

// Schedule is a parsed cron schedule in a time zone with a DST policy.
type Schedule struct {
	expr   string
	loc    *time.Location
	gap    string
	repeat string

	// Bit i is set when value i matches, as in cron.SpecSchedule, without
	// the star bit.
	minute, hour, dom, month, dow uint64
	// and is true when a day must match both day fields (one of them is *).
	and bool
}

// starBit is the bit cron.SpecSchedule sets on a field written as * or ?.
const starBit = 1 << 63

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

var descriptors = map[string]bool{
	"@yearly": true, "@annually": true, "@monthly": true, "@weekly": true,
	"@daily": true, "@midnight": true, "@hourly": true,
}

// Parse parses expr, a 5-field cron expression or one of @yearly, @annually,
// @monthly, @weekly, @daily, @midnight and @hourly, read in loc. An empty
// policy field takes its default (gap shift, repeat first).
func Parse(expr string, loc *time.Location, policy dag.DSTPolicy) (*Schedule, error) {
	e := strings.TrimSpace(expr)
	if err := checkSyntax(e); err != nil {
		return nil, fmt.Errorf("schedule %q: %w", expr, err)
	}
	if loc == nil {
		return nil, fmt.Errorf("schedule %q: nil location", expr)
	}
	gap, repeat := policy.Gap, policy.Repeat
	if gap == "" {
		gap = dag.GapShift
	}
	if repeat == "" {
		repeat = dag.RepeatFirst
	}
	if gap != dag.GapShift && gap != dag.GapSkip {
		return nil, fmt.Errorf("schedule %q: unknown DST gap policy %q (want %s or %s)", expr, policy.Gap, dag.GapShift, dag.GapSkip)
	}
	if repeat != dag.RepeatFirst && repeat != dag.RepeatBoth {
		return nil, fmt.Errorf("schedule %q: unknown DST repeat policy %q (want %s or %s)", expr, policy.Repeat, dag.RepeatFirst, dag.RepeatBoth)
	}
	parsed, err := parser.Parse(e)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", expr, err)
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("schedule %q: not a cron expression", expr)
	}
	s := &Schedule{
		expr:   e,
		loc:    loc,
		gap:    gap,
		repeat: repeat,
		minute: spec.Minute &^ starBit,
		hour:   spec.Hour &^ starBit,
		dom:    spec.Dom &^ starBit,
		month:  spec.Month &^ starBit,
		dow:    spec.Dow &^ starBit,
		and:    spec.Dom&starBit != 0 || spec.Dow&starBit != 0,
	}
	if !s.canFire() {
		return nil, fmt.Errorf("schedule %q: never fires: no selected month has the selected day of month", expr)
	}
	return s, nil
}

// checkSyntax rejects the cron forms this package does not support, with a
// clearer message than the cron parser gives.
func checkSyntax(e string) error {
	switch {
	case e == "":
		return errors.New("empty expression")
	case strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "CRON_TZ="):
		return errors.New("time zone prefixes are not supported: pass the location as an argument")
	case strings.HasPrefix(e, "@every"):
		return errors.New("@every is not supported: fire times must align to the wall clock; write a cron expression")
	case strings.HasPrefix(e, "@"):
		if !descriptors[e] {
			return errors.New("unknown descriptor (want @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)")
		}
		return nil
	}
	switch n := len(strings.Fields(e)); {
	case n == 6 || n == 7:
		return fmt.Errorf("%d fields: a seconds (or year) field is not supported; want 5 fields: minute hour day-of-month month day-of-week", n)
	case n != 5:
		return fmt.Errorf("%d fields; want 5: minute hour day-of-month month day-of-week", n)
	}
	return nil
}

// daysIn is the most days each month can have (February in a leap year).
var daysIn = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// canFire reports whether some date matches the schedule's day and month
// fields. Hours and minutes are never empty, and every (month, day) pair
// falls on each weekday in some year.
func (s *Schedule) canFire() bool {
	if !s.and || s.dow != 0x7f {
		// Either a day matches when one field does, or the day-of-month is *
		// and only the weekday restricts: every month has every weekday.
		return true
	}
	for m := 1; m <= 12; m++ {
		if s.month&(1<<m) == 0 {
			continue
		}
		if s.dom&(1<<(daysIn[m]+1)-1) != 0 {
			return true
		}
	}
	return false
}

// For returns d's schedule, or (nil, nil) when d.Schedule is empty (a
// manual-only DAG). A nil d.Location means UTC, as in dag.New.
func For(d *dag.DAG) (*Schedule, error) {
	if d.Schedule == "" {
		return nil, nil
	}
	loc := d.Location
	if loc == nil {
		loc = time.UTC
	}
	s, err := Parse(d.Schedule, loc, d.DST)
	if err != nil {
		return nil, fmt.Errorf("dag %s: %w", d.ID, err)
	}
	return s, nil
}

// String returns the expression, location and DST policy, such as
// "30 2 * * * in Europe/Berlin (gap=shift, repeat=first)".
func (s *Schedule) String() string {
	return fmt.Sprintf("%s in %s (gap=%s, repeat=%s)", s.expr, s.loc, s.gap, s.repeat)
}
