// Package summary keeps the per-patient summary documents
// (contracts/summary, collection names.CollectionPatients) current as the
// process worker cleans raw objects, counting every result exactly once on
// at-least-once delivery.
//
// Fold is the pure rule: it folds a patient's cleaned results into its
// document, using the patient's ledger of counted results so that a
// duplicate changes nothing and a corrected result replaces, never adds.
// The ledger lives in the patient document's subcollection (shapes in
// contracts/summary): a root document, split into hash-prefix shards of at
// most MaxShardEntries entries and MaxShardBytes as it grows, so no
// patient or test fills a document. The transaction reads the root with
// the patient document, the shards its results fall in, and every shard
// only when a result replaces a counted one in a sharded ledger; it writes
// only the shards that changed. A patient document that still holds the
// ledger (written before it moved out) is migrated by the next batch that
// names the patient.
//
// Updater is the store: a Run streams a raw object's results, sorted by
// patient id, cuts them into batches of consecutive patients, and applies
// each batch in one Firestore transaction together with a marker document
// (names.CollectionSummaryMarkers) keyed by the object's content hash,
// PatientsPerTxn and the batch index (in several, the marker with the last,
// when one commit would exceed MaxWritesPerCommit or MaxCommitBytes). Redelivery, a crashed run started
// again and re-uploaded content find their markers and change nothing; the
// ledger keeps even a run whose markers cannot match (other content with
// the same rows, another PatientsPerTxn) from counting a result twice.
//
// Errors: Add and Close return errors wrapped with the run's or batch's
// identifiers (marker id, first and last patient); Firestore's status codes
// stay reachable with status.Code and errors.As. A run is dead after its
// first error; start it again from the beginning with the same content
// hash and the committed batches are skipped.
package summary
