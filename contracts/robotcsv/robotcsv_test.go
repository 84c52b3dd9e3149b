package robotcsv_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/robotcsv"
)

func TestDetectKnownHeaders(t *testing.T) {
	tests := []struct {
		name    string
		header  string
		version string
		width   int
	}{
		{name: "v1", header: robotcsv.V1.Header(), version: "v1", width: 7},
		{name: "v2", header: robotcsv.V2.Header(), version: "v2", width: 9},
		{name: "v3", header: robotcsv.V3.Header(), version: "v3", width: 12},
		{name: "v3 with unknown extra columns", header: robotcsv.V3.Header() + ",lot,operator", version: "v3", width: 14},
		{name: "v2 reordered", header: "patient_id,sample_id,loinc,test_name,value,unit,ref_low,ref_high,collected_at", version: "v2", width: 9},
		{name: "BOM and CRLF", header: "\uFEFF" + robotcsv.V2.Header() + "\r\n", version: "v2", width: 9},
		{name: "quoted names", header: `"SampleID";"PatientID";"Test";"Result";"Unit";"RefRange";"Collected"`, version: "v1", width: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := robotcsv.Detect(tt.header)
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			if l.Version.Name != tt.version || l.Width != tt.width {
				t.Errorf("got %s width %d, want %s width %d", l.Version.Name, l.Width, tt.version, tt.width)
			}
			for _, c := range l.Version.Columns {
				p := l.Pos(c.Field)
				if p < 0 {
					t.Errorf("field %v has no position", c.Field)
					continue
				}
				name := strings.Trim(strings.Split(strings.TrimPrefix(strings.TrimRight(tt.header, "\r\n"), "\uFEFF"), string(l.Version.Delimiter))[p], `"`)
				if name != c.Name {
					t.Errorf("Pos(%v) = %d, which is column %q, want %q", c.Field, p, name, c.Name)
				}
			}
		})
	}
}

func TestDetectPositionsOfAbsentFields(t *testing.T) {
	l, err := robotcsv.Detect(robotcsv.V2.Header())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []robotcsv.Field{robotcsv.AnalyzedAt, robotcsv.Status, robotcsv.RefRange} {
		if l.Pos(f) != -1 {
			t.Errorf("v2 Pos(%v) = %d, want -1", f, l.Pos(f))
		}
	}
}

func TestDetectUnknownHeaders(t *testing.T) {
	tests := []struct {
		name       string
		header     string
		nearest    string
		missing    []string
		unexpected []string
		duplicated []string
	}{
		{name: "v2 missing a column", header: "sample_id,patient_id,loinc,test_name,value,unit,ref_low,collected_at", nearest: "v2", missing: []string{"ref_high"}},
		{name: "v2 with an extra column", header: robotcsv.V2.Header() + ",comment", nearest: "v2", unexpected: []string{"comment"}},
		{name: "v1 misspelled", header: "SampleID;PatientID;Test;Resutl;Unit;RefRange;Collected", nearest: "v1", missing: []string{"Result"}, unexpected: []string{"Resutl"}},
		{name: "duplicate column", header: robotcsv.V2.Header() + ",value", nearest: "v2", duplicated: []string{"value"}},
		{name: "empty", header: "", nearest: "v1"},
		{name: "data line instead of header", header: "S1,P1,2345-7,Glucose,5.5,mmol/L,3.9,5.6,2026-01-01T00:00:00Z", nearest: "v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := robotcsv.Detect(tt.header)
			var uh *robotcsv.UnknownHeaderError
			if !errors.As(err, &uh) {
				t.Fatalf("error = %v, want *UnknownHeaderError", err)
			}
			if uh.Nearest != tt.nearest {
				t.Errorf("nearest = %s, want %s (%v)", uh.Nearest, tt.nearest, err)
			}
			if tt.missing != nil && !slices.Equal(uh.Missing, tt.missing) {
				t.Errorf("missing = %v, want %v", uh.Missing, tt.missing)
			}
			if tt.unexpected != nil && !slices.Equal(uh.Unexpected, tt.unexpected) {
				t.Errorf("unexpected = %v, want %v", uh.Unexpected, tt.unexpected)
			}
			if tt.duplicated != nil && !slices.Equal(uh.Duplicated, tt.duplicated) {
				t.Errorf("duplicated = %v, want %v", uh.Duplicated, tt.duplicated)
			}
			if !strings.Contains(err.Error(), "nearest version "+tt.nearest) {
				t.Errorf("message %q does not name the nearest version", err)
			}
		})
	}
}

