package lineage

import "time"

// DayLoad records that orchestrate's bq_load replaced one day of lab.results
// and its assertions passed. It lives in names.CollectionDayLoads under the
// day (YYYY-MM-DD) and is overwritten by every successful load of the day.
//
// The lifecycle enforcer reads it to know a raw object's data is in
// BigQuery: an ingestion that finished before StagingStartedAt was in the
// curated files the load read.
type DayLoad struct {
	// Day is the collected_at date, YYYY-MM-DD.
	Day string `firestore:"day" json:"day"`
	// StagingStartedAt is when the load read the day's curated files.
	StagingStartedAt time.Time `firestore:"staging_started_at" json:"staging_started_at"`
	// LoadedAt is when the assertions passed.
	LoadedAt time.Time `firestore:"loaded_at" json:"loaded_at"`
	// DAGID and RunID name the run that loaded it.
	DAGID string `firestore:"dag_id" json:"dag_id"`
	RunID string `firestore:"run_id" json:"run_id"`
	// Rows is the number of rows of the day in lab.results after the load.
	Rows int64 `firestore:"rows" json:"rows"`
}
