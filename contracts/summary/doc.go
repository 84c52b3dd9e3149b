// Package summary owns the shape of the per-patient summary document that
// the process worker writes and the API reads: one document per patient in
// collection names.CollectionPatients ("patients"), whose id is the patient
// id, decoded with DocumentSnapshot.DataTo into a [Patient]; and the shape
// of the patient's ledger of counted results, in the document's
// subcollection [CollectionLedger].
//
// A [Patient] holds, per test code (LOINC), a [TestSummary]: the count,
// mean and M2 (sum of squared deviations from the mean, so the sample
// variance is M2/(Count-1)), minimum, maximum, the number of abnormal
// results (flag other than "N"), the last result and the [RecentLen] most
// recent results, newest first, in the test's canonical UCUM unit.
//
// # The ledger
//
// Every patient has a ledger ([Ledger]): per test code and sample id, the
// result that is counted in the aggregate ([Counted]). It is what makes
// folding exactly-once and lets a corrected result replace the value it
// corrects: [Remove] takes the old value out of Count, Mean and M2 and the
// writer recomputes Min, Max, Last and Recent from the ledger when the
// replaced result was one of them.
//
// The ledger is not in the patient document but in its subcollection
// [CollectionLedger], patients/<patient id>/ledger, as [LedgerDoc]
// documents. It is a set of shards: a shard holds the entries whose
// [ShardHash] (SHA-256 of test code, a zero byte and sample id) starts with
// the shard's prefix of bits, and the prefixes are prefix-free and cover
// every hash. A small ledger is one shard, prefix "", stored in the root
// document [LedgerDocID]("") = "root" with Shards empty. When a shard
// outgrows the writer's bound it is split in two by the next bit of its
// entries' hashes; once the root has been split it holds only Shards, the
// list of prefixes, and shard p is the document LedgerDocID(p) =
// "shard-<p>". [ShardOf] finds an entry's shard. A shard in Shards always
// has a document written since it was listed; a split shard's document is
// deleted. The ledger belongs to its patient document: without one the
// ledger is empty whatever the subcollection holds (Firestore keeps
// subcollections when a document is deleted).
//
// Documents written before the ledger moved out hold it in the top-level
// field [FieldLegacyCounted] ("counted", the same Ledger shape). The
// writer moves it into the subcollection and deletes the field the next
// time a file names the patient, in the same transaction.
//
// Readers of summaries do not need the ledger: the document read never
// includes its subcollection, and a field mask skips a legacy field:
// [SummaryFields] lists the summary fields (Query.Select(SummaryFields...),
// for example with a Where(firestore.DocumentID, "==", ref) filter for one
// patient, since DocumentRef.Get has no mask). [ReadLedger] reads a whole
// ledger, wherever it is, at one point in time (the audit explains
// mismatches with it).
//
// # Order
//
// [Newer] is the one order of results by recency: later collected_at, then
// higher status rank ([StatusRank]: corrected > final > preliminary), then
// greater sample id. Last is the greatest result in it and Recent the
// RecentLen greatest, so a late-arriving result collected earlier never
// replaces a newer last value.
//
// # Arithmetic
//
// [Merge] combines two summaries with the parallel formula of Chan, Golub
// and LeVeque (1979): with n = na+nb and delta = mean_b-mean_a,
// mean = mean_a + delta*nb/n and M2 = M2a + M2b + delta²*na*nb/n. Merging a
// one-value summary is Welford's update; [Remove] is its inverse, exact up
// to floating-point rounding. Times are stored in UTC with microsecond
// precision, as Firestore stores them.
//
// # Size
//
// A Firestore document holds at most 1 MiB and at most 20,000 fields, where
// every field of a map (and of a map inside an array) counts, and Firestore
// caps index entries at 40,000 per document. A ledger entry is 6 fields (5
// without analyzed_at) and, under Firestore's storage-size rules, with a
// 12-byte sample id and analyzed_at about 13 (key) + 14 (value) + 8 (flag) +
// 13 to 19 (status) + 20 (analyzed_at) + 21 (collected_at) ≈ 92 bytes.
//
// Inside the patient document, as before, the ledger filled it at about
// 3,000 counted results (with 28 tests of about 65 summary fields each),
// and every later file naming the patient failed. Out of it, the process
// writer keeps every ledger document at most 1,000 entries (at most 7,000
// fields, with one more per test map; about 100 KiB with the 64-byte
// sample ids process accepts) and about 256 KiB, splitting shards as they
// grow, so neither a patient nor a single test has a practical limit. The
// patient document holds the summary only: about 65 fields and 1 to 1.5
// KiB a test, so about 300 distinct tests would fill it. In production,
// exempt "tests" of patients and "counted" of the ledger collection group
// from single-field indexing: nothing queries them.
//
// The package is pure (no I/O, no errors) but for ReadLedger.
package summary
