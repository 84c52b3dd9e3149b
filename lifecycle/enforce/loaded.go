package enforce

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"cloud.google.com/go/civil"
	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"
	"golang.org/x/sync/errgroup"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/lifecycle/policy"
)

// candidate is an object a requires_loaded rule would delete.
type candidate struct {
	obj   policy.Object
	attrs *storage.ObjectAttrs
	rule  int
}

// verdict is the data-aware check of one candidate: ok, or held for why, or
// not decidable because a check failed (err).
type verdict struct {
	ok  bool
	why string
	err error
}

// dayLoad is what the check needs of a lineage.DayLoad.
type dayLoad struct {
	stagingStartedAt time.Time
}

// loadChecker decides whether raw objects' data is loaded. It reads lineage
// and day loads in batches and keeps the day loads for the run.
type loadChecker struct {
	fs      *firestore.Client
	st      *storage.Client
	workers int
	days    map[string]*dayLoad // nil: no document
}

// resolvePending checks the pending candidates: the loaded ones are planned
// for deletion, the others held and given what the other rules decide.
func (s *bucketScan) resolvePending(ctx context.Context) error {
	if len(s.pending) == 0 {
		return nil
	}
	cands := s.pending
	s.pending = nil
	verdicts, err := s.e.loads.check(ctx, cands)
	if err != nil {
		return err
	}
	others := policy.Bucket{}
	for _, r := range s.rules.Rules {
		if !r.RequiresLoaded {
			others.Rules = append(others.Rules, r)
		}
	}
	for i, c := range cands {
		v := verdicts[i]
		switch {
		case v.ok:
			s.plan(ctx, c.obj, c.attrs, s.rules.Rules[c.rule])
			continue
		case v.err != nil:
			s.e.mu.Lock()
			s.e.rep.Errors = append(s.e.rep.Errors, v.err.Error())
			s.e.mu.Unlock()
		default:
			h := Held{Bucket: s.bucket, Object: c.obj.Name, Generation: c.obj.Generation, Why: v.why}
			s.e.mu.Lock()
			s.e.rep.Held = append(s.e.rep.Held, h)
			s.e.mu.Unlock()
			s.e.log.Debug("held", "bucket", h.Bucket, "object", h.Object, "generation", h.Generation, "why", h.Why)
		}
		// Not deletable yet: whatever else is due (a colder class) still is.
		if r, ok := others.Decide(c.obj, s.e.now, true); ok {
			s.plan(ctx, c.obj, c.attrs, r)
		}
	}
	return nil
}

// check judges each candidate; an error means Firestore could not be read.
// A candidate's data is loaded when all of these hold:
//   - its lineage document (names.RawID of its name and source generation)
//     exists, is of that generation, and is done with a finish time;
//   - every day of its curated outputs (and of the lineage's Days) has a day
//     load whose staging started after the lineage finished;
//   - every curated output object exists.
//
// A lineage without outputs (every row quarantined) needs only the first.
func (lc *loadChecker) check(ctx context.Context, cands []candidate) ([]verdict, error) {
	out := make([]verdict, len(cands))
	ings := make([]*lineage.Ingestion, len(cands))

	var refs []*firestore.DocumentRef
	var at []int
	for i, c := range cands {
		id, err := names.RawID(c.obj.Name, sourceGeneration(c.attrs))
		if err != nil {
			out[i].why = fmt.Sprintf("no lineage for a name outside the raw layout: %v", err)
			continue
		}
		refs = append(refs, lc.fs.Collection(names.CollectionIngestions).Doc(id))
		at = append(at, i)
	}
	for lo := 0; lo < len(refs); lo += lineageBatch {
		hi := min(lo+lineageBatch, len(refs))
		snaps, err := lc.fs.GetAll(ctx, refs[lo:hi])
		if err != nil {
			return nil, fmt.Errorf("read %d lineage documents: %w", hi-lo, err)
		}
		for k, snap := range snaps {
			i := at[lo+k]
			ing, why := readLineage(snap, sourceGeneration(cands[i].attrs))
			out[i].why, ings[i] = why, ing
		}
	}

	if err := lc.loadDays(ctx, ings); err != nil {
		return nil, err
	}
	for i, ing := range ings {
		if ing == nil {
			continue
		}
		if why := lc.daysProblem(ing); why != "" {
			out[i].why, ings[i] = why, nil
		}
	}

	missing, errs := lc.outputsExist(ctx, ings)
	for i, ing := range ings {
		switch {
		case ing == nil:
		case errs[i] != nil:
			out[i].err = errs[i]
		case missing[i] != "":
			out[i].why = missing[i]
		default:
			out[i].ok = true
		}
	}
	return out, nil
}

