package clean

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

const v2Header = "sample_id,patient_id,loinc,test_name,value,unit,ref_low,ref_high,collected_at"

// v2Row is a valid v2 line: glucose of patient P0001 at 08:00 UTC.
func v2Row(sample, value, unit, collected string) string {
	return sample + ",P0001,2345-7,Glucose," + value + "," + unit + ",3.9,5.5," + collected
}

// TestMalformedInputs holds every malformed input kind to its reason, line
// by line, and the accounting identity for each file.
func TestMalformedInputs(t *testing.T) {
	ok := v2Row("S0001", "5.4", "mmol/L", "2026-01-05T08:00:00Z")
	long := v2Row("S0009", "5."+strings.Repeat("4", 10<<20), "mmol/L", "2026-01-05T08:00:00Z")
	tests := []struct {
		name   string
		input  string
		valid  int
		reason map[int64][]string // line -> reasons
	}{
		{name: "zero bytes", input: ""},
		{name: "header only", input: v2Header + "\n"},
		{name: "header only without line end", input: v2Header},
		{name: "UTF-8 BOM and CRLF", input: "\ufeff" + v2Header + "\r\n" + ok + "\r\n" + v2Row("S0002", "6.1", "mmol/L", "2026-01-05T08:00:00Z") + "\r\n", valid: 2},
		{name: "quoted fields with commas and quotes", input: v2Header + "\n" + `S0001,P0001,2345-7,"Glucose, ""fasting""",5.4,mmol/L,3.9,5.5,2026-01-05T08:00:00Z` + "\n", valid: 1},
		{name: "unterminated quote", input: v2Header + "\n" + `S0001,P0001,2345-7,"Glucose,5.4,mmol/L,3.9,5.5,2026-01-05T08:00:00Z` + "\n" + ok + "\n", valid: 1,
			reason: map[int64][]string{2: {ReasonMalformedQuotes}}},
		{name: "truncated last line", input: v2Header + "\n" + ok + "\nS0002,P0001,2345-7,Gluc", valid: 1,
			reason: map[int64][]string{3: {ReasonTruncatedLine}}},
		{name: "wrong column count", input: v2Header + "\n" + ok + ",extra\n" + "S0002,P0001\n", reason: map[int64][]string{2: {ReasonWrongColumnCount}, 3: {ReasonWrongColumnCount}}},
		{name: "non-UTF-8 bytes", input: v2Header + "\n" + "S0001,P0001,2345-7,Gluc\xffse,5.4,mmol/L,3.9,5.5,2026-01-05T08:00:00Z\n" + ok + "\n", valid: 1,
			reason: map[int64][]string{2: {ReasonInvalidUTF8}}},
		{name: "10 MB line", input: v2Header + "\n" + long + "\n" + ok + "\n", valid: 1, reason: map[int64][]string{2: {ReasonLineTooLong}}},
		{name: "duplicate header mid-file", input: v2Header + "\n" + ok + "\n" + v2Header + "\n" + v2Row("S0002", "6.1", "mmol/L", "2026-01-05T08:00:00Z") + "\n", valid: 2,
			reason: map[int64][]string{3: {ReasonDuplicateHeader}}},
		{name: "empty lines", input: v2Header + "\n\n" + ok + "\n   \n", valid: 1, reason: map[int64][]string{2: {ReasonEmptyLine}, 4: {ReasonEmptyLine}}},
		{name: "unknown unit", input: v2Header + "\n" + v2Row("S0001", "5.4", "furlong", "2026-01-05T08:00:00Z") + "\n", reason: map[int64][]string{2: {ReasonUnknownUnit}}},
		{name: "unknown test code", input: v2Header + "\nS0001,P0001,99999-9,X,5.4,mmol/L,3.9,5.5,2026-01-05T08:00:00Z\n", reason: map[int64][]string{2: {ReasonUnknownTest}}},
		{name: "out-of-range value", input: v2Header + "\n" + v2Row("S0001", "5000", "mmol/L", "2026-01-05T08:00:00Z") + "\n", reason: map[int64][]string{2: {ReasonImplausibleValue}}},
		{name: "future timestamp", input: v2Header + "\n" + v2Row("S0001", "5.4", "mmol/L", "2026-01-06T08:00:00Z") + "\n" + v2Row("S0002", "5.4", "mmol/L", "2026-01-05T12:05:00Z") + "\n", valid: 1,
			reason: map[int64][]string{2: {ReasonFutureTimestamp}}},
		{name: "not a number", input: v2Header + "\n" + v2Row("S0001", "n/a", "mmol/L", "2026-01-05T08:00:00Z") + "\n" + v2Row("S0002", "NaN", "mmol/L", "2026-01-05T08:00:00Z") + "\n",
			reason: map[int64][]string{2: {ReasonBadValue}, 3: {ReasonBadValue}}},
		{name: "bad timestamp", input: v2Header + "\n" + v2Row("S0001", "5.4", "mmol/L", "2026-02-30T08:00:00Z") + "\n", reason: map[int64][]string{2: {ReasonBadTimestamp}}},
		{name: "every reason of a row is kept", input: v2Header + "\n,P 1,99999-9,X,abc,mmol/L,x,5.5,yesterday\n",
			reason: map[int64][]string{2: {ReasonMissingField, ReasonBadPatientID, ReasonUnknownTest, ReasonBadValue, ReasonBadReferenceRange, ReasonBadTimestamp}}},
		{name: "unknown header", input: "when,what\n1,2\n3,4\n", reason: map[int64][]string{2: {ReasonUnknownHeader}, 3: {ReasonUnknownHeader}}},
		{name: "v3 analyzed before collected and bad status", input: "sample_id,patient_id,loinc,test_name,value,unit,ref_low,ref_high,collected_at,analyzed_at,status,instrument_fw,extra\n" +
			"S0001,P0001,2345-7,Glucose,5.4,mmol/L,3.9,5.5,2026-01-05T08:00:00Z,2026-01-05T07:00:00Z,final,1.0,x\n" +
			"S0002,P0001,2345-7,Glucose,5.4,mmol/L,3.9,5.5,2026-01-05T08:00:00Z,2026-01-05T09:00:00Z,done,1.0,x\n" +
			"S0003,P0001,2345-7,Glucose,5.4,mmol/L,3.9,5.5,2026-01-05T08:00:00Z,2026-01-05T09:00:00Z,final,1.0,x\n",
			valid: 1, reason: map[int64][]string{2: {ReasonAnalyzedBefore}, 3: {ReasonBadStatus}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, s := cleanString(t, tc.input, Options{})
			if rep.RowsValid != int64(tc.valid) {
				t.Errorf("valid %d, want %d", rep.RowsValid, tc.valid)
			}
			got := map[int64][]string{}
			for _, q := range s.quarantined {
				got[q.Line] = q.Reasons
				if q.Detail == "" {
					t.Errorf("line %d: no detail", q.Line)
				}
				if len(q.Raw) > 8<<10 {
					t.Errorf("line %d: raw text of %d bytes kept", q.Line, len(q.Raw))
				}
			}
			for line, want := range tc.reason {
				if !slices.Equal(got[line], want) {
					t.Errorf("line %d: reasons %v, want %v", line, got[line], want)
				}
			}
			if len(got) != len(tc.reason) {
				t.Errorf("quarantined %v, want %v", got, tc.reason)
			}
		})
	}
}

