// Package audit owns the platform's data invariants and their check on a
// running or stopped stack: it reads everything under one bucket prefix —
// the raw objects, the lineage documents, the curated Parquet files, the
// quarantine CSV files, the day-load records, lab.results and the patient
// summaries — and proves that no result was lost or counted twice. `make
// demo` prints its Report and fails when an invariant does not hold; the
// chaos tests hold the platform to it after every fault.
//
// # Invariants
//
// Each one is a kind of Violation; Check collects every violation rather
// than stopping at the first.
//
//   - source_rows: every raw object has a lineage document (names.RawID)
//     with status done. Every data line of a done object (lines 2..N, the
//     header being line 1, counted in the raw object itself, a last line
//     without "\n" included) is in exactly one place: a curated Parquet row
//     of that object and generation (source_object, source_generation,
//     source_line), or a quarantine row of its quarantine CSV, where process
//     writes both the rejected lines and the superseded ones (reason
//     "superseded"). No line is in two places or listed twice, and lineage
//     RowsIn, RowsValid, RowsQuarantined and RowsSuperseded equal what the
//     files show, as do the row counts of its outputs. A database chunk
//     (names.ChunkObject) is numbered like any raw object: its own header is
//     line 1, whatever offset of the database it starts at.
//   - day_counts: for every collected_at day D, the curated rows under D's
//     prefix equal the sum of the done ingestions' outputs for D, every one
//     of them was collected on D, lab.results holds one row per distinct
//     (sample_id, test_code) of them (its rows with DATE(collected_at) = D),
//     and a lineage.DayLoad for D started staging after the last of D's
//     ingestions finished.
//   - summary: every patients/<id> document equals a recomputation from
//     lab.results (one row per sample and test, the one bq_load keeps),
//     folded with summary.Merge: per test Count, Abnormal and Unit exactly,
//     Mean, variance, Min, Max and Last's value within Options.Tolerance,
//     Last's sample and Recent's samples in order. A patient of lab.results
//     without a document, or a counted test lab.results lacks, is a
//     violation. The detail of a mismatch compares the patient's ledger
//     (summary.ReadLedger) with lab.results.
//
// lab.results is read once, with one query without parameters: the day
// counts and the summaries come from the same rows. (A COUNT(*) per day
// costs the BigQuery emulator more than reading the table, and its queries
// slow down as a project's job history grows.)
//
// Raw objects the lifecycle enforcer rewrote to a colder class keep their
// first generation in metadata (names.MetaLifecycleSourceGeneration);
// lineage and curated rows are matched with that one. A done lineage
// document whose raw object is gone (deleted by the lifecycle enforcer) is
// checked by its counts only: there is nothing left to count lines in.
//
// # Errors
//
// Check returns an error only when it cannot read something: a listing, an
// object, a document or a query failing. What it reads but finds wrong — a
// curated file that is not Parquet, a quarantine file that is not the
// quarantine CSV, a document of the wrong shape — is a violation.
//
// Violations name raw objects, days, test codes and the (pseudonymous)
// patient ids: the report is for an operator, and nothing of it is logged.
package audit
