package schedule_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/schedule"
)

// The DST days of 2026 the tests use.
const (
	berlinSpring = "2026-03-29" // 02:00 CET -> 03:00 CEST (01:00Z)
	berlinFall   = "2026-10-25" // 03:00 CEST -> 02:00 CET (01:00Z)
	nySpring     = "2026-03-08" // 02:00 EST -> 03:00 EDT (07:00Z)
	nyFall       = "2026-11-01" // 02:00 EDT -> 01:00 EST (06:00Z)
)

// hours returns RFC 3339 times on day at minute past each hour from first to
// last (inclusive), all with the given offset.
func hours(day string, first, last, minute int, offset string) []string {
	var out []string
	for h := first; h <= last; h++ {
		out = append(out, fmt.Sprintf("%sT%02d:%02d:00%s", day, h, minute, offset))
	}
	return out
}

func concat(parts ...[]string) []string { return slices.Concat(parts...) }

// firesOn returns the fire times in the local day, formatted in RFC 3339.
func firesOn(t *testing.T, s *schedule.Schedule, loc *time.Location, day string) []string {
	t.Helper()
	d, err := time.ParseInLocation(time.DateOnly, day, loc)
	if err != nil {
		t.Fatalf("parse day %s: %v", day, err)
	}
	end := time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc)
	var out []string
	for f := s.Next(d.Add(-time.Nanosecond)); f.Before(end); f = s.Next(f) {
		if f.IsZero() {
			t.Fatalf("Next returned the zero time")
		}
		out = append(out, f.In(loc).Format(time.RFC3339))
	}
	return out
}

