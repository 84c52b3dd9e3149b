package audit

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/schema"
	"github.com/labplatform/platform/contracts/summary"
	"github.com/labplatform/platform/testenv"
)

// The world: a handful of raw objects as a robot and ingest would leave
// them, and everything process and bq_load would have made of them, built
// by hand so that every invariant holds.

// t0 is when the world's files were processed.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

const header = "sample_id,patient_id,loinc,test_name,value,unit,ref_low,ref_high,collected_at,analyzed_at,status,instrument_fw"

// result is one kept line of a raw object.
type result struct {
	line                                      int64
	sample, patient, test, unit, flag, status string
	value                                     float64
	collected                                 time.Time
}

// rawSpec is one raw object and its fate, line by line.
type rawSpec struct {
	name        string
	data        string
	valid       []result
	quarantined []int64 // lines failing a rule
	superseded  []int64
}

func at(day, hour, minute int) time.Time {
	return time.Date(2026, 3, day, hour, minute, 0, 0, time.UTC)
}

func csvLine(r result) string {
	return fmt.Sprintf("%s,%s,%s,test,%g,%s,1,5,%s,%s,%s,1.0", r.sample, r.patient, r.test, r.value, r.unit,
		r.collected.Format(time.RFC3339), r.collected.Add(time.Hour).Format(time.RFC3339), r.status)
}

// specs returns the world's raw objects: an export over two days with a
// superseded line, a broken line, an empty line and a last line without
// "\n"; a second robot re-sending one result (a duplicate bq_load drops); a
// database chunk; a file with an unknown header; a header-only CRLF file.
func specs() []*rawSpec {
	s1 := result{line: 2, sample: "S1", patient: "P1", test: "2345-7", unit: "mmol/L", flag: "N", status: "final", value: 5.1, collected: at(1, 23, 30)}
	s2old := result{line: 3, sample: "S2", patient: "P1", test: "2345-7", unit: "mmol/L", flag: "H", status: "final", value: 7.9, collected: at(2, 7, 0)}
	s2 := s2old
	s2.line, s2.status, s2.value = 4, "corrected", 8.1
	s3 := result{line: 6, sample: "S3", patient: "P2", test: "2160-0", unit: "mg/dL", flag: "N", status: "final", value: 0.9, collected: at(2, 7, 10)}
	s4 := result{line: 8, sample: "S4", patient: "P2", test: "2345-7", unit: "mmol/L", flag: "L", status: "final", value: 3.2, collected: at(2, 7, 20)}
	a := &rawSpec{
		name: "robot=R001/date=2026-03-02/R001_20260302T080000.csv",
		data: strings.Join([]string{header, csvLine(s1), csvLine(s2old), csvLine(s2), "broken;line", csvLine(s3), "", csvLine(s4)}, "\n"),
		// no "\n" after the last line
		valid: []result{s1, s2, s3, s4}, quarantined: []int64{5, 7}, superseded: []int64{3},
	}

	s3again := s3
	s3again.line = 2
	s5 := result{line: 3, sample: "S5", patient: "P3", test: "2345-7", unit: "mmol/L", flag: "H", status: "final", value: 6.0, collected: at(2, 8, 0)}
	b := &rawSpec{
		name:  "robot=R002/date=2026-03-02/R002_20260302T090000.csv",
		data:  strings.Join([]string{header, csvLine(s3again), csvLine(s5)}, "\n") + "\n",
		valid: []result{s3again, s5},
	}

	s6 := result{line: 2, sample: "S6", patient: "P3", test: "2160-0", unit: "mg/dL", flag: "H", status: "final", value: 1.3, collected: at(2, 8, 30)}
	s7 := result{line: 3, sample: "S7", patient: "P1", test: "2345-7", unit: "mmol/L", flag: "N", status: "final", value: 5.5, collected: at(2, 9, 0)}
	chunk, err := names.ChunkObject{Robot: "R003", Date: civil.Date{Year: 2026, Month: 3, Day: 2}, File: "results.db.csv", Series: "g1-ab", Start: 4096, End: 4300}.Name()
	if err != nil {
		panic(err) // a constant name
	}
	c := &rawSpec{
		name:  chunk,
		data:  strings.Join([]string{header, csvLine(s6), csvLine(s7)}, "\n") + "\n",
		valid: []result{s6, s7},
	}

	d := &rawSpec{
		name:        "robot=R001/date=2026-03-02/R001_20260302T100000.csv",
		data:        "foo,bar\n1,2\n3,4\n",
		quarantined: []int64{2, 3},
	}
	e := &rawSpec{
		name: "robot=R002/date=2026-03-02/R002_20260302T100000.csv",
		data: header + "\r\n",
	}
	return []*rawSpec{a, b, c, d, e}
}

