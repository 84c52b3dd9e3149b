// Package lineage owns the shape of the lineage document the process worker
// writes for every raw object generation, in Firestore collection
// names.CollectionIngestions under the object's names.RawID. The
// orchestrator's sensors wait on it, BigQuery assertions compare with its
// counts, and the API looks it up; they all read this type.
//
// The counts obey RowsIn = RowsValid + RowsQuarantined + RowsSuperseded,
// rows being the lines after the header.
package lineage

import "time"

// The statuses of an ingestion.
const (
	// StatusProcessing: a worker is cleaning the object now (or crashed
	// doing so; the message will be redelivered).
	StatusProcessing = "processing"
	// StatusRetrying: an attempt failed; Error says why and Pub/Sub will
	// redeliver.
	StatusRetrying = "retrying"
	// StatusDone: outputs, summaries and this document are committed.
	StatusDone = "done"
	// StatusFailed: the last delivery attempt failed; the message is on the
	// dead-letter topic and Error says why.
	StatusFailed = "failed"
)

// Finished reports whether a status is final: done or failed.
func Finished(status string) bool { return status == StatusDone || status == StatusFailed }

// Ingestion is the document ingestions/<raw-id>.
type Ingestion struct {
	RawID string `firestore:"raw_id" json:"raw_id"`
	// The source object.
	Bucket     string `firestore:"bucket" json:"bucket"`
	Object     string `firestore:"object" json:"object"`
	Generation int64  `firestore:"generation" json:"generation"`
	Size       int64  `firestore:"size" json:"size"`
	// CRC32C is the object's Castagnoli checksum as GCS reports it.
	CRC32C uint32 `firestore:"crc32c" json:"crc32c"`
	// ContentHash keys the summary markers: "md5:<hex>" from GCS, or
	// "sha256:<hex>" computed when GCS has no MD5 (composite objects).
	ContentHash string `firestore:"content_hash" json:"content_hash"`
	// Robot and Date come from the object name (the day it was shipped).
	Robot string `firestore:"robot" json:"robot"`
	Date  string `firestore:"date" json:"date"`

	SchemaVersion string `firestore:"schema_version" json:"schema_version"`
	// HeaderError explains an unknown header; the whole file is then
	// quarantined.
	HeaderError string `firestore:"header_error,omitempty" json:"header_error,omitempty"`

	Status  string `firestore:"status" json:"status"`
	Error   string `firestore:"error,omitempty" json:"error,omitempty"`
	Attempt int    `firestore:"attempt" json:"attempt"`
	Worker  string `firestore:"worker" json:"worker"`

	RowsIn          int64            `firestore:"rows_in" json:"rows_in"`
	RowsValid       int64            `firestore:"rows_valid" json:"rows_valid"`
	RowsQuarantined int64            `firestore:"rows_quarantined" json:"rows_quarantined"`
	RowsSuperseded  int64            `firestore:"rows_superseded" json:"rows_superseded"`
	Reasons         map[string]int64 `firestore:"reasons" json:"reasons"`

	// Outputs are the curated Parquet objects, one per collected_at day;
	// Days lists those days (YYYY-MM-DD) for queries by day.
	Outputs    []Output `firestore:"outputs" json:"outputs"`
	Days       []string `firestore:"days" json:"days"`
	Quarantine *Output  `firestore:"quarantine,omitempty" json:"quarantine,omitempty"`

	Summaries Summaries `firestore:"summaries" json:"summaries"`
	Durations Durations `firestore:"durations_seconds" json:"durations_seconds"`

	StartedAt  time.Time `firestore:"started_at" json:"started_at"`
	FinishedAt time.Time `firestore:"finished_at,omitempty" json:"finished_at,omitempty"`
}

// Output is one object written for an ingestion.
type Output struct {
	Bucket string `firestore:"bucket" json:"bucket"`
	Object string `firestore:"object" json:"object"`
	// Day is the collected_at day of a curated output.
	Day  string `firestore:"day,omitempty" json:"day,omitempty"`
	Rows int64  `firestore:"rows" json:"rows"`
}

// Summaries records the patient summary updates of an ingestion.
type Summaries struct {
	Patients       int64 `firestore:"patients" json:"patients"`
	Results        int64 `firestore:"results" json:"results"`
	Batches        int64 `firestore:"batches" json:"batches"`
	BatchesSkipped int64 `firestore:"batches_skipped" json:"batches_skipped"`
	TxnRetries     int64 `firestore:"txn_retries" json:"txn_retries"`
}

// Durations are wall-clock seconds of an ingestion's phases.
type Durations struct {
	Clean     float64 `firestore:"clean" json:"clean"`
	Summaries float64 `firestore:"summaries" json:"summaries"`
	Total     float64 `firestore:"total" json:"total"`
}
