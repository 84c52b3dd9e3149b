package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labplatform/platform/testenv/robotsim"
	"github.com/parquet-go/parquet-go"
)

type report struct {
	SchemaVersion   string             `json:"schema_version"`
	RowsIn          int64              `json:"rows_in"`
	RowsValid       int64              `json:"rows_valid"`
	RowsQuarantined int64              `json:"rows_quarantined"`
	RowsSuperseded  int64              `json:"rows_superseded"`
	Reasons         map[string]int64   `json:"reasons"`
	Timings         map[string]float64 `json:"timings_seconds"`
}

// TestClean runs "process clean" on a generated v3 file, from a path and
// from standard input, and checks the Parquet file, the quarantine file and
// the report against what the simulator wrote.
func TestClean(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	var buf bytes.Buffer
	st, err := robotsim.Generate(&buf, robotsim.GenerateOptions{Version: "v3", Rows: 3000, Seed: 11, Malformed: 0.02, Corrected: 0.05, Patients: 200})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, viaStdin := range []bool{false, true} {
		out, q, rep := filepath.Join(dir, "out.parquet"), filepath.Join(dir, "q.csv"), filepath.Join(dir, "report.json")
		args := []string{"clean", "--in", in, "--out", out, "--quarantine", q, "--report", rep}
		var stdin bytes.Reader
		if viaStdin {
			args[2] = "-"
			stdin.Reset(buf.Bytes())
		}
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), args, func(string) string { return "" }, &stdin, &stdout, &stderr); err != nil {
			t.Fatalf("stdin=%v: %v\n%s", viaStdin, err, stderr.String())
		}
		var r report
		data, err := os.ReadFile(rep)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		// The CLI cleans with the real clock, so the simulator's
		// future-timestamp rows (2026-01) are not in the future; in v3 their
		// analysis time, before the collection time, still rejects them.
		if r.SchemaVersion != "v3" || r.RowsIn != int64(st.Rows) || r.RowsSuperseded != int64(st.Corrected) ||
			r.RowsQuarantined != int64(st.Malformed) || r.RowsIn != r.RowsValid+r.RowsQuarantined+r.RowsSuperseded {
			t.Errorf("stdin=%v: report %+v; simulator %d rows, %d malformed, %d corrected", viaStdin, r, st.Rows, st.Malformed, st.Corrected)
		}
		if _, ok := r.Timings["total"]; !ok {
			t.Errorf("report has no total timing: %s", data)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := f.Stat()
		pf, err := parquet.OpenFile(f, info.Size())
		if err != nil {
			t.Fatal(err)
		}
		if pf.NumRows() != r.RowsValid {
			t.Errorf("parquet has %d rows, report %d valid", pf.NumRows(), r.RowsValid)
		}
		f.Close()
		qf, err := os.Open(q)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(qf).ReadAll()
		qf.Close()
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(recs)-1) != r.RowsQuarantined+r.RowsSuperseded {
			t.Errorf("quarantine file has %d lines, want %d", len(recs)-1, r.RowsQuarantined+r.RowsSuperseded)
		}
		if !strings.Contains(stderr.String(), "rows in") {
			t.Errorf("no summary line on stderr: %q", stderr.String())
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"clean"}, {"clean", "--in", "x"}, {"clean", "--bogus"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, func(string) string { return "" }, nil, &out, &out); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), nil, func(string) string { return "" }, nil, &out, &out); err != nil || !strings.Contains(out.String(), "process clean") {
		t.Errorf("usage: %v %q", err, out.String())
	}
}

// TestMetricsRegister: the worker's and the summaries' metrics share one
// registry without a name registered twice (MustRegister would panic at
// start-up), and each family is served.
func TestMetricsRegister(t *testing.T) {
	reg, _, _ := newMetrics()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{"process_files_in_flight", "go_goroutines"} {
		if !names[want] {
			t.Errorf("metric %s is not served", want)
		}
	}
}
