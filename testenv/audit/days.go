package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/civil"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
)

// resultKey is what lab.results keeps one row of.
type resultKey struct{ sample, test string }

// dayAcc gathers one day's counts.
type dayAcc struct {
	Day
	keys     map[resultKey]struct{}
	offDay   int64
	ingested map[string]bool // ingestions counted in Ingestions
}

// table quotes dataset.table for SQL; both are constants of names.
func table() string { return "`" + names.Dataset + "." + names.ResultsTable + "`" }

// checkDays checks day_counts. It reads lab.results once, for the day
// counts and the summaries: both see the same table, and the emulator,
// whose queries slow down as a project's job history grows, runs one query
// (a few for a large table, see readResults).
func (a *auditor) checkDays(ctx context.Context) error {
	days := map[civil.Date]*dayAcc{}
	at := func(d civil.Date) *dayAcc {
		acc := days[d]
		if acc == nil {
			acc = &dayAcc{Day: Day{Day: d.String()}, keys: map[resultKey]struct{}{}, ingested: map[string]bool{}}
			days[d] = acc
		}
		return acc
	}
	for _, f := range a.curated {
		if f.bad != nil {
			continue
		}
		acc := at(f.day)
		acc.CuratedFiles++
		acc.CuratedRows += int64(len(f.rows))
		for _, r := range f.rows {
			if r.day != f.day {
				acc.offDay++
				continue
			}
			acc.keys[resultKey{r.sample, r.test}] = struct{}{}
		}
	}
	curatedBucket := names.CuratedBucket(a.prefix)
	for _, ing := range a.ingestions {
		if ing.doc.Status != lineage.StatusDone {
			continue
		}
		for _, o := range ing.doc.Outputs {
			if o.Bucket != curatedBucket {
				continue
			}
			d, err := civil.ParseDate(o.Day)
			if err != nil {
				a.violate(InvariantDayCounts, ing.doc.Object, "output %s has day %q, not YYYY-MM-DD", o.Object, o.Day)
				continue
			}
			acc := at(d)
			acc.LineageRows += o.Rows
			if !acc.ingested[ing.id] {
				acc.ingested[ing.id] = true
				acc.Ingestions++
			}
			if ing.doc.FinishedAt.After(acc.LastFinished) {
				acc.LastFinished = ing.doc.FinishedAt
			}
		}
	}

	rows, err := a.readResults(ctx)
	if err != nil {
		return err
	}
	a.results = rows
	a.rep.BigQueryRows = int64(len(rows))
	for _, r := range rows {
		// DATE(collected_at): the UTC day, as bq_load's WHERE clauses.
		at(dayOf(r.CollectedAt)).BigQueryRows++
	}

	loads, err := a.readDayLoads(ctx)
	if err != nil {
		return err
	}

	order := make([]civil.Date, 0, len(days))
	for d := range days {
		order = append(order, d)
	}
	slices.SortFunc(order, func(x, y civil.Date) int { return x.Compare(y) })
	for _, d := range order {
		acc := days[d]
		acc.Distinct = int64(len(acc.keys))
		subject := d.String()
		if acc.CuratedRows != acc.LineageRows {
			a.violate(InvariantDayCounts, subject, "%d curated rows in %d files, lineage of %d done ingestions says %d",
				acc.CuratedRows, acc.CuratedFiles, acc.Ingestions, acc.LineageRows)
		}
		if acc.offDay > 0 {
			a.violate(InvariantDayCounts, subject, "%d curated rows under the day were collected on another day", acc.offDay)
		}
		if acc.BigQueryRows != acc.Distinct {
			a.violate(InvariantDayCounts, subject, "lab.results holds %d rows of the day, want %d (distinct sample and test of the curated rows)",
				acc.BigQueryRows, acc.Distinct)
		}
		load, ok := loads[subject]
		switch {
		case !ok:
			a.violate(InvariantDayCounts, subject, "day not loaded: no %s document", names.CollectionDayLoads)
		default:
			acc.StagingStartedAt = load.StagingStartedAt
			acc.Loaded = load.StagingStartedAt.After(acc.LastFinished)
			if !acc.Loaded {
				a.violate(InvariantDayCounts, subject, "day not loaded since its last file: staging started %s, last ingestion finished %s",
					load.StagingStartedAt.UTC().Format(time.RFC3339Nano), acc.LastFinished.UTC().Format(time.RFC3339Nano))
			}
		}
		a.rep.Days = append(a.rep.Days, acc.Day)
	}
	return nil
}

// readDayLoads reads every day-load record, by day.
func (a *auditor) readDayLoads(ctx context.Context) (map[string]lineage.DayLoad, error) {
	it := a.c.Firestore.Collection(names.CollectionDayLoads).Documents(ctx)
	defer it.Stop()
	out := map[string]lineage.DayLoad{}
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", names.CollectionDayLoads, err)
		}
		var l lineage.DayLoad
		if err := snap.DataTo(&l); err != nil {
			a.violate(InvariantDayCounts, snap.Ref.ID, "day-load record unreadable: %v", err)
			continue
		}
		out[snap.Ref.ID] = l
	}
}
