package main

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/testenv/stack"
)

func TestParseLoad(t *testing.T) {
	c, l, err := parseLoad(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.stack.Robots != stack.CaseRobots || l.multiple != 10 || l.fileSize != 1_000_000 || l.dur != 10*time.Minute || l.out != "LOAD.md" || l.steps != nil || l.bound != time.Minute {
		t.Errorf("defaults: robots %d, %+v", c.stack.Robots, l)
	}
	c, l, err = parseLoad([]string{"-robots", "20", "-multiple", "2.5", "-file-size", "64KiB", "-for", "3m", "-steps", "1, 2,5", "-out", ""}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.stack.Robots != 20 || l.multiple != 2.5 || l.fileSize != 64<<10 || l.dur != 3*time.Minute || !slices.Equal(l.steps, []float64{1, 2, 5}) || l.out != "" {
		t.Errorf("parsed: robots %d, %+v", c.stack.Robots, l)
	}
	for _, args := range [][]string{
		{"-file-size", "big"}, {"-file-size", "0"}, {"-steps", "2,1"}, {"-steps", "1,x"}, {"-steps", "0"},
		{"-multiple", "0"}, {"-for", "0"}, {"-rows", "10"}, {"-files-per-hour", "4"}, {"-robot-flags", "-malformed=0.1"},
		{"-data-dir", ""}, {"extra"},
	} {
		if _, _, err := parseLoad(args, io.Discard); err == nil {
			t.Errorf("parseLoad(%q) accepted", args)
		}
	}
	if _, r, err := parseReliability([]string{"-for", "0"}, io.Discard); err != nil || r.load.dur != 0 {
		t.Errorf("parseReliability -for 0: %+v, %v", r.load, err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1000": 1000, "1MB": 1_000_000, "100MB": 100_000_000, "64KiB": 65536, "1.5 GB": 1_500_000_000, "10B": 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "-1MB", "0.1B", "x"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

// TestWriteLoad renders a breaking-point search's report: the table, the
// breaking point and the usage of each step.
func TestWriteLoad(t *testing.T) {
	step := func(m float64, sustained bool) *stack.LoadResult {
		r := &stack.LoadResult{Robots: 100, Multiple: m, FileSize: 1_000_000, For: time.Minute, Workers: 2, Patients: 20000,
			FileMultiple: m, ByteMultiple: m / 100, Files: 10, Visible: 10, Took: 2 * time.Minute, LatencyBound: time.Minute,
			Usage: []stack.ProcUsage{{Name: stack.Ingest, CPUSeconds: 3, PeakRSS: 50_000_000, Processes: 1}}}
		r.Latency.P50, r.Latency.P95 = 5*time.Second, 9*time.Second
		if !sustained {
			r.Reasons = []string{"p95 latency 90.0s over the 1m0s bound"}
		}
		return r
	}
	res := &stack.BreakResult{Steps: []*stack.LoadResult{step(1, true), step(2, false)}, LastSustained: 1, FirstFailing: 2}
	var b bytes.Buffer
	writeLoad(&b, time.Now(), loadFlags{steps: []float64{1, 2, 5}}, res, errors.New("boom"), "a log line\n")
	for _, want := range []string{"| 1 | 1 | 0.01 | 10 |", "no: p95 latency", "**Breaking point:** sustained at 1x", "not at 2x", "CPU and memory at 2x", "| ingest | 3.0 s | 0.03 | 50 MB | 1 |", "1x, 2x, 5x", "boom", "a log line"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, b.String())
		}
	}
}
