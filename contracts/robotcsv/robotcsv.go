// Package robotcsv owns the CSV export formats of the organizer robots: the
// schema versions v1, v2 and v3 as data (header signature, delimiter,
// decimal separator, timestamp layout and time zone, and which canonical
// field each column feeds), and the detector that recognises a version from a
// file's header line.
//
// Detect returns an *UnknownHeaderError, naming the nearest version and the
// columns that were missing or unexpected, when no version matches. Cleaning
// code quarantines such a file whole; it is never a crash.
package robotcsv

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // v1 timestamps are in a named zone; do not depend on the host's zoneinfo
)

// Field is the canonical input a CSV column feeds.
type Field int

// The fields a robot export can carry. Not every version has every field.
const (
	SampleID Field = iota
	PatientID
	// Test holds the test's identity: a LOINC code (v2, v3) or the lab's
	// mnemonic (v1); see Version.TestCoding.
	Test
	TestName
	Value
	Unit
	// RefRange is v1's single "low-high" reference range column.
	RefRange
	RefLow
	RefHigh
	CollectedAt
	AnalyzedAt
	Status
	InstrumentFW
	numFields
)

var fieldNames = [numFields]string{
	SampleID: "sample_id", PatientID: "patient_id", Test: "test", TestName: "test_name",
	Value: "value", Unit: "unit", RefRange: "ref_range", RefLow: "ref_low", RefHigh: "ref_high",
	CollectedAt: "collected_at", AnalyzedAt: "analyzed_at", Status: "status", InstrumentFW: "instrument_fw",
}

func (f Field) String() string {
	if f >= 0 && f < numFields {
		return fieldNames[f]
	}
	return "Field(" + strconv.Itoa(int(f)) + ")"
}

// TestCoding says how a version identifies a test.
type TestCoding int

// The test codings robots use.
const (
	// Mnemonic is the lab-internal short code (GLU, CREA, ...), resolved
	// through contracts/labtests.
	Mnemonic TestCoding = iota + 1
	// LOINC is the LOINC code itself (2345-7).
	LOINC
)

// Column is one column of a version's header signature.
type Column struct {
	Name  string
	Field Field
}

// Version is one robot CSV export format.
type Version struct {
	// Name is the version's label, recorded on every result row (v1, v2, v3).
	Name             string
	Delimiter        byte
	DecimalSeparator byte
	// TimestampLayout is a Go time layout. Layouts without a zone offset are
	// read in TimeZone.
	TimestampLayout string
	// TimeZone is the IANA zone of timestamps that carry no offset; empty
	// when the layout carries one.
	TimeZone   string
	TestCoding TestCoding
	// Columns is the header signature: every column must be present, in any
	// order.
	Columns []Column
	// AllowExtraColumns says whether columns outside the signature are
	// tolerated (and ignored) rather than making the header unknown.
	AllowExtraColumns bool
	// DefaultStatus is the result status for versions without a status column.
	DefaultStatus string
}

// Result statuses, as robots (v3) send them and as rows carry them.
const (
	StatusPreliminary = "preliminary"
	StatusFinal       = "final"
	StatusCorrected   = "corrected"
)

// V1 is the legacy export: semicolons, decimal commas, a single RefRange
// column ("3,5-5,1"), mnemonic test codes and local wall-clock time.
var V1 = Version{
	Name:             "v1",
	Delimiter:        ';',
	DecimalSeparator: ',',
	TimestampLayout:  "02.01.2006 15:04:05",
	TimeZone:         "Europe/Berlin",
	TestCoding:       Mnemonic,
	Columns: []Column{
		{Name: "SampleID", Field: SampleID},
		{Name: "PatientID", Field: PatientID},
		{Name: "Test", Field: Test},
		{Name: "Result", Field: Value},
		{Name: "Unit", Field: Unit},
		{Name: "RefRange", Field: RefRange},
		{Name: "Collected", Field: CollectedAt},
	},
	DefaultStatus: StatusFinal,
}

// V2 is the current export: commas, ISO-8601 timestamps with offsets, LOINC
// codes and separate reference limits.
var V2 = Version{
	Name:             "v2",
	Delimiter:        ',',
	DecimalSeparator: '.',
	TimestampLayout:  time.RFC3339Nano,
	TestCoding:       LOINC,
	Columns: []Column{
		{Name: "sample_id", Field: SampleID},
		{Name: "patient_id", Field: PatientID},
		{Name: "loinc", Field: Test},
		{Name: "test_name", Field: TestName},
		{Name: "value", Field: Value},
		{Name: "unit", Field: Unit},
		{Name: "ref_low", Field: RefLow},
		{Name: "ref_high", Field: RefHigh},
		{Name: "collected_at", Field: CollectedAt},
	},
	DefaultStatus: StatusFinal,
}

