package summary

import (
	"cmp"
	"slices"
	"time"

	contract "github.com/labplatform/platform/contracts/summary"
)

// Result is one cleaned result, as the cleaning step hands it over.
type Result struct {
	PatientID, TestCode, SampleID, Unit, Flag, Status string
	Value                                             float64
	CollectedAt, AnalyzedAt                           time.Time // zero when absent
}

// outranks reports whether r should replace the counted result c of the
// same sample and test: a higher status rank, or the same rank and a later
// analyzed_at. Anything else is a duplicate or older news.
func outranks(r Result, c contract.Counted) bool {
	rr, cr := contract.StatusRank(r.Status), contract.StatusRank(c.Status)
	if rr != cr {
		return rr > cr
	}
	return r.AnalyzedAt.After(c.AnalyzedAt)
}

// normTime is t as Firestore stores it: UTC, whole microseconds. The zero
// time stays the zero time.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func (r Result) counted() contract.Counted {
	return contract.Counted{Value: r.Value, Flag: r.Flag, Status: r.Status, AnalyzedAt: r.AnalyzedAt, CollectedAt: r.CollectedAt}
}

func (r Result) shown() contract.Result {
	return contract.Result{SampleID: r.SampleID, Value: r.Value, Flag: r.Flag, Status: r.Status, CollectedAt: r.CollectedAt}
}

// Fold folds results, which must all be of doc's patient, into doc and its
// ledger and returns how many of them changed them. It is deterministic and
// idempotent: folding a result again, or one it outranks, changes nothing.
//
// ledger must not be nil. It must hold the entry of every (test, sample) of
// results that has one, and every entry of a test in which a result
// replaces a counted one (see replaces): the caller loads those parts of a
// sharded ledger. Fold adds and replaces entries in it.
//
// For each test code and sample id the result that counts is the one of
// highest rank: status corrected > final > preliminary, then the later
// analyzed_at; of equal ranks the one counted first stays. So:
//
//   - a result for a (sample, test) not in the ledger is added: Count, Mean
//     and M2 by Chan et al.'s merge of the batch's new values, Min, Max,
//     Abnormal, and Last and Recent (the newest by collected_at, then status,
//     then sample id; an older result arriving late never becomes Last);
//   - a result that outranks the counted one replaces it: its value is
//     removed (summary.Remove) and the new one added, Abnormal adjusted;
//     Min and Max are recomputed from the ledger when the removed value was
//     one of them, and Last and Recent are rebuilt from the ledger;
//   - any other result is ignored.
//
// Times are normalised to UTC microseconds, as Firestore stores them. Fold
// does not set doc.UpdatedAt; results is not modified.
func Fold(doc *contract.Patient, ledger contract.Ledger, results []Result) int {
	if len(results) == 0 {
		return 0
	}
	// The winner of each (test, sample) within results, in order of first
	// appearance: equal ranks keep the first, as if folded one by one.
	type key struct{ test, sample string }
	at := make(map[key]int, len(results))
	winners := make([]Result, 0, len(results))
	for _, r := range results {
		r.CollectedAt, r.AnalyzedAt = normTime(r.CollectedAt), normTime(r.AnalyzedAt)
		k := key{r.TestCode, r.SampleID}
		if i, ok := at[k]; ok {
			if outranks(r, winners[i].counted()) {
				winners[i] = r
			}
			continue
		}
		at[k] = len(winners)
		winners = append(winners, r)
	}
	// Stable sort by test keeps first-appearance order within a test, so
	// floating-point sums are the same on every retry.
	slices.SortStableFunc(winners, func(a, b Result) int { return cmp.Compare(a.TestCode, b.TestCode) })
	if doc.Tests == nil {
		doc.Tests = make(map[string]*contract.TestSummary)
	}
	changed := 0
	for lo := 0; lo < len(winners); {
		hi := lo + 1
		for hi < len(winners) && winners[hi].TestCode == winners[lo].TestCode {
			hi++
		}
		changed += foldTest(doc, ledger, winners[lo:hi])
		lo = hi
	}
	return changed
}

// foldTest folds the winners of one test (distinct samples) into doc and
// its ledger.
func foldTest(doc *contract.Patient, all contract.Ledger, rs []Result) int {
	code := rs[0].TestCode
	ledger := all[code]
	if ledger == nil {
		ledger = make(map[string]contract.Counted, len(rs))
	}
	s := contract.TestSummary{}
	if p := doc.Tests[code]; p != nil {
		s = *p
	}

	var added contract.TestSummary // the new samples' summary
	var recent []contract.Result
	replaced, minMaxStale := false, false
	changed := 0
	for _, r := range rs {
		old, ok := ledger[r.SampleID]
		if ok && !outranks(r, old) {
			continue
		}
		changed++
		ledger[r.SampleID] = r.counted()
		if r.Unit != "" {
			s.Unit = r.Unit
		}
		one := contract.TestSummary{Count: 1, Mean: r.Value, Min: r.Value, Max: r.Value, Last: r.shown()}
		if contract.Abnormal(r.Flag) {
			one.Abnormal = 1
		}
		if !ok {
			added = contract.Merge(added, one) // Recent is built below, once
			recent = append(recent, r.shown())
			continue
		}
		replaced = true
		if old.Value == s.Min || old.Value == s.Max {
			minMaxStale = true
		}
		s = contract.Remove(s, old.Value)
		if contract.Abnormal(old.Flag) {
			s.Abnormal--
		}
		s = contract.Merge(s, one)
	}
	if changed == 0 {
		return 0
	}
	added.Recent = contract.NewestFirst(recent)
	s = contract.Merge(s, added)
	if minMaxStale {
		first := true
		for _, c := range ledger {
			if first {
				s.Min, s.Max, first = c.Value, c.Value, false
				continue
			}
			s.Min, s.Max = min(s.Min, c.Value), max(s.Max, c.Value)
		}
	}
	if replaced {
		// The replaced result may have been Last or in Recent, and its
		// collected_at or status (so its place in the order) may differ:
		// rebuild both from the ledger, which holds every counted result.
		all := make([]contract.Result, 0, len(ledger))
		for id, c := range ledger {
			all = append(all, c.Result(id))
		}
		s.Recent = slices.Clone(contract.NewestFirst(all))
		s.Last = s.Recent[0]
	}
	doc.Tests[code] = &s
	all[code] = ledger
	return changed
}

// replaces reports whether a result of results outranks the entry ledger
// holds for its (test, sample): whether Fold needs every entry of that test.
func replaces(ledger contract.Ledger, results []Result) bool {
	for _, r := range results {
		r.AnalyzedAt = normTime(r.AnalyzedAt)
		if c, ok := ledger[r.TestCode][r.SampleID]; ok && outranks(r, c) {
			return true
		}
	}
	return false
}