func TestFiresOnDSTDays(t *testing.T) {
	tests := []struct {
		name   string
		zone   string
		day    string
		expr   string
		policy dag.DSTPolicy
		want   []string
	}{
		// Hourly: the gap's 02:00 shifts to 03:00, itself a fire: 23 fires.
		{name: "berlin spring hourly shift", zone: "Europe/Berlin", day: berlinSpring, expr: "0 * * * *", policy: shiftFirst,
			want: concat(hours(berlinSpring, 0, 1, 0, "+01:00"), hours(berlinSpring, 3, 23, 0, "+02:00"))},
		{name: "berlin spring hourly skip", zone: "Europe/Berlin", day: berlinSpring, expr: "@hourly", policy: skipBoth,
			want: concat(hours(berlinSpring, 0, 1, 0, "+01:00"), hours(berlinSpring, 3, 23, 0, "+02:00"))},
		{name: "berlin fall hourly first", zone: "Europe/Berlin", day: berlinFall, expr: "0 * * * *", policy: shiftFirst,
			want: concat(hours(berlinFall, 0, 2, 0, "+02:00"), hours(berlinFall, 3, 23, 0, "+01:00"))},
		{name: "berlin fall hourly both", zone: "Europe/Berlin", day: berlinFall, expr: "0 * * * *", policy: skipBoth,
			want: concat(hours(berlinFall, 0, 2, 0, "+02:00"), hours(berlinFall, 2, 23, 0, "+01:00"))},
		{name: "new york spring hourly shift", zone: "America/New_York", day: nySpring, expr: "0 * * * *", policy: shiftBoth,
			want: concat(hours(nySpring, 0, 1, 0, "-05:00"), hours(nySpring, 3, 23, 0, "-04:00"))},
		{name: "new york spring hourly skip", zone: "America/New_York", day: nySpring, expr: "0 * * * *", policy: skipFirst,
			want: concat(hours(nySpring, 0, 1, 0, "-05:00"), hours(nySpring, 3, 23, 0, "-04:00"))},
		{name: "new york fall hourly first", zone: "America/New_York", day: nyFall, expr: "0 * * * *", policy: skipFirst,
			want: concat(hours(nyFall, 0, 1, 0, "-04:00"), hours(nyFall, 2, 23, 0, "-05:00"))},
		{name: "new york fall hourly both", zone: "America/New_York", day: nyFall, expr: "0 * * * *", policy: shiftBoth,
			want: concat(hours(nyFall, 0, 1, 0, "-04:00"), hours(nyFall, 1, 23, 0, "-05:00"))},

		// Half past: the gap's 02:30 is not a fire time of its own.
		{name: "berlin spring half past shift", zone: "Europe/Berlin", day: berlinSpring, expr: "30 * * * *", policy: shiftFirst,
			want: concat(hours(berlinSpring, 0, 1, 30, "+01:00"), []string{berlinSpring + "T03:00:00+02:00"}, hours(berlinSpring, 3, 23, 30, "+02:00"))},
		{name: "berlin spring half past skip", zone: "Europe/Berlin", day: berlinSpring, expr: "30 * * * *", policy: skipFirst,
			want: concat(hours(berlinSpring, 0, 1, 30, "+01:00"), hours(berlinSpring, 3, 23, 30, "+02:00"))},
		{name: "new york spring half past shift", zone: "America/New_York", day: nySpring, expr: "30 * * * *", policy: shiftFirst,
			want: concat(hours(nySpring, 0, 1, 30, "-05:00"), []string{nySpring + "T03:00:00-04:00"}, hours(nySpring, 3, 23, 30, "-04:00"))},

		// Daily at 02:30: in the gap in spring, repeated in Berlin's fall.
		{name: "berlin spring 02:30 shift", zone: "Europe/Berlin", day: berlinSpring, expr: "30 2 * * *", policy: shiftFirst,
			want: []string{berlinSpring + "T03:00:00+02:00"}},
		{name: "berlin spring 02:30 skip", zone: "Europe/Berlin", day: berlinSpring, expr: "30 2 * * *", policy: skipFirst,
			want: nil},
		{name: "berlin fall 02:30 first", zone: "Europe/Berlin", day: berlinFall, expr: "30 2 * * *", policy: skipFirst,
			want: []string{berlinFall + "T02:30:00+02:00"}},
		{name: "berlin fall 02:30 both", zone: "Europe/Berlin", day: berlinFall, expr: "30 2 * * *", policy: shiftBoth,
			want: []string{berlinFall + "T02:30:00+02:00", berlinFall + "T02:30:00+01:00"}},
		{name: "new york spring 02:30 shift", zone: "America/New_York", day: nySpring, expr: "30 2 * * *", policy: shiftBoth,
			want: []string{nySpring + "T03:00:00-04:00"}},
		{name: "new york spring 02:30 skip", zone: "America/New_York", day: nySpring, expr: "30 2 * * *", policy: skipBoth,
			want: nil},
		// New York repeats 01:00-01:59, so 02:30 is ordinary there.
		{name: "new york fall 02:30 both", zone: "America/New_York", day: nyFall, expr: "30 2 * * *", policy: shiftBoth,
			want: []string{nyFall + "T02:30:00-05:00"}},
		{name: "new york fall 01:30 first", zone: "America/New_York", day: nyFall, expr: "30 1 * * *", policy: shiftFirst,
			want: []string{nyFall + "T01:30:00-04:00"}},
		{name: "new york fall 01:30 both", zone: "America/New_York", day: nyFall, expr: "30 1 * * *", policy: skipBoth,
			want: []string{nyFall + "T01:30:00-04:00", nyFall + "T01:30:00-05:00"}},

		// Several gap times shift to one instant.
		{name: "berlin spring quarter hours in the gap shift", zone: "Europe/Berlin", day: berlinSpring, expr: "*/15 2 * * *", policy: shiftFirst,
			want: []string{berlinSpring + "T03:00:00+02:00"}},
		{name: "berlin fall quarter hours both", zone: "Europe/Berlin", day: berlinFall, expr: "*/15 2 * * *", policy: skipBoth,
			want: []string{
				berlinFall + "T02:00:00+02:00", berlinFall + "T02:15:00+02:00", berlinFall + "T02:30:00+02:00", berlinFall + "T02:45:00+02:00",
				berlinFall + "T02:00:00+01:00", berlinFall + "T02:15:00+01:00", berlinFall + "T02:30:00+01:00", berlinFall + "T02:45:00+01:00",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := load(t, tt.zone)
			s := mustParse(t, tt.expr, loc, tt.policy)
			got := firesOn(t, s, loc, tt.day)
			if !slices.Equal(got, tt.want) {
				t.Errorf("fires on %s (%d):\n got %q\nwant %q", tt.day, len(got), got, tt.want)
			}
		})
	}
}

