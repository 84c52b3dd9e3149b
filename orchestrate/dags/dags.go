package dags

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/notify"
)

// Deps are what the platform's DAGs talk to.
type Deps struct {
	// Prefix is the deployment's bucket prefix (names.RawBucket(Prefix), ...).
	Prefix    string
	Storage   *storage.Client
	BigQuery  *bigquery.Client
	Firestore *firestore.Client
	// Notifier receives the quality alerts.
	Notifier notify.Notifier
	// Lifecycle, when nil, leaves the lifecycle DAG out of Platform.
	Lifecycle Lifecycle
	// Thresholds tune the quality DAG; zero fields take the defaults
	// (DefaultThresholds).
	Thresholds Thresholds
}

// ParamDay is the run parameter that overrides the day a run works on.
const ParamDay = "day"

// Platform returns every DAG of the platform: bq_load, quality and, when
// d.Lifecycle is set, lifecycle.
func Platform(d Deps) ([]*dag.DAG, error) {
	var out []*dag.DAG
	var errs []error
	for _, build := range []func(Deps) (*dag.DAG, error){BQLoad, Quality} {
		g, err := build(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, g)
	}
	if d.Lifecycle != nil {
		g, err := LifecycleDAG(d)
		if err != nil {
			errs = append(errs, err)
		} else {
			out = append(out, g)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// requireData reports the missing dependencies of a DAG that reads and
// writes data.
func (d Deps) requireData(dagID string) error {
	var errs []error
	if d.Prefix == "" {
		errs = append(errs, errors.New("no bucket prefix"))
	}
	if d.Storage == nil {
		errs = append(errs, errors.New("no Cloud Storage client"))
	}
	if d.BigQuery == nil {
		errs = append(errs, errors.New("no BigQuery client"))
	}
	if d.Firestore == nil {
		errs = append(errs, errors.New("no Firestore client"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("dag %s: %w", dagID, errors.Join(errs...))
	}
	return nil
}

// dayParam returns the run parameter "day" when set.
func dayParam(tc *dag.TaskContext) (civil.Date, bool, error) {
	s := tc.Param(ParamDay, "")
	if s == "" {
		return civil.Date{}, false, nil
	}
	d, err := civil.ParseDate(s)
	if err != nil || !d.IsValid() {
		return civil.Date{}, true, fmt.Errorf("run parameter %s=%q is not a date (YYYY-MM-DD)", ParamDay, s)
	}
	return d, true, nil
}

// dayFunc picks the day a task works on.
type dayFunc func(tc *dag.TaskContext) (civil.Date, error)

// onDay adapts a function of the run's day to dag.Operator.
func onDay(day dayFunc, run func(ctx context.Context, tc *dag.TaskContext, day civil.Date) error) dag.Func {
	return func(ctx context.Context, tc *dag.TaskContext) error {
		d, err := day(tc)
		if err != nil {
			return err
		}
		return run(ctx, tc, d)
	}
}

// compact formats a day as YYYYMMDD, for table names.
func compact(d civil.Date) string {
	return fmt.Sprintf("%04d%02d%02d", d.Year, int(d.Month), d.Day)
}

func logger(tc *dag.TaskContext) *slog.Logger {
	if tc.Logger != nil {
		return tc.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// now is the scheduler's clock, or the end of the run's data interval when
// the task context has no clock.
func now(tc *dag.TaskContext) time.Time {
	if tc.Now != nil {
		return tc.Now()
	}
	return tc.Interval.End
}

func isNotFound(err error) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusNotFound
}

// ensureDataset creates the dataset when it is missing. It looks before it
// creates: the emulator answers the creation of an existing dataset with a
// 500, not BigQuery's 409.
func ensureDataset(ctx context.Context, bq *bigquery.Client, id string) error {
	ds := bq.Dataset(id)
	_, err := ds.Metadata(ctx)
	if err == nil {
		return nil
	}
	if !isNotFound(err) {
		return fmt.Errorf("dataset %s: %w", id, err)
	}
	if err := ds.Create(ctx, &bigquery.DatasetMetadata{Location: bq.Location}); err != nil && !isConflict(err) {
		return fmt.Errorf("create dataset %s: %w", id, err)
	}
	return nil
}

// ensureTable creates the table with md, and its dataset, when it is
// missing; an existing table is left as it is.
func ensureTable(ctx context.Context, bq *bigquery.Client, dataset, table string, md *bigquery.TableMetadata) error {
	t := bq.Dataset(dataset).Table(table)
	_, err := t.Metadata(ctx)
	if err == nil {
		return nil
	}
	if !isNotFound(err) {
		return fmt.Errorf("table %s.%s: %w", dataset, table, err)
	}
	if err := ensureDataset(ctx, bq, dataset); err != nil {
		return err
	}
	if err := t.Create(ctx, md); err != nil && !isConflict(err) {
		return fmt.Errorf("create table %s.%s: %w", dataset, table, err)
	}
	return nil
}

// recreateTable drops the table if it exists and creates it empty with md.
func recreateTable(ctx context.Context, bq *bigquery.Client, dataset, table string, md *bigquery.TableMetadata) error {
	if err := dropTable(ctx, bq, dataset, table); err != nil {
		return err
	}
	if err := bq.Dataset(dataset).Table(table).Create(ctx, md); err != nil {
		return fmt.Errorf("create table %s.%s: %w", dataset, table, err)
	}
	return nil
}

// dropTable deletes a table; a missing table is not an error.
func dropTable(ctx context.Context, bq *bigquery.Client, dataset, table string) error {
	if err := bq.Dataset(dataset).Table(table).Delete(ctx); err != nil && !isNotFound(err) {
		return fmt.Errorf("drop table %s.%s: %w", dataset, table, err)
	}
	return nil
}

func isConflict(err error) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusConflict
}
