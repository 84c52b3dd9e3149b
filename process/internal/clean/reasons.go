package clean

// Reason codes of quarantined rows. They are stable: they appear in
// quarantine files, lineage histograms, reports and metrics labels.
const (
	// File-level reasons: every line of the file is quarantined with it.
	ReasonUnknownHeader = "unknown_header"

	// Line-level reasons, found before the fields are read.
	ReasonLineTooLong       = "line_too_long"
	ReasonInvalidUTF8       = "invalid_utf8"
	ReasonMalformedQuotes   = "malformed_quotes"
	ReasonEmptyLine         = "empty_line"
	ReasonDuplicateHeader   = "duplicate_header"
	ReasonWrongColumnCount  = "wrong_column_count"
	ReasonTruncatedLine     = "truncated_line"
	ReasonMissingField      = "missing_field"
	ReasonBadPatientID      = "bad_patient_id"
	ReasonBadSampleID       = "bad_sample_id"
	ReasonUnknownTest       = "unknown_test"
	ReasonBadValue          = "bad_value"
	ReasonImplausibleValue  = "implausible_value"
	ReasonUnknownUnit       = "unknown_unit"
	ReasonBadReferenceRange = "bad_reference_range"
	ReasonBadTimestamp      = "bad_timestamp"
	ReasonFutureTimestamp   = "future_timestamp"
	ReasonAnalyzedBefore    = "analyzed_before_collected"
	ReasonBadStatus         = "bad_status"

	// ReasonSuperseded marks a valid row that lost the deduplication of its
	// (sample_id, test_code) to a row of higher status or later analysis. It
	// is counted as rows_superseded, not rows_quarantined.
	ReasonSuperseded = "superseded"
)

// Reasons lists every reason code, for documentation and metrics.
func Reasons() []string {
	return []string{
		ReasonUnknownHeader, ReasonLineTooLong, ReasonInvalidUTF8, ReasonMalformedQuotes,
		ReasonEmptyLine, ReasonDuplicateHeader, ReasonWrongColumnCount, ReasonTruncatedLine,
		ReasonMissingField, ReasonBadPatientID, ReasonBadSampleID, ReasonUnknownTest,
		ReasonBadValue, ReasonImplausibleValue, ReasonUnknownUnit, ReasonBadReferenceRange,
		ReasonBadTimestamp, ReasonFutureTimestamp, ReasonAnalyzedBefore, ReasonBadStatus,
		ReasonSuperseded,
	}
}