// V3 is V2 plus analysis time, result status and analyzer firmware; columns
// it does not know are ignored, so firmware can add columns without breaking
// ingestion.
var V3 = func() Version {
	v := V2
	v.Name = "v3"
	v.Columns = append(append([]Column(nil), V2.Columns...),
		Column{Name: "analyzed_at", Field: AnalyzedAt},
		Column{Name: "status", Field: Status},
		Column{Name: "instrument_fw", Field: InstrumentFW},
	)
	v.AllowExtraColumns = true
	v.DefaultStatus = "" // every row carries its status
	return v
}()

// Versions lists every known version, most specific first: the order Detect
// tries them in.
func Versions() []Version { return []Version{V3, V2, V1} }

// ByName returns the version with the given name.
func ByName(name string) (Version, bool) {
	for _, v := range Versions() {
		if v.Name == name {
			return v, true
		}
	}
	return Version{}, false
}

// Header returns the header line this version's exports start with (without
// a line ending).
func (v Version) Header() string {
	names := make([]string, len(v.Columns))
	for i, c := range v.Columns {
		names[i] = c.Name
	}
	return strings.Join(names, string(v.Delimiter))
}

// Has reports whether the version carries field f.
func (v Version) Has(f Field) bool {
	for _, c := range v.Columns {
		if c.Field == f {
			return true
		}
	}
	return false
}

// Location returns the zone of timestamps without an offset.
func (v Version) Location() (*time.Location, error) {
	if v.TimeZone == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(v.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("robot CSV %s: time zone %q: %w", v.Name, v.TimeZone, err)
	}
	return loc, nil
}

// ParseTime reads a timestamp in this version's layout (and zone, for a
// layout without offset) and returns it in UTC.
func (v Version) ParseTime(s string) (time.Time, error) {
	loc, err := v.Location()
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.ParseInLocation(v.TimestampLayout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("robot CSV %s: timestamp %q: %w", v.Name, s, err)
	}
	return t.UTC(), nil
}

// FormatTime writes t the way this version's robots do.
func (v Version) FormatTime(t time.Time) (string, error) {
	loc, err := v.Location()
	if err != nil {
		return "", err
	}
	return t.In(loc).Format(v.TimestampLayout), nil
}

// ParseDecimal reads a number written with this version's decimal separator.
func (v Version) ParseDecimal(s string) (float64, error) {
	if v.DecimalSeparator != '.' {
		if strings.IndexByte(s, '.') >= 0 {
			return 0, fmt.Errorf("robot CSV %s: number %q: '.' is not the decimal separator", v.Name, s)
		}
		s = strings.ReplaceAll(s, string(v.DecimalSeparator), ".")
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, fmt.Errorf("robot CSV %s: number %q: %w", v.Name, s, err)
	}
	return f, nil
}

// FormatDecimal writes f the way this version's robots do.
func (v Version) FormatDecimal(f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if v.DecimalSeparator != '.' {
		s = strings.Replace(s, ".", string(v.DecimalSeparator), 1)
	}
	return s
}

// ParseRefRange reads v1's "low-high" reference range, e.g. "3,5-5,1".
func (v Version) ParseRefRange(s string) (low, high float64, err error) {
	// The separator is the first '-' after the first character, so a
	// negative lower limit ("-2-2") still parses.
	i := strings.IndexByte(s[min(1, len(s)):], '-')
	if i < 0 {
		return 0, 0, fmt.Errorf("robot CSV %s: reference range %q: want low-high", v.Name, s)
	}
	i += min(1, len(s))
	if low, err = v.ParseDecimal(s[:i]); err != nil {
		return 0, 0, fmt.Errorf("reference range low: %w", err)
	}
	if high, err = v.ParseDecimal(s[i+1:]); err != nil {
		return 0, 0, fmt.Errorf("reference range high: %w", err)
	}
	if low > high {
		return 0, 0, fmt.Errorf("robot CSV %s: reference range %q: low above high", v.Name, s)
	}
	return low, high, nil
}