// readLineage returns the lineage in snap if it shows a finished, successful
// processing of generation gen, or why not.
func readLineage(snap *firestore.DocumentSnapshot, gen int64) (*lineage.Ingestion, string) {
	if !snap.Exists() {
		return nil, "lineage missing"
	}
	var ing lineage.Ingestion
	if err := snap.DataTo(&ing); err != nil {
		return nil, fmt.Sprintf("lineage %s unreadable: %v", snap.Ref.ID, err)
	}
	switch {
	case ing.Status == lineage.StatusFailed:
		return nil, "lineage failed: the object needs investigation"
	case ing.Status != lineage.StatusDone:
		return nil, fmt.Sprintf("lineage %q, not done", ing.Status)
	case ing.Generation != gen:
		return nil, fmt.Sprintf("lineage is of generation %d, not %d", ing.Generation, gen)
	case ing.FinishedAt.IsZero():
		return nil, "lineage done without a finish time"
	}
	for _, o := range ing.Outputs {
		if o.Bucket == "" || o.Object == "" {
			return nil, "lineage lists a curated output without bucket or object"
		}
		if _, err := civil.ParseDate(o.Day); err != nil {
			return nil, fmt.Sprintf("curated output gs://%s/%s has no valid day (%q)", o.Bucket, o.Object, o.Day)
		}
	}
	for _, d := range ing.Days {
		if _, err := civil.ParseDate(d); err != nil {
			return nil, fmt.Sprintf("lineage day %q is not a date", d)
		}
	}
	return &ing, ""
}

// outputDays are the days whose loads an ingestion's deletion waits for.
func outputDays(ing *lineage.Ingestion) []string {
	days := slices.Clone(ing.Days)
	for _, o := range ing.Outputs {
		days = append(days, o.Day)
	}
	slices.Sort(days)
	return slices.Compact(days)
}

// loadDays reads the day loads of ings not read yet in this run.
func (lc *loadChecker) loadDays(ctx context.Context, ings []*lineage.Ingestion) error {
	var want []string
	for _, ing := range ings {
		if ing == nil {
			continue
		}
		for _, d := range outputDays(ing) {
			if _, seen := lc.days[d]; !seen && !slices.Contains(want, d) {
				want = append(want, d)
			}
		}
	}
	for lo := 0; lo < len(want); lo += lineageBatch {
		chunk := want[lo:min(lo+lineageBatch, len(want))]
		refs := make([]*firestore.DocumentRef, len(chunk))
		for i, d := range chunk {
			refs[i] = lc.fs.Collection(names.CollectionDayLoads).Doc(d)
		}
		snaps, err := lc.fs.GetAll(ctx, refs)
		if err != nil {
			return fmt.Errorf("read %d day loads: %w", len(refs), err)
		}
		for i, snap := range snaps {
			lc.days[chunk[i]] = nil
			if !snap.Exists() {
				continue
			}
			var dl lineage.DayLoad
			if err := snap.DataTo(&dl); err != nil {
				continue // unreadable: not known to be loaded
			}
			lc.days[chunk[i]] = &dayLoad{stagingStartedAt: dl.StagingStartedAt}
		}
	}
	return nil
}

// daysProblem says which day of ing is not loaded after ing finished.
func (lc *loadChecker) daysProblem(ing *lineage.Ingestion) string {
	for _, d := range outputDays(ing) {
		dl := lc.days[d]
		if dl == nil {
			return fmt.Sprintf("day %s not loaded", d)
		}
		if !dl.stagingStartedAt.After(ing.FinishedAt) {
			return fmt.Sprintf("day %s not loaded after processing (load staged %s, lineage finished %s)",
				d, dl.stagingStartedAt.UTC().Format(time.RFC3339), ing.FinishedAt.UTC().Format(time.RFC3339))
		}
	}
	return ""
}

// outputsExist looks up every curated output of ings (nil entries skipped):
// missing[i] names a missing one, errs[i] a failed look-up.
func (lc *loadChecker) outputsExist(ctx context.Context, ings []*lineage.Ingestion) (missing []string, errs []error) {
	missing = make([]string, len(ings))
	errs = make([]error, len(ings))
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(lc.workers)
	for i, ing := range ings {
		if ing == nil {
			continue
		}
		for _, o := range ing.Outputs {
			g.Go(func() error {
				_, err := lc.st.Bucket(o.Bucket).Object(o.Object).Attrs(ctx)
				if err == nil {
					return nil
				}
				mu.Lock()
				defer mu.Unlock()
				if errors.Is(err, storage.ErrObjectNotExist) {
					missing[i] = fmt.Sprintf("curated object gs://%s/%s missing", o.Bucket, o.Object)
				} else if errs[i] == nil {
					errs[i] = fmt.Errorf("look up curated object gs://%s/%s: %w", o.Bucket, o.Object, err)
				}
				return nil
			})
		}
	}
	_ = g.Wait() // the functions record their own errors
	return missing, errs
}
