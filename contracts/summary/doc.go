// Package summary owns the shape of the per-patient summary document that
// the process worker writes and the API reads: one document per patient in
// collection names.CollectionPatients ("patients"), whose id is the patient
// id, decoded with DocumentSnapshot.DataTo into a [Patient].
//
// A [Patient] holds, per test code (LOINC), a [TestSummary]: the count,
// mean and M2 (sum of squared deviations from the mean, so the sample
// variance is M2/(Count-1)), minimum, maximum, the number of abnormal
// results (flag other than "N"), the last result and the [RecentLen] most
// recent results, newest first, in the test's canonical UCUM unit.
//
// # The ledger
//
// Top-level field "counted" ([Patient.Counted]) records, per test code and
// sample id, the result that is counted in the aggregate ([Counted]). It is
// what makes folding exactly-once and lets a corrected result replace the
// value it corrects: [Remove] takes the old value out of Count, Mean and M2
// and the writer recomputes Min, Max, Last and Recent from the ledger when
// the replaced result was one of them. Readers do not need it and should
// skip it with a field mask: [SummaryFields] lists the other fields
// (Query.Select(SummaryFields...), for example with a
// Where(firestore.DocumentID, "==", ref) filter for one patient, since
// DocumentRef.Get has no mask).
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
// every field of a map (and of a map inside an array) counts. Under
// Firestore's storage-size rules a ledger entry with a 12-byte sample id and
// analyzed_at costs about 13 (key) + 14 (value) + 8 (flag) + 13 to 19
// (status) + 20 (analyzed_at) + 21 (collected_at) ≈ 92 bytes, so 1 MiB would
// hold about 11,000 counted results. The field limit binds first: an entry
// is 6 fields (5 without analyzed_at) and a test's summary about 65 fields
// (its map, 7 numbers and the unit, last with 5 fields, recent with up to 10
// entries of 5), so a patient with 28 tests (1,820 summary fields) has room
// for about 3,000 counted results. A write beyond either limit fails with
// INVALID_ARGUMENT. In production, exempt "counted" (and "tests") from
// single-field indexing: Firestore also caps index entries at 40,000 per
// document.
//
// The package is pure: no I/O, no errors.
package summary
