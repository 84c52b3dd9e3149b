// Package dags owns the platform's workflows, written as Go code on the dag
// package: bq_load (hourly: wait for a day's lineage, replace that day of
// lab.results with the deduplicated curated rows, check the counts against
// lineage, refresh the analyst views), quality (daily: distribution drift per
// test code and quarantine rate per robot, recorded in lab.quality_metrics and
// alerted on) and lifecycle (daily: bucket policies, the data-aware enforcer
// and the cost report, through the Lifecycle interface). It also owns the
// analyst views of dataset lab (daily_test_stats, abnormal_rate_by_robot),
// created and replaced by code. Demo returns the DAGs on compressed
// schedules for a live demo (orchestrate scheduler --demo, make run).
//
// Everything that chooses a day takes it from the run's data interval, or
// from the run parameter "day" (YYYY-MM-DD) of a manual trigger; a malformed
// day fails the task with an error naming it. Task errors name tables, days
// and counts, never patient or sample identifiers; a failed assertion wraps
// operators.ErrAssertion.
//
// Where goccy/bigquery-emulator and BigQuery differ, the SQL here is the
// subset both run the same way; the differences found are listed in
// README.md beside this file.
package dags