func TestFireCountsPerDay(t *testing.T) {
	tests := []struct {
		zone   string
		day    string
		expr   string
		policy dag.DSTPolicy
		want   int
	}{
		{zone: "Europe/Berlin", day: berlinSpring, expr: "0 * * * *", policy: shiftFirst, want: 23},
		{zone: "Europe/Berlin", day: berlinSpring, expr: "0 * * * *", policy: skipFirst, want: 23},
		{zone: "Europe/Berlin", day: berlinSpring, expr: "*/30 * * * *", policy: shiftFirst, want: 46},
		{zone: "Europe/Berlin", day: berlinSpring, expr: "*/20 * * * *", policy: shiftFirst, want: 69},
		{zone: "Europe/Berlin", day: berlinSpring, expr: "10,50 * * * *", policy: shiftFirst, want: 47},
		{zone: "Europe/Berlin", day: berlinSpring, expr: "10,50 * * * *", policy: skipFirst, want: 46},
		{zone: "Europe/Berlin", day: berlinSpring, expr: "0 0 * * *", policy: skipFirst, want: 1},
		{zone: "Europe/Berlin", day: berlinFall, expr: "0 * * * *", policy: shiftFirst, want: 24},
		{zone: "Europe/Berlin", day: berlinFall, expr: "0 * * * *", policy: shiftBoth, want: 25},
		{zone: "Europe/Berlin", day: berlinFall, expr: "*/30 * * * *", policy: skipFirst, want: 48},
		{zone: "Europe/Berlin", day: berlinFall, expr: "*/30 * * * *", policy: skipBoth, want: 50},
		{zone: "Europe/Berlin", day: berlinFall, expr: "0 0 * * *", policy: shiftBoth, want: 1},
		{zone: "America/New_York", day: nySpring, expr: "0 * * * *", policy: shiftFirst, want: 23},
		{zone: "America/New_York", day: nySpring, expr: "0 * * * *", policy: skipBoth, want: 23},
		{zone: "America/New_York", day: nySpring, expr: "0 0 * * *", policy: shiftFirst, want: 1},
		{zone: "America/New_York", day: nyFall, expr: "0 * * * *", policy: skipFirst, want: 24},
		{zone: "America/New_York", day: nyFall, expr: "0 * * * *", policy: shiftBoth, want: 25},
		{zone: "America/New_York", day: nyFall, expr: "* * * * *", policy: shiftFirst, want: 24 * 60},
		{zone: "America/New_York", day: nyFall, expr: "* * * * *", policy: shiftBoth, want: 25 * 60},
		{zone: "America/New_York", day: nyFall, expr: "0 0 * * *", policy: shiftBoth, want: 1},
		// Ordinary days around the changes.
		{zone: "Europe/Berlin", day: "2026-03-28", expr: "0 * * * *", policy: shiftBoth, want: 24},
		{zone: "America/New_York", day: "2026-11-02", expr: "0 * * * *", policy: shiftBoth, want: 24},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s %s %s-%s", tt.zone, tt.day, tt.expr, tt.policy.Gap, tt.policy.Repeat), func(t *testing.T) {
			loc := load(t, tt.zone)
			s := mustParse(t, tt.expr, loc, tt.policy)
			if got := len(firesOn(t, s, loc, tt.day)); got != tt.want {
				t.Errorf("%d fires, want %d", got, tt.want)
			}
		})
	}
}

