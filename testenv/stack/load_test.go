package stack

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/robotcsv"
	"github.com/labplatform/platform/testenv/audit"
)

// TestLoad runs a short load on the whole platform: every file the robots
// completed must be seen visible through mobile-api, the latency figures
// must be ordered and positive, every service's CPU and memory must have
// been read, and every invariant must hold once the platform settled. The
// figures themselves are measured by `labstack load`, not asserted here.
func TestLoad(t *testing.T) {
	t.Parallel() // TestOutage, which stops the shared emulators, is not parallel: it runs first
	bin, p, iss := setUp(t)
	var out bytes.Buffer
	r, err := Load(t.Context(), p, iss, LoadOptions{
		Stack: Options{
			Bin: bin, Dir: logsOnFailure(t), Robots: 4, APIAddr: freeTestAddr(t), Grace: 10 * time.Second,
		},
		Multiple: 300, FileSize: 20_000, For: 20 * time.Second, Drain: 90 * time.Second, AuditTimeout: 3 * time.Minute,
		Report: 5 * time.Second,
	}, &out)
	t.Logf("load output:\n%s", out.String())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if r.Files == 0 || r.Visible != r.Files || r.Unprobed != 0 || r.Latency.Censored != 0 {
		t.Errorf("%d files written, %d visible, %d without a probe, %d censored: want every file visible", r.Files, r.Visible, r.Unprobed, r.Latency.Censored)
	}
	l := r.Latency
	if !(0 < l.P50 && l.P50 <= l.P95 && l.P95 <= l.P99 && l.P99 <= l.Max && l.Mean > 0) {
		t.Errorf("latency %+v: want 0 < p50 <= p95 <= p99 <= max", l)
	}
	if r.FilesPerS <= 0 || r.RowsPerS <= 0 || r.MBPerS <= 0 || len(r.Backlog) < 2 {
		t.Errorf("throughput %.2f files/s, %.0f rows/s, %.3f MB/s, %d backlog samples", r.FilesPerS, r.RowsPerS, r.MBPerS, len(r.Backlog))
	}
	byName := map[string]ProcUsage{}
	for _, u := range r.Usage {
		byName[u.Name] = u
	}
	for _, name := range []string{Robots, Ingest, Process + "-1", Process + "-2", Orchestrate, MobileAPI, EmulatorsProcess} {
		if u, ok := byName[name]; !ok || u.CPUSeconds <= 0 || u.PeakRSS <= 0 || u.Processes < 1 {
			t.Errorf("usage of %s: %+v (read: %v)", name, u, ok)
		}
	}
	if r.Audit == nil || !r.Audit.OK() || r.Audit.Files != r.Files {
		t.Errorf("audit %+v: want every invariant to hold over the %d files", r.Audit, r.Files)
	}
	if !strings.Contains(out.String(), "latency   p50") {
		t.Errorf("the report lacks the latency line")
	}
}