// world is a platform holding the specs' objects, lineage, day loads,
// lab.results and summaries.
type world struct {
	t          *testing.T
	ctx        context.Context
	prefix     string
	c          *testenv.Clients
	specs      []*rawSpec
	gens       map[string]int64 // raw name -> generation
	bqRows     []schema.BigQueryRow
	curated    map[string][]result // curated object -> rows
	quarantine map[string][]qRow   // quarantine object -> rows
	patients   map[string]*summary.Patient
}

func newWorld(t *testing.T) *world {
	t.Helper()
	p := env.NewTestPlatform(t)
	w := &world{t: t, ctx: t.Context(), prefix: p.Prefix, c: testenv.NewTestClients(t, p), specs: specs(),
		gens: map[string]int64{}, curated: map[string][]result{}, quarantine: map[string][]qRow{}}
	for i, s := range w.specs {
		w.gens[s.name] = w.upload(names.RawBucket(w.prefix), s.name, []byte(s.data))
		w.process(s, t0.Add(time.Duration(i)*time.Minute))
	}
	w.load()
	w.fold()
	return w
}

func (w *world) upload(bucket, name string, data []byte) int64 {
	w.t.Helper()
	return w.uploadMeta(bucket, name, data, nil)
}

func (w *world) uploadMeta(bucket, name string, data []byte, meta map[string]string) int64 {
	w.t.Helper()
	o := w.c.Storage.Bucket(bucket).Object(name).NewWriter(w.ctx)
	o.Metadata = meta
	if _, err := o.Write(data); err != nil {
		w.t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		w.t.Fatalf("upload gs://%s/%s: %v", bucket, name, err)
	}
	return o.Attrs().Generation
}

// process writes what the process worker writes for s: curated Parquet per
// day, the quarantine CSV and a done lineage document.
func (w *world) process(s *rawSpec, finished time.Time) {
	w.t.Helper()
	gen := w.gens[s.name]
	id, err := names.RawID(s.name, gen)
	if err != nil {
		w.t.Fatal(err)
	}
	ing := lineage.Ingestion{
		RawID: id, Bucket: names.RawBucket(w.prefix), Object: s.name, Generation: gen, Robot: s.name[6:10],
		SchemaVersion: "v3", Status: lineage.StatusDone, Attempt: 1, Worker: "audit-test",
		RowsIn:    int64(len(s.valid) + len(s.quarantined) + len(s.superseded)),
		RowsValid: int64(len(s.valid)), RowsQuarantined: int64(len(s.quarantined)), RowsSuperseded: int64(len(s.superseded)),
		Reasons: map[string]int64{}, Outputs: []lineage.Output{}, Days: []string{},
		StartedAt: finished.Add(-time.Second), FinishedAt: finished,
	}
	byDay := map[civil.Date][]result{}
	var days []civil.Date
	for _, r := range s.valid {
		d := civil.DateOf(r.collected)
		if byDay[d] == nil {
			days = append(days, d)
		}
		byDay[d] = append(byDay[d], r)
	}
	for _, d := range days {
		obj, err := names.CuratedObject(s.name, gen, d)
		if err != nil {
			w.t.Fatal(err)
		}
		w.writeCurated(obj, s.name, gen, byDay[d])
		ing.Outputs = append(ing.Outputs, lineage.Output{Bucket: names.CuratedBucket(w.prefix), Object: obj, Day: d.String(), Rows: int64(len(byDay[d]))})
		ing.Days = append(ing.Days, d.String())
	}
	if n := len(s.quarantined) + len(s.superseded); n > 0 {
		var q []qRow
		for _, ln := range s.quarantined {
			q = append(q, qRow{ln, "bad_value"})
		}
		for _, ln := range s.superseded {
			q = append(q, qRow{ln, reasonSuperseded})
		}
		obj, err := names.QuarantineObject(s.name, gen)
		if err != nil {
			w.t.Fatal(err)
		}
		w.writeQuarantine(obj, q)
		ing.Quarantine = &lineage.Output{Bucket: names.QuarantineBucket(w.prefix), Object: obj, Rows: int64(n)}
	}
	w.setLineage(ing)
}