func TestIntervalsAcrossDST(t *testing.T) {
	tests := []struct {
		name   string
		zone   string
		expr   string
		policy dag.DSTPolicy
		t      string
		want   dag.Interval
	}{
		{name: "daily midnight spring day is 23h", zone: "Europe/Berlin", expr: "@daily", policy: shiftFirst, t: "2026-03-29T12:00:00+02:00",
			want: dag.Interval{Start: at(t, "2026-03-29T00:00:00+01:00"), End: at(t, "2026-03-30T00:00:00+02:00")}},
		{name: "daily midnight fall day is 25h", zone: "Europe/Berlin", expr: "@daily", policy: shiftBoth, t: "2026-10-25T12:00:00+01:00",
			want: dag.Interval{Start: at(t, "2026-10-25T00:00:00+02:00"), End: at(t, "2026-10-26T00:00:00+01:00")}},
		{name: "02:30 skip spans 47h", zone: "Europe/Berlin", expr: "30 2 * * *", policy: skipFirst, t: "2026-03-29T12:00:00+02:00",
			want: dag.Interval{Start: at(t, "2026-03-28T02:30:00+01:00"), End: at(t, "2026-03-30T02:30:00+02:00")}},
		{name: "02:30 shift before the gap", zone: "Europe/Berlin", expr: "30 2 * * *", policy: shiftFirst, t: "2026-03-29T01:59:59+01:00",
			want: dag.Interval{Start: at(t, "2026-03-28T02:30:00+01:00"), End: at(t, "2026-03-29T03:00:00+02:00")}},
		{name: "02:30 shift after the gap", zone: "Europe/Berlin", expr: "30 2 * * *", policy: shiftFirst, t: "2026-03-29T03:00:00+02:00",
			want: dag.Interval{Start: at(t, "2026-03-29T03:00:00+02:00"), End: at(t, "2026-03-30T02:30:00+02:00")}},
		{name: "hourly first has one 2h interval", zone: "Europe/Berlin", expr: "0 * * * *", policy: shiftFirst, t: "2026-10-25T02:30:00+01:00",
			want: dag.Interval{Start: at(t, "2026-10-25T02:00:00+02:00"), End: at(t, "2026-10-25T03:00:00+01:00")}},
		{name: "hourly both repeats 02:00", zone: "Europe/Berlin", expr: "0 * * * *", policy: shiftBoth, t: "2026-10-25T02:30:00+01:00",
			want: dag.Interval{Start: at(t, "2026-10-25T02:00:00+01:00"), End: at(t, "2026-10-25T03:00:00+01:00")}},
		{name: "new york 01:30 both, between the two", zone: "America/New_York", expr: "30 1 * * *", policy: shiftBoth, t: "2026-11-01T01:00:00-05:00",
			want: dag.Interval{Start: at(t, "2026-11-01T01:30:00-04:00"), End: at(t, "2026-11-01T01:30:00-05:00")}},
		{name: "new york 01:30 first", zone: "America/New_York", expr: "30 1 * * *", policy: shiftFirst, t: "2026-11-01T01:00:00-05:00",
			want: dag.Interval{Start: at(t, "2026-11-01T01:30:00-04:00"), End: at(t, "2026-11-02T01:30:00-05:00")}},
		// Santiago springs forward at midnight: 2026-09-06 00:00 does not exist.
		{name: "santiago midnight shift", zone: "America/Santiago", expr: "@daily", policy: shiftFirst, t: "2026-09-06T12:00:00-03:00",
			want: dag.Interval{Start: at(t, "2026-09-06T01:00:00-03:00"), End: at(t, "2026-09-07T00:00:00-03:00")}},
		{name: "santiago midnight skip", zone: "America/Santiago", expr: "@daily", policy: skipFirst, t: "2026-09-06T12:00:00-03:00",
			want: dag.Interval{Start: at(t, "2026-09-05T00:00:00-04:00"), End: at(t, "2026-09-07T00:00:00-03:00")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, load(t, tt.zone), tt.policy)
			got := s.Containing(at(t, tt.t))
			if !got.Start.Equal(tt.want.Start) || !got.End.Equal(tt.want.End) {
				t.Errorf("Containing(%s) = %v (%v), want %v (%v)", tt.t, got, got.End.Sub(got.Start), tt.want, tt.want.End.Sub(tt.want.Start))
			}
		})
	}
}

// dstCase is a time zone and a day on which it changes offset.
type dstCase struct {
	zone string
	day  string
}

var dstDays = []dstCase{
	{zone: "Europe/Berlin", day: berlinSpring},
	{zone: "Europe/Berlin", day: berlinFall},
	{zone: "America/New_York", day: nySpring},
	{zone: "America/New_York", day: nyFall},
	{zone: "Australia/Lord_Howe", day: "2026-10-04"}, // 30-minute change
	{zone: "Australia/Lord_Howe", day: "2026-04-05"},
	{zone: "America/Santiago", day: "2026-09-06"}, // at midnight
	{zone: "America/Santiago", day: "2026-04-05"},
}

