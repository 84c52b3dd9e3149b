package stack

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/firestore"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
)

// Progress is what the platform has done so far, as the status line shows.
type Progress struct {
	// Files are the raw objects with a lineage document, by status.
	Files, Done, Failed int
	RowsValid           int64
	RowsQuarantined     int64
	RowsSuperseded      int64
	// Patients are the summary documents.
	Patients int
	// BigQueryRows are the rows of lab.results (0 before the first load).
	BigQueryRows int64
}

// String is the status line.
func (p Progress) String() string {
	s := fmt.Sprintf("files %d processed", p.Done)
	if pending := p.Files - p.Done - p.Failed; pending > 0 {
		s += fmt.Sprintf(" (+%d in progress)", pending)
	}
	if p.Failed > 0 {
		s += fmt.Sprintf(" (%d failed)", p.Failed)
	}
	return s + fmt.Sprintf(" · rows %d valid, %d quarantined, %d superseded · %d patient summaries · %d rows in BigQuery",
		p.RowsValid, p.RowsQuarantined, p.RowsSuperseded, p.Patients, p.BigQueryRows)
}

// readProgress reads the lineage documents (their counts only), counts the
// summary documents and the rows of lab.results.
func readProgress(ctx context.Context, fs *firestore.Client, bq *bigquery.Client) (Progress, error) {
	var p Progress
	it := fs.Collection(names.CollectionIngestions).
		Select("status", "rows_valid", "rows_quarantined", "rows_superseded").Documents(ctx)
	defer it.Stop()
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return p, fmt.Errorf("progress: read lineage: %w", err)
		}
		var ing lineage.Ingestion
		if err := snap.DataTo(&ing); err != nil {
			return p, fmt.Errorf("progress: lineage %s: %w", snap.Ref.ID, err)
		}
		p.Files++
		switch ing.Status {
		case lineage.StatusDone:
			p.Done++
			p.RowsValid += ing.RowsValid
			p.RowsQuarantined += ing.RowsQuarantined
			p.RowsSuperseded += ing.RowsSuperseded
		case lineage.StatusFailed:
			p.Failed++
		}
	}
	pit := fs.Collection(names.CollectionPatients).Select().Documents(ctx)
	defer pit.Stop()
	for {
		_, err := pit.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return p, fmt.Errorf("progress: count summaries: %w", err)
		}
		p.Patients++
	}
	n, err := countResults(ctx, bq)
	if err != nil {
		return p, err
	}
	p.BigQueryRows = n
	return p, nil
}

// countResults counts the rows of lab.results; a table not yet created
// (before the first load) has none.
func countResults(ctx context.Context, bq *bigquery.Client) (int64, error) {
	if _, err := bq.Dataset(names.Dataset).Table(names.ResultsTable).Metadata(ctx); err != nil {
		if isNotFound(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("progress: lab.results: %w", err)
	}
	it, err := bq.Query("SELECT COUNT(*) FROM `" + names.Dataset + "." + names.ResultsTable + "`").Read(ctx)
	if err != nil {
		return 0, fmt.Errorf("progress: count lab.results: %w", err)
	}
	var row []bigquery.Value
	if err := it.Next(&row); err != nil {
		return 0, fmt.Errorf("progress: count lab.results: %w", err)
	}
	n, ok := row[0].(int64)
	if !ok {
		return 0, fmt.Errorf("progress: count lab.results: got %T", row[0])
	}
	return n, nil
}

func isNotFound(err error) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusNotFound
}
