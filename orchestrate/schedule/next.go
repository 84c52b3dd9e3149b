package schedule

import (
	"math/bits"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
)

// The search walks the location's zone periods (spans of constant UTC
// offset). Inside one period wall-clock time and absolute time map one to
// one, so fire times are the matching wall-clock minutes, found by skipping
// through the field bitsets; at a period's start the DST policy adds the
// shifted fire of a gap or removes the second occurrences of a repeat.
// Wall-clock times are represented as time.Time values in UTC.

// period is a span [start, end) of constant UTC offset in the schedule's
// location. A zero start means since the beginning of time, a zero end
// forever. prevOff is the offset in force just before start.
type period struct {
	start, end   time.Time
	off, prevOff int
}

// periodAt returns the period holding t. It merges the spans
// time.Time.ZoneBounds reports into spans of constant offset: ZoneBounds also
// splits where only the zone's name changes and, for instants past a zone's
// last listed transition (computed from its TZ rule), at UTC year ends. In a
// leap year that rule code reports an end of December 31st 00:00 UTC for
// instants after it, an end that is not after t, so the merge steps to the
// next year instead.
func (s *Schedule) periodAt(t time.Time) period {
	lt := t.In(s.loc)
	_, off := lt.Zone()
	start, end := lt.ZoneBounds()
	for cur := t; !end.IsZero(); {
		if !end.After(cur) {
			end = time.Date(cur.UTC().Year()+1, time.January, 1, 0, 0, 0, 0, time.UTC)
		}
		et := end.In(s.loc)
		if _, o := et.Zone(); o != off {
			break
		}
		cur = end
		_, end = et.ZoneBounds()
	}
	prevOff := off
	for !start.IsZero() {
		bt := start.Add(-time.Nanosecond).In(s.loc)
		if _, o := bt.Zone(); o != off {
			prevOff = o
			break
		}
		before, _ := bt.ZoneBounds()
		if !before.Before(start) {
			break // no progress: treat start as a boundary without a change
		}
		start = before
	}
	return period{start: start, end: end, off: off, prevOff: prevOff}
}

// wall returns the wall-clock time at instant t under offset off.
func wall(t time.Time, off int) time.Time {
	return t.UTC().Add(time.Duration(off) * time.Second)
}

// instant returns the instant at which the wall clock shows w under offset
// off, in the schedule's location.
func (s *Schedule) instant(w time.Time, off int) time.Time {
	return w.Add(-time.Duration(off) * time.Second).In(s.loc)
}