func (w *world) setLineage(ing lineage.Ingestion) {
	w.t.Helper()
	if _, err := w.c.Firestore.Collection(names.CollectionIngestions).Doc(ing.RawID).Set(w.ctx, ing); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) lineage(raw string) lineage.Ingestion {
	w.t.Helper()
	id, err := names.RawID(raw, w.gens[raw])
	if err != nil {
		w.t.Fatal(err)
	}
	snap, err := w.c.Firestore.Collection(names.CollectionIngestions).Doc(id).Get(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	var ing lineage.Ingestion
	if err := snap.DataTo(&ing); err != nil {
		w.t.Fatal(err)
	}
	return ing
}

// writeCurated writes rows as a curated Parquet file with the contracts
// schema, as process's parquetout lays it out.
func (w *world) writeCurated(obj, raw string, gen int64, rows []result) {
	w.t.Helper()
	w.curated[obj] = rows
	sc := schema.Arrow()
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for _, r := range rows {
		for i, col := range schema.Columns() {
			fb := b.Field(i)
			switch col.Name {
			case schema.SampleID:
				fb.(*array.StringBuilder).Append(r.sample)
			case schema.PatientID:
				fb.(*array.StringBuilder).Append(r.patient)
			case schema.RobotID:
				fb.(*array.StringBuilder).Append(raw[6:10])
			case schema.TestCode:
				fb.(*array.StringBuilder).Append(r.test)
			case schema.TestName:
				fb.(*array.StringBuilder).Append("test " + r.test)
			case schema.Unit, schema.OriginalUnit:
				fb.(*array.StringBuilder).Append(r.unit)
			case schema.Flag:
				fb.(*array.StringBuilder).Append(r.flag)
			case schema.Status:
				fb.(*array.StringBuilder).Append(r.status)
			case schema.SchemaVersion:
				fb.(*array.StringBuilder).Append("v3")
			case schema.SourceObject:
				fb.(*array.StringBuilder).Append(raw)
			case schema.Value, schema.OriginalValue:
				fb.(*array.Float64Builder).Append(r.value)
			case schema.CollectedAt:
				fb.(*array.TimestampBuilder).Append(arrow.Timestamp(r.collected.UnixMicro()))
			case schema.AnalyzedAt:
				fb.(*array.TimestampBuilder).Append(arrow.Timestamp(r.collected.Add(time.Hour).UnixMicro()))
			case schema.IngestedAt:
				fb.(*array.TimestampBuilder).Append(arrow.Timestamp(t0.UnixMicro()))
			case schema.SourceGeneration:
				fb.(*array.Int64Builder).Append(gen)
			case schema.SourceLine:
				fb.(*array.Int64Builder).Append(r.line)
			default:
				if col.Required {
					w.t.Fatalf("test writer does not fill required column %s", col.Name)
				}
				fb.AppendNull()
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	pw, err := pqarrow.NewFileWriter(sc, &buf, parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd)), pqarrow.DefaultWriterProps())
	if err != nil {
		w.t.Fatal(err)
	}
	if err := pw.Write(rec); err != nil {
		w.t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		w.t.Fatal(err)
	}
	w.upload(names.CuratedBucket(w.prefix), obj, buf.Bytes())
}

type qRow struct {
	line   int64
	reason string
}

// writeQuarantine writes process's quarantine CSV.
func (w *world) writeQuarantine(obj string, rows []qRow) {
	w.t.Helper()
	w.quarantine[obj] = rows
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	recs := [][]string{{"source_line", "reasons", "detail", "raw", "raw_escaped"}}
	for _, r := range rows {
		recs = append(recs, []string{strconv.FormatInt(r.line, 10), r.reason, "detail, with a comma", "raw \"text\"", "false"})
	}
	if err := cw.WriteAll(recs); err != nil {
		w.t.Fatal(err)
	}
	w.upload(names.QuarantineBucket(w.prefix), obj, buf.Bytes())
}

// load fills lab.results as bq_load leaves it: per (sample, test) the row
// of the first source object (no two of the world's duplicates differ in
// status or analysis time), and records the day loads.
func (w *world) load() {
	w.t.Helper()
	seen := map[resultKey]bool{}
	perDay := map[string]int64{}
	for _, s := range w.specs { // in source object order already
		for _, r := range s.valid {
			k := resultKey{r.sample, r.test}
			if seen[k] {
				continue
			}
			seen[k] = true
			w.bqRows = append(w.bqRows, bqRow(s.name, w.gens[s.name], r))
			perDay[civil.DateOf(r.collected).String()]++
		}
	}
	w.insert(w.bqRows...)
	for day, n := range perDay {
		w.setDayLoad(lineage.DayLoad{Day: day, StagingStartedAt: t0.Add(time.Hour), LoadedAt: t0.Add(time.Hour + time.Minute), DAGID: "bq_load", RunID: "test", Rows: n})
	}
}

func bqRow(raw string, gen int64, r result) schema.BigQueryRow {
	return schema.BigQueryRow{
		SampleID: r.sample, PatientID: r.patient, RobotID: raw[6:10], TestCode: r.test, TestName: "test " + r.test,
		Value: r.value, Unit: r.unit, OriginalValue: r.value, OriginalUnit: r.unit, Flag: r.flag, Status: r.status,
		CollectedAt: r.collected, AnalyzedAt: bigquery.NullTimestamp{Timestamp: r.collected.Add(time.Hour), Valid: true},
		SchemaVersion: "v3", SourceObject: raw, SourceGeneration: gen, SourceLine: r.line, IngestedAt: t0,
	}
}

func (w *world) insert(rows ...schema.BigQueryRow) {
	w.t.Helper()
	if err := w.c.BigQuery.Dataset(names.Dataset).Table(names.ResultsTable).Inserter().Put(w.ctx, rows); err != nil {
		w.t.Fatalf("insert into lab.results: %v", err)
	}
}

func (w *world) setDayLoad(l lineage.DayLoad) {
	w.t.Helper()
	if _, err := w.c.Firestore.Collection(names.CollectionDayLoads).Doc(l.Day).Set(w.ctx, l); err != nil {
		w.t.Fatal(err)
	}
}

// fold writes the patient summaries as process folds them: one-value
// summaries merged with summary.Merge, and the ledger, in its root
// document.
func (w *world) fold() {
	w.t.Helper()
	docs := map[string]*summary.Patient{}
	ledgers := map[string]summary.Ledger{}
	for _, r := range w.bqRows {
		p := docs[r.PatientID]
		if p == nil {
			p = &summary.Patient{PatientID: r.PatientID, Tests: map[string]*summary.TestSummary{}, UpdatedAt: t0}
			docs[r.PatientID] = p
			ledgers[r.PatientID] = summary.Ledger{}
		}
		res := summary.Result{SampleID: r.SampleID, Value: r.Value, Flag: r.Flag, Status: r.Status, CollectedAt: r.CollectedAt}
		one := summary.TestSummary{Unit: r.Unit, Count: 1, Mean: r.Value, Min: r.Value, Max: r.Value, Last: res, Recent: []summary.Result{res}}
		if summary.Abnormal(r.Flag) {
			one.Abnormal = 1
		}
		s := summary.TestSummary{}
		if old := p.Tests[r.TestCode]; old != nil {
			s = *old
		}
		s = summary.Merge(s, one)
		p.Tests[r.TestCode] = &s
		ledgers[r.PatientID].Put(r.TestCode, r.SampleID, summary.Counted{Value: r.Value, Flag: r.Flag, Status: r.Status, AnalyzedAt: r.AnalyzedAt.Timestamp, CollectedAt: r.CollectedAt})
	}
	w.patients = docs
	for id, p := range docs {
		w.setPatient(id, p)
		root := w.c.Firestore.Collection(names.CollectionPatients).Doc(id).Collection(summary.CollectionLedger).Doc(summary.LedgerDocID(""))
		if _, err := root.Set(w.ctx, summary.LedgerDoc{Counted: ledgers[id]}); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *world) setPatient(id string, p *summary.Patient) {
	w.t.Helper()
	if _, err := w.c.Firestore.Collection(names.CollectionPatients).Doc(id).Set(w.ctx, p); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) patient(id string) *summary.Patient {
	w.t.Helper()
	snap, err := w.c.Firestore.Collection(names.CollectionPatients).Doc(id).Get(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	var p summary.Patient
	if err := snap.DataTo(&p); err != nil {
		w.t.Fatal(err)
	}
	return &p
}

// changePatient changes a patient's summary and returns what restores it.
func (w *world) changePatient(id string, change func(*summary.Patient)) func() {
	w.t.Helper()
	bad := w.patient(id)
	change(bad)
	w.setPatient(id, bad)
	return func() { w.setPatient(id, w.patient0(id)) }
}

// patient0 is a patient's summary as fold wrote it.
func (w *world) patient0(id string) *summary.Patient {
	w.t.Helper()
	p, ok := w.patients[id]
	if !ok {
		w.t.Fatalf("world has no patient %s", id)
	}
	return p
}

func (w *world) dayLoad(day string) lineage.DayLoad {
	w.t.Helper()
	snap, err := w.c.Firestore.Collection(names.CollectionDayLoads).Doc(day).Get(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	var l lineage.DayLoad
	if err := snap.DataTo(&l); err != nil {
		w.t.Fatal(err)
	}
	return l
}

// deleteResult deletes the rows of r's sample and test from lab.results.
func (w *world) deleteResult(r schema.BigQueryRow) {
	w.t.Helper()
	w.query("DELETE FROM `"+names.Dataset+"."+names.ResultsTable+"` WHERE sample_id = @s AND test_code = @t",
		bigquery.QueryParameter{Name: "s", Value: r.SampleID}, bigquery.QueryParameter{Name: "t", Value: r.TestCode})
}

func (w *world) query(sql string, params ...bigquery.QueryParameter) {
	w.t.Helper()
	q := w.c.BigQuery.Query(sql)
	q.Parameters = params
	job, err := q.Run(w.ctx)
	if err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
	st, err := job.Wait(w.ctx)
	if err == nil {
		err = st.Err()
	}
	if err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
}

func (w *world) check() *Report {
	w.t.Helper()
	rep, err := Check(w.ctx, Clients{Storage: w.c.Storage, BigQuery: w.c.BigQuery, Firestore: w.c.Firestore}, w.prefix, Options{})
	if err != nil {
		w.t.Fatalf("Check: %v", err)
	}
	return rep
}

// curatedOf returns the curated object of raw holding day's rows.
func (w *world) curatedOf(raw string, day int) string {
	w.t.Helper()
	obj, err := names.CuratedObject(raw, w.gens[raw], civil.Date{Year: 2026, Month: 3, Day: day})
	if err != nil {
		w.t.Fatal(err)
	}
	if _, ok := w.curated[obj]; !ok {
		w.t.Fatalf("world has no curated object %s", obj)
	}
	return obj
}

func sortedKinds(kinds ...string) []string {
	slices.Sort(kinds)
	return kinds
}
