package clean

import (
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/civil"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/labplatform/platform/contracts/schema"
)

// emitter turns merged rows into curated Arrow batches per day, drops the
// duplicates of a (patient, test, sample) as superseded, and hands each kept
// row to the sink's Result.
type emitter struct {
	c    *cleaner
	days map[civil.Date]*dayBuilder
	// the kept row of the current (patient, test, sample)
	prevPatient, prevSample []byte
	prevTest, prevStatus    uint8
	prevLine                int64
	hasPrev                 bool
	patient                 string // last patient id handed to Result, reused
	ingested                int64
	superseded              []string
	res                     Result
}

func newEmitter(c *cleaner) *emitter {
	return &emitter{c: c, days: map[civil.Date]*dayBuilder{}, ingested: c.nowUS, superseded: []string{ReasonSuperseded}}
}

func (e *emitter) add(r *rec) error {
	if e.hasPrev && r.test == e.prevTest && r.patient == unsafeString(e.prevPatient) && r.sample == unsafeString(e.prevSample) {
		c := e.c
		c.report.RowsValid--
		c.report.RowsSuperseded++
		c.report.Reasons[ReasonSuperseded]++
		c.q = Quarantined{
			Line:    r.line,
			Reasons: e.superseded,
			Detail:  fmt.Sprintf("%s %s of sample %s superseded by line %d (%s)", statusNames[r.status], c.cat.tests[r.test].Code, r.sample, e.prevLine, statusNames[e.prevStatus]),
		}
		if err := c.sink.Quarantine(&c.q); err != nil {
			return fmt.Errorf("quarantine superseded line %d: %w", r.line, err)
		}
		return nil
	}
	e.prevPatient = append(e.prevPatient[:0], r.patient...)
	e.prevSample = append(e.prevSample[:0], r.sample...)
	e.prevTest, e.prevStatus, e.prevLine, e.hasPrev = r.test, r.status, r.line, true

	d := day(r.collected)
	b := e.days[d]
	if b == nil {
		b = newDayBuilder(e.c)
		e.days[d] = b
		e.c.report.addDay(d)
	}
	b.append(e, r)
	e.c.report.countDay(d)
	if b.n >= e.c.opts.BatchRows {
		if err := b.flush(e.c.sink, d); err != nil {
			return err
		}
	}
	return e.result(r)
}

func (e *emitter) result(r *rec) error {
	if e.patient != r.patient {
		e.patient = strings.Clone(r.patient)
	}
	t := &e.c.cat.tests[r.test]
	e.res = Result{
		PatientID:   e.patient,
		TestCode:    t.Code,
		SampleID:    strings.Clone(r.sample),
		Unit:        t.Unit,
		Flag:        string(flagNames[r.flag]),
		Status:      statusNames[r.status],
		Value:       r.value,
		CollectedAt: time.UnixMicro(r.collected).UTC(),
	}
	if r.analyzed != noTime {
		e.res.AnalyzedAt = time.UnixMicro(r.analyzed).UTC()
	}
	if err := e.c.sink.Result(&e.res); err != nil {
		return fmt.Errorf("result of line %d: %w", r.line, err)
	}
	return nil
}

func (e *emitter) close() error {
	for _, d := range e.c.report.dayOrder() {
		if err := e.days[d].flush(e.c.sink, d); err != nil {
			return err
		}
		e.days[d].b.Release()
	}
	return nil
}

// dayBuilder builds the curated batches of one day.
type dayBuilder struct {
	b *array.RecordBuilder
	n int

	sampleID, patientID, robotID, testCode, testName, unit, origUnit, flag, status, fw, version, object *array.StringBuilder
	value, orig, refLow, refHigh                                                                    *array.Float64Builder
	collected, analyzed, ingested                                                                   *array.TimestampBuilder
	generation, line                                                                                *array.Int64Builder
}

func newDayBuilder(c *cleaner) *dayBuilder {
	b := array.NewRecordBuilder(c.mem, schema.Arrow())
	str := func(name string) *array.StringBuilder { return b.Field(schema.Index(name)).(*array.StringBuilder) }
	f64 := func(name string) *array.Float64Builder { return b.Field(schema.Index(name)).(*array.Float64Builder) }
	ts := func(name string) *array.TimestampBuilder { return b.Field(schema.Index(name)).(*array.TimestampBuilder) }
	i64 := func(name string) *array.Int64Builder { return b.Field(schema.Index(name)).(*array.Int64Builder) }
	return &dayBuilder{
		b:          b,
		sampleID:   str(schema.SampleID),
		patientID:  str(schema.PatientID),
		robotID:    str(schema.RobotID),
		testCode:   str(schema.TestCode),
		testName:   str(schema.TestName),
		unit:       str(schema.Unit),
		origUnit:   str(schema.OriginalUnit),
		flag:       str(schema.Flag),
		status:     str(schema.Status),
		fw:         str(schema.InstrumentFW),
		version:    str(schema.SchemaVersion),
		object:     str(schema.SourceObject),
		value:      f64(schema.Value),
		orig:       f64(schema.OriginalValue),
		refLow:     f64(schema.RefLow),
		refHigh:    f64(schema.RefHigh),
		collected:  ts(schema.CollectedAt),
		analyzed:   ts(schema.AnalyzedAt),
		ingested:   ts(schema.IngestedAt),
		generation: i64(schema.SourceGeneration),
		line:       i64(schema.SourceLine),
	}
}

func (b *dayBuilder) append(e *emitter, r *rec) {
	c := e.c
	t := &c.cat.tests[r.test]
	b.sampleID.Append(r.sample)
	b.patientID.Append(r.patient)
	b.robotID.Append(c.src.Robot)
	b.testCode.Append(t.Code)
	b.testName.Append(t.Name)
	b.value.Append(r.value)
	b.unit.Append(t.Unit)
	b.orig.Append(r.orig)
	b.origUnit.Append(r.unit)
	if r.hasRef&1 != 0 {
		b.refLow.Append(r.refLow)
	} else {
		b.refLow.AppendNull()
	}
	if r.hasRef&2 != 0 {
		b.refHigh.Append(r.refHigh)
	} else {
		b.refHigh.AppendNull()
	}
	b.flag.Append(string(flagNames[r.flag]))
	b.status.Append(statusNames[r.status])
	b.collected.Append(arrow.Timestamp(r.collected))
	if r.analyzed != noTime {
		b.analyzed.Append(arrow.Timestamp(r.analyzed))
	} else {
		b.analyzed.AppendNull()
	}
	if r.fw != "" {
		b.fw.Append(r.fw)
	} else {
		b.fw.AppendNull()
	}
	b.version.Append(c.layout.Version.Name)
	b.object.Append(c.src.Object)
	b.generation.Append(c.src.Generation)
	b.line.Append(r.line)
	b.ingested.Append(arrow.Timestamp(e.ingested))
	b.n++
}

func (b *dayBuilder) flush(sink Sink, d civil.Date) error {
	if b.n == 0 {
		return nil
	}
	rec := b.b.NewRecordBatch()
	defer rec.Release()
	b.n = 0
	if err := sink.Curated(d, rec); err != nil {
		return fmt.Errorf("curated rows of %s: %w", d, err)
	}
	return nil
}
