package worker

import (
	"context"
	"fmt"

	"cloud.google.com/go/civil"
	"cloud.google.com/go/storage"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/process/internal/clean"
	"github.com/labplatform/platform/process/internal/parquetout"
	"github.com/labplatform/platform/process/internal/quarantine"
)

// resultAdder takes the kept results for the patient summaries.
type resultAdder interface {
	Add(ctx context.Context, r clean.Result) error
}

// gcsSink streams one raw object's outputs to Cloud Storage: a Parquet
// object per collected_at day in the curated bucket, the quarantine CSV, and
// every kept result to the patient summaries. Objects are created on first
// use and committed by Close; Abort cancels every upload, so a failed
// attempt leaves no partial object behind (a GCS upload is atomic).
type gcsSink struct {
	ctx        context.Context
	cancel     context.CancelFunc
	st         *storage.Client
	prefix     string
	rawName    string
	generation int64
	results    resultAdder

	days    map[civil.Date]*dayObject
	order   []civil.Date
	qObj    *storage.Writer
	qWriter *quarantine.Writer
	qName   string
}

type dayObject struct {
	name string
	obj  *storage.Writer
	pq   *parquetout.Writer
}

func newGCSSink(parent context.Context, st *storage.Client, prefix, rawName string, generation int64, results resultAdder) *gcsSink {
	ctx, cancel := context.WithCancel(parent)
	return &gcsSink{ctx: ctx, cancel: cancel, st: st, prefix: prefix, rawName: rawName, generation: generation, results: results, days: map[civil.Date]*dayObject{}}
}

func (s *gcsSink) writer(bucket, name, contentType string) *storage.Writer {
	w := s.st.Bucket(bucket).Object(name).NewWriter(s.ctx)
	w.ContentType = contentType
	w.ChunkSize = 0 // one streaming request: nothing buffered beyond the encoder
	w.Metadata = map[string]string{"source-object": s.rawName, "source-generation": fmt.Sprint(s.generation)}
	return w
}

func (s *gcsSink) Curated(day civil.Date, rec arrow.RecordBatch) error {
	d := s.days[day]
	if d == nil {
		name, err := names.CuratedObject(s.rawName, s.generation, day)
		if err != nil {
			return err
		}
		obj := s.writer(names.CuratedBucket(s.prefix), name, "application/vnd.apache.parquet")
		pq, err := parquetout.New(obj, parquetout.Options{})
		if err != nil {
			return fmt.Errorf("parquet writer for %s: %w", name, err)
		}
		d = &dayObject{name: name, obj: obj, pq: pq}
		s.days[day] = d
		s.order = append(s.order, day)
	}
	if err := d.pq.Write(rec); err != nil {
		return fmt.Errorf("write %s: %w", d.name, err)
	}
	return nil
}

func (s *gcsSink) Quarantine(q *clean.Quarantined) error {
	if s.qWriter == nil {
		name, err := names.QuarantineObject(s.rawName, s.generation)
		if err != nil {
			return err
		}
		s.qName = name
		s.qObj = s.writer(names.QuarantineBucket(s.prefix), name, "text/csv")
		if s.qWriter, err = quarantine.NewWriter(s.qObj); err != nil {
			return err
		}
	}
	return s.qWriter.Write(q)
}

func (s *gcsSink) Result(r *clean.Result) error {
	return s.results.Add(s.ctx, *r)
}

// Close finishes and commits every object and returns them.
func (s *gcsSink) Close() (curated []lineage.Output, q *lineage.Output, err error) {
	defer s.cancel()
	for _, day := range s.order {
		d := s.days[day]
		if err := d.pq.Close(); err != nil {
			return nil, nil, fmt.Errorf("finish %s: %w", d.name, err)
		}
		if err := d.obj.Close(); err != nil {
			return nil, nil, fmt.Errorf("upload %s: %w", d.name, err)
		}
		curated = append(curated, lineage.Output{Bucket: names.CuratedBucket(s.prefix), Object: d.name, Day: day.String(), Rows: d.pq.Rows()})
	}
	if s.qWriter != nil {
		if err := s.qWriter.Flush(); err != nil {
			return nil, nil, err
		}
		if err := s.qObj.Close(); err != nil {
			return nil, nil, fmt.Errorf("upload %s: %w", s.qName, err)
		}
		q = &lineage.Output{Bucket: names.QuarantineBucket(s.prefix), Object: s.qName, Rows: s.qWriter.Rows()}
	}
	return curated, q, nil
}

// Abort cancels every upload in progress; nothing is committed.
func (s *gcsSink) Abort() {
	s.cancel()
	// The uploads were cancelled on purpose: their Close errors only say so.
	for _, d := range s.days {
		_ = d.obj.Close()
	}
	if s.qObj != nil {
		_ = s.qObj.Close()
	}
}