func TestPercentile(t *testing.T) {
	s := func(secs ...int) []time.Duration {
		var out []time.Duration
		for _, x := range secs {
			out = append(out, time.Duration(x)*time.Second)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		values []time.Duration
		p      float64
		want   time.Duration
	}{
		{name: "empty", values: nil, p: 50, want: 0},
		{name: "one", values: s(7), p: 99, want: 7 * time.Second},
		{name: "median of 4 is the 2nd", values: s(1, 2, 3, 4), p: 50, want: 2 * time.Second},
		{name: "p95 of 1..100", values: s(hundred...), p: 95, want: 95 * time.Second},
		{name: "p99 of 1..100", values: s(hundred...), p: 99, want: 99 * time.Second},
		{name: "p100 is the max", values: s(hundred...), p: 100, want: 100 * time.Second},
		{name: "p95 of 10 is the max", values: s(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), p: 95, want: 10 * time.Second},
	} {
		if got := percentile(tc.values, tc.p); got != tc.want {
			t.Errorf("%s: percentile(%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
	l := summarize(s(3, 1, 2), s(10))
	if l.P50 != 2*time.Second || l.Max != 10*time.Second || l.Censored != 1 || l.Mean != 4*time.Second {
		t.Errorf("summarize: %+v", l)
	}
}

func TestBacklogGrowing(t *testing.T) {
	// 21 samples 10 s apart, 10 files written between two.
	series := func(backlog func(i int) int) []BacklogSample {
		var out []BacklogSample
		for i := range 21 {
			out = append(out, BacklogSample{At: time.Duration(i) * 10 * time.Second, Written: 10 * i, Backlog: backlog(i)})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		samples []BacklogSample
		want    bool
	}{
		{name: "flat", samples: series(func(int) int { return 4 }), want: false},
		{name: "noisy but flat", samples: series(func(i int) int { return 3 + i%3 }), want: false},
		{name: "growing", samples: series(func(i int) int { return 2 * i }), want: true},
		{name: "growing, but too few files to judge", samples: func() []BacklogSample {
			out := series(func(i int) int { return 2 * i })
			for i := range out {
				out[i].Written = i
			}
			return out
		}(), want: false},
		{name: "grew early, flat late", samples: series(func(i int) int { return 5 * min(i, 8) }), want: false},
		{name: "too few samples", samples: series(func(i int) int { return 2 * i })[:3], want: false},
		{name: "a burst at the end", samples: series(func(i int) int { return 4 + 6*(i/19) }), want: false},
		{name: "steady overload over a backlog", samples: series(func(i int) int { return 20 + 2*i }), want: true},
	} {
		if got := growing(tc.samples, 200*time.Second); got != tc.want {
			t.Errorf("%s: growing = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestBreakingPointAndReasons(t *testing.T) {
	ok := &audit.Report{}
	step := func(m float64, p95 time.Duration, visible int) *LoadResult {
		r := &LoadResult{Multiple: m, Files: 10, Visible: visible, LatencyBound: time.Minute, Audit: ok}
		r.Latency.P95 = p95
		r.Reasons = reasons(r)
		return r
	}
	good, slow, lost := step(1, 10*time.Second, 10), step(2, 2*time.Minute, 10), step(5, 5*time.Second, 8)
	if !good.Sustained() || slow.Sustained() || lost.Sustained() {
		t.Fatalf("sustained: good %v (%v), slow %v, lost %v", good.Sustained(), good.Reasons, slow.Sustained(), lost.Sustained())
	}
	if !strings.Contains(strings.Join(slow.Reasons, ";"), "p95") || !strings.Contains(strings.Join(lost.Reasons, ";"), "2 of 10 files not visible") {
		t.Errorf("reasons: slow %q, lost %q", slow.Reasons, lost.Reasons)
	}
	unsettled := &LoadResult{Multiple: 1, Files: 1, Visible: 1, LatencyBound: time.Minute}
	if rs := reasons(unsettled); len(rs) != 1 || !strings.Contains(rs[0], "not settle") {
		t.Errorf("reasons without an audit: %q", rs)
	}
	for _, tc := range []struct {
		steps           []*LoadResult
		lastOK, firstNo float64
	}{
		{steps: []*LoadResult{good, slow}, lastOK: 1, firstNo: 2},
		{steps: []*LoadResult{slow}, lastOK: 0, firstNo: 2},
		{steps: []*LoadResult{good}, lastOK: 1, firstNo: 0},
		{steps: []*LoadResult{good, step(3, time.Second, 10), lost}, lastOK: 3, firstNo: 5},
	} {
		lastOK, firstNo := breakingPoint(tc.steps)
		if lastOK != tc.lastOK || firstNo != tc.firstNo {
			t.Errorf("breakingPoint(%d steps) = %g, %g; want %g, %g", len(tc.steps), lastOK, firstNo, tc.lastOK, tc.firstNo)
		}
	}
}

func TestParseProbe(t *testing.T) {
	v1, err := robotcsv.Detect(robotcsv.V1.Header())
	if err != nil {
		t.Fatal(err)
	}
	v2, err := robotcsv.Detect(robotcsv.V2.Header())
	if err != nil {
		t.Fatal(err)
	}
	v3, err := robotcsv.Detect(robotcsv.V3.Header())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		layout *robotcsv.Layout
		line   string
		want   probe
		ok     bool
	}{
		{layout: v1, line: "R001F000000001;P0000000000A1;GLU;5,4;mmol/l;3,9-5,6;21.11.2026 08:00:00", want: probe{patient: "P0000000000A1", code: "2345-7", sample: "R001F000000001"}, ok: true},
		{layout: v2, line: `R002F000000002,P0000000000B2,1975-2,"Bilirubin, total",0.8,mg/dL,0.1,1.2,2026-11-21T08:00:00Z`, want: probe{patient: "P0000000000B2", code: "1975-2", sample: "R002F000000002"}, ok: true},
		{layout: v2, line: "R002F000000003,P0000000000B2,99999-9,Nope,1,mg/dL,0,1,2026-11-21T08:00:00Z", ok: false},
		{layout: v2, line: "R002F000000003,P0000000000B2,1975-2", ok: false},
		{layout: v2, line: "", ok: false},
		{layout: v3, line: "R003F000000004,P0000000000C3,2345-7,Glucose,99,mg/dL,70,100,2026-11-21T08:00:00Z,2026-11-21T09:00:00Z,final,3.1", want: probe{patient: "P0000000000C3", code: "2345-7", sample: "R003F000000004"}, ok: true},
		{layout: v3, line: "R003F000000004,P0000000000C3,2345-7,Glucose,98,mg/dL,70,100,2026-11-21T08:00:00Z,2026-11-21T10:00:00Z,corrected,3.1", ok: false},
	} {
		got, ok := parseProbe(tc.line, tc.layout)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseProbe(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}