var oracleExprs = []string{
	"0 * * * *", "30 * * * *", "*/15 * * * *", "30 2 * * *", "30 1 * * *",
	"0 0 * * *", "45 23 * * *", "*/20 0-3 * * *", "10 2 * * 0",
}

// TestTilingAndOracle checks, around each DST day, that the intervals tile
// time (each instant is in exactly one, Containing agrees) and that the fire
// times equal a brute-force, minute-by-minute reading of the policy.
func TestTilingAndOracle(t *testing.T) {
	for _, dc := range dstDays {
		loc := load(t, dc.zone)
		day, err := time.Parse(time.DateOnly, dc.day)
		if err != nil {
			t.Fatal(err)
		}
		from, to := day.Add(-12*time.Hour), day.Add(36*time.Hour)
		for _, expr := range oracleExprs {
			spec, err := cron.ParseStandard(expr)
			if err != nil {
				t.Fatal(err)
			}
			for _, pol := range allPolicies {
				t.Run(fmt.Sprintf("%s %s %s %s-%s", dc.zone, dc.day, expr, pol.Gap, pol.Repeat), func(t *testing.T) {
					s := mustParse(t, expr, loc, pol)
					ivs := s.Between(from, to)
					want := bruteFires(spec.(*cron.SpecSchedule), loc, pol, from, to)
					var got []time.Time
					for _, iv := range ivs {
						if iv.Start.Before(to) {
							got = append(got, iv.Start)
						}
					}
					if !slices.EqualFunc(got, want, time.Time.Equal) {
						t.Fatalf("fires\n got %v\nwant %v", fmtTimes(got, loc), fmtTimes(want, loc))
					}
					checkTiling(t, s, ivs)
				})
			}
		}
	}
}

func fmtTimes(ts []time.Time, loc *time.Location) []string {
	out := make([]string, len(ts))
	for i, v := range ts {
		out[i] = v.In(loc).Format("01-02T15:04Z07:00")
	}
	return out
}

func checkTiling(t *testing.T, s *schedule.Schedule, ivs []dag.Interval) {
	t.Helper()
	if len(ivs) == 0 {
		return
	}
	for i, iv := range ivs {
		if !iv.Start.Before(iv.End) {
			t.Fatalf("interval %v is empty", iv)
		}
		if i > 0 && !ivs[i-1].End.Equal(iv.Start) {
			t.Fatalf("gap or overlap between %v and %v", ivs[i-1], iv)
		}
	}
	// Every seventh minute, and the instants just around each boundary, lie
	// in exactly the interval Containing reports.
	first, last := ivs[0].Start, ivs[len(ivs)-1].End
	var probes []time.Time
	for m := first; m.Before(last); m = m.Add(7 * time.Minute) {
		probes = append(probes, m)
	}
	for _, iv := range ivs {
		probes = append(probes, iv.Start, iv.End.Add(-time.Nanosecond))
	}
	for _, p := range probes {
		i, ok := slices.BinarySearchFunc(ivs, p, func(iv dag.Interval, p time.Time) int {
			switch {
			case p.Before(iv.Start):
				return 1
			case !p.Before(iv.End):
				return -1
			}
			return 0
		})
		if !ok {
			t.Fatalf("%v is in no interval", p)
		}
		if c := s.Containing(p); !c.Start.Equal(ivs[i].Start) || !c.End.Equal(ivs[i].End) {
			t.Fatalf("Containing(%v) = %v, want %v", p, c, ivs[i])
		}
	}
}

// bruteFires reads the DST policy literally, minute by minute, over
// [from, to) (offsets of the zones used are whole minutes): a wall-clock
// minute that matches fires when it is seen for the first time (or always,
// with repeat "both"); an instant just after a gap fires when the gap held a
// matching wall-clock minute and the gap policy is "shift".
func bruteFires(spec *cron.SpecSchedule, loc *time.Location, pol dag.DSTPolicy, from, to time.Time) []time.Time {
	civil := func(t time.Time) time.Time {
		l := t.In(loc)
		return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), 0, 0, time.UTC)
	}
	seen := map[time.Time]bool{}
	warm := from.Add(-26 * time.Hour)
	prev := civil(warm.Add(-time.Minute))
	var out []time.Time
	for f := warm; f.Before(to); f = f.Add(time.Minute) {
		w := civil(f)
		fire := matches(spec, w) && (pol.Repeat == dag.RepeatBoth || !seen[w])
		seen[w] = true
		if pol.Gap == dag.GapShift {
			for g := prev.Add(time.Minute); g.Before(w); g = g.Add(time.Minute) {
				fire = fire || matches(spec, g)
			}
		}
		prev = w
		if fire && !f.Before(from) {
			out = append(out, f)
		}
	}
	return out
}

