// Package schema owns the canonical lab result row: the one list of columns
// from which the Arrow schema (cleaning), the Parquet layout (curated files)
// and the BigQuery schema (lab.results) are derived.
//
// No other module keeps its own list of result columns: they ask this package
// for the column list, a column's position (Index), or one of the derived
// schemas. A test proves the three derivations agree column for column.
package schema

import (
	"fmt"
	"time"
)

// Kind is the logical type of a column, independent of any storage format.
type Kind int

// The kinds a result column can have.
const (
	String Kind = iota + 1
	Float64
	Int64
	// Timestamp is an instant in UTC with microsecond precision (BigQuery's
	// TIMESTAMP resolution).
	Timestamp
)

func (k Kind) String() string {
	switch k {
	case String:
		return "string"
	case Float64:
		return "float64"
	case Int64:
		return "int64"
	case Timestamp:
		return "timestamp"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Column is one column of the canonical result row.
type Column struct {
	Name        string
	Kind        Kind
	Required    bool
	Description string
}

// Column names, for code that addresses a column by name (builders, SQL).
const (
	SampleID         = "sample_id"
	PatientID        = "patient_id"
	RobotID          = "robot_id"
	TestCode         = "test_code"
	TestName         = "test_name"
	Value            = "value"
	Unit             = "unit"
	OriginalValue    = "original_value"
	OriginalUnit     = "original_unit"
	RefLow           = "ref_low"
	RefHigh          = "ref_high"
	Flag             = "flag"
	Status           = "status"
	CollectedAt      = "collected_at"
	AnalyzedAt       = "analyzed_at"
	InstrumentFW     = "instrument_fw"
	SchemaVersion    = "schema_version"
	SourceObject     = "source_object"
	SourceGeneration = "source_generation"
	SourceLine       = "source_line"
	IngestedAt       = "ingested_at"
)

// columns is the canonical result row, in storage order.
var columns = []Column{
	{Name: SampleID, Kind: String, Required: true, Description: "laboratory sample (tube) identifier"},
	{Name: PatientID, Kind: String, Required: true, Description: "pseudonymous patient identifier"},
	{Name: RobotID, Kind: String, Required: true, Description: "organizer robot that produced the result (Rnnn)"},
	{Name: TestCode, Kind: String, Required: true, Description: "LOINC code of the test"},
	{Name: TestName, Kind: String, Required: true, Description: "display name of the test"},
	{Name: Value, Kind: Float64, Required: true, Description: "result in the test's canonical unit"},
	{Name: Unit, Kind: String, Required: true, Description: "canonical UCUM unit of value"},
	{Name: OriginalValue, Kind: Float64, Required: true, Description: "result as the robot reported it"},
	{Name: OriginalUnit, Kind: String, Required: true, Description: "unit as the robot reported it"},
	{Name: RefLow, Kind: Float64, Required: false, Description: "lower reference limit, canonical unit"},
	{Name: RefHigh, Kind: Float64, Required: false, Description: "upper reference limit, canonical unit"},
	{Name: Flag, Kind: String, Required: true, Description: "LL, L, N, H or HH from reference range and critical limits"},
	{Name: Status, Kind: String, Required: true, Description: "preliminary, final or corrected"},
	{Name: CollectedAt, Kind: Timestamp, Required: true, Description: "when the sample was collected (UTC)"},
	{Name: AnalyzedAt, Kind: Timestamp, Required: false, Description: "when the analyzer measured it (UTC), schema v3 only"},
	{Name: InstrumentFW, Kind: String, Required: false, Description: "analyzer firmware, schema v3 only"},
	{Name: SchemaVersion, Kind: String, Required: true, Description: "robot CSV schema version of the source file"},
	{Name: SourceObject, Kind: String, Required: true, Description: "raw object name the row came from"},
	{Name: SourceGeneration, Kind: Int64, Required: true, Description: "generation of the raw object"},
	{Name: SourceLine, Kind: Int64, Required: true, Description: "1-based line number in the raw object"},
	{Name: IngestedAt, Kind: Timestamp, Required: true, Description: "when the row was cleaned (UTC)"},
}

var index = func() map[string]int {
	m := make(map[string]int, len(columns))
	for i, c := range columns {
		m[c.Name] = i
	}
	return m
}()

// Columns returns the canonical result columns in storage order. The slice is
// a copy: callers may keep or modify it.
func Columns() []Column {
	return append([]Column(nil), columns...)
}

// Index returns the position of the named column in Columns, or -1.
func Index(name string) int {
	if i, ok := index[name]; ok {
		return i
	}
	return -1
}

// TimestampUnit is the precision every timestamp column is stored with.
const TimestampUnit = time.Microsecond