func TestUnknownHeaderIsReported(t *testing.T) {
	rep, _ := cleanString(t, "SampleID;PatientID;Test;Result\n1;2;3;4\n", Options{})
	if rep.HeaderError == "" || !strings.Contains(rep.HeaderError, "v1") {
		t.Errorf("header error %q should name the nearest version v1", rep.HeaderError)
	}
}

// TestV1 checks the legacy format: decimal commas, a RefRange column,
// mnemonics, and wall-clock time in Europe/Berlin (UTC+1 in January, UTC+2
// in July).
func TestV1(t *testing.T) {
	in := "SampleID;PatientID;Test;Result;Unit;RefRange;Collected\n" +
		"S0001;P0001;GLU;5,4;mmol/L;3,9-5,5;05.01.2026 08:30:00\n" +
		"S0002;P0001;GLU;5.4;mmol/L;;05.01.2026 08:30:00\n" + // a point is not v1's decimal separator
		"S0003;P0002;CREA;1,1;mg/dL;0,7-1,3;05.07.2025 08:30:00\n"
	rep, s := cleanString(t, in, Options{})
	if rep.RowsValid != 2 || rep.Reasons[ReasonBadValue] != 1 {
		t.Fatalf("report %+v", rep)
	}
	glu := s.rows[0]
	if want := time.Date(2026, 1, 5, 7, 30, 0, 0, time.UTC); !glu.collected.Equal(want) {
		t.Errorf("collected %v, want %v", glu.collected, want)
	}
	if glu.orig != 5.4 || glu.origUnit != "mmol/L" || glu.unit != "mg/dL" || glu.value < 97.2 || glu.value > 97.4 {
		t.Errorf("glucose %+v: want 5.4 mmol/L kept as original and about 97.3 mg/dL", glu)
	}
	if glu.refLow == "null" || glu.refHigh == "null" || glu.flag != "N" {
		t.Errorf("glucose reference and flag %+v", glu)
	}
	crea := s.rows[1]
	if want := time.Date(2025, 7, 5, 6, 30, 0, 0, time.UTC); !crea.collected.Equal(want) {
		t.Errorf("summer time: collected %v, want %v", crea.collected, want)
	}
}