// matches applies cron's rules to the wall-clock time w, from the bits the
// cron package parsed.
func matches(spec *cron.SpecSchedule, w time.Time) bool {
	const star = 1 << 63
	bit := func(field uint64, v int) bool { return field&(1<<uint(v)) != 0 }
	if !bit(spec.Minute, w.Minute()) || !bit(spec.Hour, w.Hour()) || !bit(spec.Month, int(w.Month())) {
		return false
	}
	dom, dow := bit(spec.Dom, w.Day()), bit(spec.Dow, int(w.Weekday()))
	if spec.Dom&star != 0 || spec.Dow&star != 0 {
		return dom && dow
	}
	return dom || dow
}

var propertyZones = []string{
	"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago",
	"Asia/Kolkata", "Pacific/Chatham", "America/St_Johns", "Pacific/Apia", "Europe/London",
}

var propertyExprs = []string{
	"0 * * * *", "30 2 * * *", "*/15 1-3 * * *", "0 0 * * *", "30 0 * * 0", "0 0 29 2 *",
	"15 23 * * 1-5", "0 12 1,15 * *", "@monthly", "* * * * *", "59 1 * * *",
}

// randomTime returns a time between 1995 and 2055, half of the time within
// two days of one of loc's offset changes.
func randomTime(r *rand.Rand, loc *time.Location) time.Time {
	lo, hi := time.Date(1995, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(2055, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	t := time.Unix(lo+r.Int64N(hi-lo), r.Int64N(int64(time.Second))).In(loc)
	if r.IntN(2) == 0 {
		if _, end := t.ZoneBounds(); !end.IsZero() {
			t = end.Add(time.Duration(r.Int64N(int64(96*time.Hour))) - 48*time.Hour)
			if r.IntN(4) == 0 {
				t = t.Truncate(time.Minute)
			}
		}
	}
	return t
}

func TestPrevNextProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, zone := range propertyZones {
		loc := load(t, zone)
		for _, expr := range propertyExprs {
			for _, pol := range allPolicies {
				s := mustParse(t, expr, loc, pol)
				for range 15 {
					tm := randomTime(r, loc)
					p, n := s.Prev(tm), s.Next(tm)
					if p.IsZero() || n.IsZero() {
						t.Fatalf("%v: Prev(%v) = %v, Next = %v: want fire times", s, tm, p, n)
					}
					if p.After(tm) || !n.After(tm) {
						t.Fatalf("%v: Prev(%v) = %v, Next = %v: want Prev <= t < Next", s, tm, p, n)
					}
					if np := s.Next(p); !np.Equal(n) {
						t.Fatalf("%v: t=%v Prev=%v: Next(Prev) = %v, want Next(t) = %v", s, tm, p, np, n)
					}
					if pn := s.Prev(n); !pn.Equal(n) {
						t.Fatalf("%v: Prev(Next(%v)=%v) = %v, want the fire time itself", s, tm, n, pn)
					}
					if pp := s.Prev(n.Add(-time.Nanosecond)); !pp.Equal(p) {
						t.Fatalf("%v: Prev(Next(%v)-1ns) = %v, want %v", s, tm, pp, p)
					}
					if c := s.Containing(tm); !c.Start.Equal(p) || !c.End.Equal(n) {
						t.Fatalf("%v: Containing(%v) = %v, want [%v, %v)", s, tm, c, p, n)
					}
				}
			}
		}
	}
}

// TestMatchesCronWithoutDST compares Next with the cron package's own Next in
// zones that keep one offset, where DST policy plays no part.
func TestMatchesCronWithoutDST(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	zones := []*time.Location{time.UTC, load(t, "Asia/Kolkata"), load(t, "Asia/Tokyo"), time.FixedZone("+05:45", 5*3600+45*60)}
	exprs := append(slices.Clone(propertyExprs), "0 0 13 * 5", "5 4 * * sun", "0 22 * * 1-5", "23 0-20/2 * * *", "0 0 31 * *", "@yearly")
	for _, loc := range zones {
		for _, expr := range exprs {
			ours := mustParse(t, expr, loc, skipBoth)
			parsed, err := cron.ParseStandard(expr)
			if err != nil {
				t.Fatal(err)
			}
			theirs := parsed.(*cron.SpecSchedule)
			theirs.Location = loc
			for range 30 {
				tm := time.Unix(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()+r.Int64N(50*365*86400), 0)
				if r.IntN(3) == 0 {
					tm = tm.Truncate(time.Hour)
				}
				if got, want := ours.Next(tm), theirs.Next(tm); !got.Equal(want) {
					t.Fatalf("%v: Next(%v) = %v, cron says %v", ours, tm, got, want)
				}
			}
		}
	}
}

// ruleOnlyZone builds a location that has no listed transitions, only a TZ
// rule, as in the "slim" tzdata many systems ship: Go then computes every
// offset from the rule.
func ruleOnlyZone(t *testing.T, name, stdName string, stdOffset int, rule string) *time.Location {
	t.Helper()
	be32 := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	header := func() []byte {
		h := append([]byte("TZif2"), make([]byte, 15)...)
		// isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
		for _, n := range []uint32{0, 0, 0, 0, 1, uint32(len(stdName) + 1)} {
			h = append(h, be32(n)...)
		}
		return h
	}
	data := append(be32(uint32(stdOffset)), 0, 0)
	data = append(data, stdName+"\x00"...)
	var tzif []byte
	tzif = append(tzif, header()...)
	tzif = append(tzif, data...)
	tzif = append(tzif, header()...)
	tzif = append(tzif, data...)
	tzif = append(tzif, "\n"+rule+"\n"...)
	loc, err := time.LoadLocationFromTZData(name, tzif)
	if err != nil {
		t.Fatalf("load rule-only %s: %v", name, err)
	}
	return loc
}

// TestRuleOnlyZones checks that a zone known only by its TZ rule schedules
// exactly like the full tzdata, across years and the leap year 2028 (Go's
// zone bounds for rule-computed offsets split periods at year ends).
func TestRuleOnlyZones(t *testing.T) {
	zones := []struct {
		name, std string
		offset    int
		rule      string
	}{
		{name: "Europe/Berlin", std: "CET", offset: 3600, rule: "CET-1CEST,M3.5.0,M10.5.0/3"},
		{name: "America/New_York", std: "EST", offset: -5 * 3600, rule: "EST5EDT,M3.2.0,M11.1.0"},
		{name: "Australia/Sydney", std: "AEST", offset: 10 * 3600, rule: "AEST-10AEDT,M10.1.0,M4.1.0/3"},
	}
	from, to := at(t, "2027-03-01T00:00:00Z"), at(t, "2029-05-01T00:00:00Z")
	for _, z := range zones {
		full := load(t, z.name)
		slim := ruleOnlyZone(t, z.name, z.std, z.offset, z.rule)
		for _, expr := range []string{"30 2 * * *", "*/30 0-3 * * *", "0 0 * * *"} {
			for _, pol := range allPolicies {
				want := mustParse(t, expr, full, pol).Between(from, to)
				s := mustParse(t, expr, slim, pol)
				got := s.Between(from, to)
				if !equalIntervals(got, want) {
					t.Fatalf("%s %s %s-%s: rule-only zone gives %d intervals, full tzdata %d", z.name, expr, pol.Gap, pol.Repeat, len(got), len(want))
				}
				r := rand.New(rand.NewPCG(7, 8))
				for range 100 {
					tm := from.Add(time.Duration(r.Int64N(int64(to.Sub(from)))))
					if p, n := s.Prev(tm), s.Next(tm); p.After(tm) || !n.After(tm) || !s.Next(p).Equal(n) {
						t.Fatalf("%v: Prev(%v) = %v, Next = %v", s, tm, p, n)
					}
				}
			}
		}
	}
}