func TestDetectCutsLongHeaderInError(t *testing.T) {
	_, err := robotcsv.Detect(strings.Repeat("x", 10<<20))
	var uh *robotcsv.UnknownHeaderError
	if !errors.As(err, &uh) || len(uh.Header) > 200 {
		t.Fatalf("got %T with header of %d bytes", err, len(uh.Header))
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		name    string
		v       robotcsv.Version
		in      string
		want    time.Time
		wantErr bool
	}{
		{name: "v1 winter (CET, UTC+1)", v: robotcsv.V1, in: "21.01.2026 08:30:00", want: time.Date(2026, 1, 21, 7, 30, 0, 0, time.UTC)},
		{name: "v1 summer (CEST, UTC+2)", v: robotcsv.V1, in: "21.07.2026 08:30:00", want: time.Date(2026, 7, 21, 6, 30, 0, 0, time.UTC)},
		{name: "v2 offset", v: robotcsv.V2, in: "2026-07-21T08:30:00+02:00", want: time.Date(2026, 7, 21, 6, 30, 0, 0, time.UTC)},
		{name: "v3 fractional Z", v: robotcsv.V3, in: "2026-07-21T06:30:00.123456Z", want: time.Date(2026, 7, 21, 6, 30, 0, 123456000, time.UTC)},
		{name: "v2 without offset", v: robotcsv.V2, in: "2026-07-21T08:30:00", wantErr: true},
		{name: "v1 ISO", v: robotcsv.V1, in: "2026-07-21T08:30:00Z", wantErr: true},
		{name: "v1 impossible date", v: robotcsv.V1, in: "31.02.2026 08:30:00", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.v.ParseTime(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !got.Equal(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFormatTimeRoundTrips(t *testing.T) {
	at := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC) // the day Berlin springs forward
	for _, v := range robotcsv.Versions() {
		s, err := v.FormatTime(at)
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.ParseTime(s)
		if err != nil || !got.Equal(at) {
			t.Errorf("%s: %q parsed to %v, %v; want %v", v.Name, s, got, err, at)
		}
	}
}

func TestDecimals(t *testing.T) {
	tests := []struct {
		v       robotcsv.Version
		in      string
		want    float64
		wantErr bool
	}{
		{v: robotcsv.V1, in: "5,25", want: 5.25},
		{v: robotcsv.V1, in: "-0,5", want: -0.5},
		{v: robotcsv.V1, in: "5.25", wantErr: true},
		{v: robotcsv.V2, in: "5.25", want: 5.25},
		{v: robotcsv.V2, in: "5,25", wantErr: true},
		{v: robotcsv.V2, in: "", wantErr: true},
		{v: robotcsv.V2, in: "abc", wantErr: true},
	}
	for _, tt := range tests {
		got, err := tt.v.ParseDecimal(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("%s ParseDecimal(%q) = %v, %v; want %v, err %v", tt.v.Name, tt.in, got, err, tt.want, tt.wantErr)
		}
		if !tt.wantErr {
			back, err := tt.v.ParseDecimal(tt.v.FormatDecimal(got))
			if err != nil || back != got {
				t.Errorf("%s FormatDecimal(%v) does not round-trip: %v, %v", tt.v.Name, got, back, err)
			}
		}
	}
}

func TestParseRefRange(t *testing.T) {
	tests := []struct {
		in        string
		low, high float64
		wantErr   bool
	}{
		{in: "3,5-5,1", low: 3.5, high: 5.1},
		{in: "135-145", low: 135, high: 145},
		{in: "-2-2", low: -2, high: 2},
		{in: "5,1-3,5", wantErr: true},
		{in: "3,5", wantErr: true},
		{in: "", wantErr: true},
		{in: "-", wantErr: true},
		{in: "a-b", wantErr: true},
	}
	for _, tt := range tests {
		low, high, err := robotcsv.V1.ParseRefRange(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && (low != tt.low || high != tt.high)) {
			t.Errorf("ParseRefRange(%q) = %v, %v, %v; want %v, %v, err %v", tt.in, low, high, err, tt.low, tt.high, tt.wantErr)
		}
	}
}

func TestVersionsAreWellFormed(t *testing.T) {
	for _, v := range robotcsv.Versions() {
		if got, ok := robotcsv.ByName(v.Name); !ok || got.Name != v.Name {
			t.Errorf("ByName(%s) = %v, %v", v.Name, got.Name, ok)
		}
		if _, err := v.Location(); err != nil {
			t.Errorf("%s: %v", v.Name, err)
		}
		for _, f := range []robotcsv.Field{robotcsv.SampleID, robotcsv.PatientID, robotcsv.Test, robotcsv.Value, robotcsv.Unit, robotcsv.CollectedAt} {
			if !v.Has(f) {
				t.Errorf("%s lacks required field %v", v.Name, f)
			}
		}
		if !v.Has(robotcsv.RefRange) && !(v.Has(robotcsv.RefLow) && v.Has(robotcsv.RefHigh)) {
			t.Errorf("%s has no reference range", v.Name)
		}
		if !v.Has(robotcsv.Status) && v.DefaultStatus == "" {
			t.Errorf("%s has neither a status column nor a default status", v.Name)
		}
	}
	if _, ok := robotcsv.ByName("v9"); ok {
		t.Error("ByName(v9) found a version")
	}
}