// TestDeduplication keeps corrected over final over preliminary, then the
// latest analysis, per (sample_id, test_code).
func TestDeduplication(t *testing.T) {
	h := "sample_id,patient_id,loinc,test_name,value,unit,ref_low,ref_high,collected_at,analyzed_at,status,instrument_fw\n"
	row := func(sample, value, analyzed, status string) string {
		return sample + ",P0001,2345-7,Glucose," + value + ",mmol/L,3.9,5.5,2026-01-05T08:00:00Z,2026-01-05T" + analyzed + ":00Z," + status + ",1.0\n"
	}
	in := h +
		row("S0001", "5.0", "09:00", "preliminary") + // 2
		row("S0001", "5.1", "09:30", "final") + // 3
		row("S0001", "5.2", "09:10", "corrected") + // 4: wins over a later final
		row("S0001", "5.3", "09:05", "corrected") + // 5: an earlier correction
		row("S0002", "6.0", "10:00", "final") + // 6
		row("S0002", "6.1", "11:00", "final") + // 7: the later analysis wins
		row("S0003", "7.0", "10:00", "preliminary") // 8: alone, kept
	rep, s := cleanString(t, in, Options{})
	if rep.RowsValid != 3 || rep.RowsSuperseded != 4 {
		t.Fatalf("valid %d superseded %d, want 3 and 4", rep.RowsValid, rep.RowsSuperseded)
	}
	var kept []int64
	for _, r := range s.rows {
		kept = append(kept, r.line)
	}
	if !slices.Equal(kept, []int64{4, 7, 8}) {
		t.Errorf("kept lines %v, want [4 7 8]", kept)
	}
	for _, q := range s.quarantined {
		if !strings.Contains(q.Detail, "superseded by line") {
			t.Errorf("superseded detail %q", q.Detail)
		}
	}
}

// TestSinkErrorsStopClean: an output that fails stops the file with the
// error, so the worker retries; nothing is reported as done.
func TestSinkErrorsStopClean(t *testing.T) {
	s := &memSink{err: context.DeadlineExceeded}
	_, err := Clean(context.Background(), strings.NewReader(v2Header+"\n"+v2Row("S1", "5", "mmol/L", "2026-01-05T08:00:00Z")+"\n"),
		Source{Object: "x", Generation: 1, Robot: "R001"}, s, Options{Now: func() time.Time { return fileTime }})
	if err == nil {
		t.Fatal("Clean succeeded although the sink failed")
	}
}

func FuzzClean(f *testing.F) {
	f.Add(v2Header + "\n" + v2Row("S0001", "5.4", "mmol/L", "2026-01-05T08:00:00Z") + "\n")
	f.Add("SampleID;PatientID;Test;Result;Unit;RefRange;Collected\nS0001;P0001;GLU;97,3;mg/dL;70-100;05.01.2026 08:30:00\n")
	f.Add("sample_id,patient_id,loinc,test_name,value,unit,ref_low,ref_high,collected_at,analyzed_at,status,instrument_fw\nS1,P0001,2345-7,\"G,\"\"x\",5.0,mmol/L,3.9,5.5,2026-01-05T08:00:00Z,2026-01-05T09:00:00Z,final,1\n")
	f.Add("\ufeffa,b\r\n\xff\n")
	f.Fuzz(func(t *testing.T, input string) {
		s := &memSink{}
		rep, err := Clean(context.Background(), strings.NewReader(input), Source{Object: "x", Generation: 1, Robot: "R001"}, s,
			Options{Now: func() time.Time { return fileTime }, RunBytes: 4 << 10})
		if err != nil {
			t.Fatalf("Clean: %v", err)
		}
		if !rep.Balanced() || int64(len(s.rows)) != rep.RowsValid {
			t.Fatalf("accounting broken: %+v, %d rows", rep, len(s.rows))
		}
	})
}