func ceilMinute(w time.Time) time.Time {
	t := w.Truncate(time.Minute)
	if t.Before(w) {
		t = t.Add(time.Minute)
	}
	return t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// lowWall returns the earliest wall-clock minute of p at which an exact
// (not shifted) fire is allowed: the period's start, or under repeat "first"
// after a fall-back, the end of the repeated wall-clock span.
func (s *Schedule) lowWall(p period) time.Time {
	lo := ceilMinute(wall(p.start, p.off))
	if s.repeat == dag.RepeatFirst && p.prevOff > p.off {
		lo = ceilMinute(wall(p.start, p.prevOff))
	}
	return lo
}

// shiftsAtStart reports whether the schedule fires at p.start because a
// matching wall-clock time falls in the gap that opens p.
func (s *Schedule) shiftsAtStart(p period) bool {
	if s.gap != dag.GapShift || p.start.IsZero() || p.prevOff >= p.off {
		return false
	}
	_, ok := s.nextWall(ceilMinute(wall(p.start, p.prevOff)), wall(p.start, p.off))
	return ok
}

// Next returns the first fire time strictly after t, or the zero time when
// there is none within SearchYears.
func (s *Schedule) Next(t time.Time) time.Time {
	limit := t.AddDate(SearchYears, 0, 0)
	p := s.periodAt(t)
	// In the period holding t, fires must be after t; p.start <= t, so a
	// shifted fire at p.start is not.
	lo := wall(t, p.off).Truncate(time.Minute).Add(time.Minute)
	if !p.start.IsZero() {
		lo = later(lo, s.lowWall(p))
	}
	for {
		hi := wall(limit, p.off)
		if !p.end.IsZero() {
			hi = earlier(hi, wall(p.end, p.off))
		}
		if w, ok := s.nextWall(lo, hi); ok {
			return s.instant(w, p.off)
		}
		if p.end.IsZero() || !p.end.Before(limit) {
			return time.Time{}
		}
		p = s.periodAt(p.end)
		if s.shiftsAtStart(p) {
			return p.start.In(s.loc)
		}
		lo = s.lowWall(p)
	}
}

// Prev returns the last fire time at or before t, or the zero time when
// there is none within SearchYears.
func (s *Schedule) Prev(t time.Time) time.Time {
	limit := t.AddDate(-SearchYears, 0, 0)
	cur := t
	for {
		p := s.periodAt(cur)
		lo := ceilMinute(wall(limit, p.off))
		if !p.start.IsZero() {
			lo = later(lo, s.lowWall(p))
		}
		if w, ok := s.prevWall(wall(cur, p.off).Truncate(time.Minute), lo); ok {
			return s.instant(w, p.off)
		}
		if s.shiftsAtStart(p) {
			return p.start.In(s.loc)
		}
		if p.start.IsZero() || !p.start.After(limit) {
			return time.Time{}
		}
		cur = p.start.Add(-time.Nanosecond)
	}
}

// nextWall returns the first matching wall-clock minute in [from, limit);
// from is a whole minute.
func (s *Schedule) nextWall(from, limit time.Time) (time.Time, bool) {
	t := from
	for t.Before(limit) {
		y, mo, d := t.Date()
		if s.month&(1<<uint(mo)) == 0 {
			t = time.Date(y, mo+1, 1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if !s.dayMatches(d, t.Weekday()) {
			t = time.Date(y, mo, d+1, 0, 0, 0, 0, time.UTC)
			continue
		}
		h, m := t.Hour(), t.Minute()
		nh := nextBit(s.hour, h)
		if nh < 0 {
			t = time.Date(y, mo, d+1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if nh > h {
			m = 0
		}
		nm := nextBit(s.minute, m)
		if nm < 0 {
			t = time.Date(y, mo, d, nh+1, 0, 0, 0, time.UTC)
			continue
		}
		w := time.Date(y, mo, d, nh, nm, 0, 0, time.UTC)
		if !w.Before(limit) {
			break
		}
		return w, true
	}
	return time.Time{}, false
}

// prevWall returns the last matching wall-clock minute in [lower, from];
// from is a whole minute.
func (s *Schedule) prevWall(from, lower time.Time) (time.Time, bool) {
	t := from
	for !t.Before(lower) {
		y, mo, d := t.Date()
		if s.month&(1<<uint(mo)) == 0 {
			t = time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC).Add(-time.Minute)
			continue
		}
		if !s.dayMatches(d, t.Weekday()) {
			t = time.Date(y, mo, d, 0, 0, 0, 0, time.UTC).Add(-time.Minute)
			continue
		}
		h, m := t.Hour(), t.Minute()
		ph := prevBit(s.hour, h)
		if ph < 0 {
			t = time.Date(y, mo, d, 0, 0, 0, 0, time.UTC).Add(-time.Minute)
			continue
		}
		if ph < h {
			m = 59
		}
		pm := prevBit(s.minute, m)
		if pm < 0 {
			t = time.Date(y, mo, d, ph, 0, 0, 0, time.UTC).Add(-time.Minute)
			continue
		}
		w := time.Date(y, mo, d, ph, pm, 0, 0, time.UTC)
		if w.Before(lower) {
			break
		}
		return w, true
	}
	return time.Time{}, false
}

// dayMatches applies cron's day rule: with both day fields restricted, a
// day matches if either does.
func (s *Schedule) dayMatches(day int, wd time.Weekday) bool {
	domOK := s.dom&(1<<uint(day)) != 0
	dowOK := s.dow&(1<<uint(wd)) != 0
	if s.and {
		return domOK && dowOK
	}
	return domOK || dowOK
}

// nextBit returns the smallest set bit of mask at or above i, or -1.
func nextBit(mask uint64, i int) int {
	m := mask >> uint(i) << uint(i)
	if m == 0 {
		return -1
	}
	return bits.TrailingZeros64(m)
}

// prevBit returns the largest set bit of mask at or below i, or -1.
func prevBit(mask uint64, i int) int {
	m := mask & (2<<uint(i) - 1)
	if m == 0 {
		return -1
	}
	return 63 - bits.LeadingZeros64(m)
}
