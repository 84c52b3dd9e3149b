// Package process cleans raw robot CSV into curated Parquet: Pub/Sub-triggered worker and local CLI over one Arrow-based core, with quarantine of rejected rows, lineage, and exactly-once Firestore patient summaries.
//
// Not built yet: issue #5 fills this module.
package process
