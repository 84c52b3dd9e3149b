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
	}
	return nil
}

// dayBuilder builds the curated batches of one day, column by column in
// Arrow's layout.
type dayBuilder struct {
	n int

	sampleID, patientID, robotID, testCode, testName, unit, origUnit, flag, status, fw, version, object strCol
	value, orig, refLow, refHigh                                                                        fixedCol[float64]
	collected, analyzed, ingested                                                                       fixedCol[arrow.Timestamp]
	generation, line                                                                                    fixedCol[int64]
}

func newDayBuilder(*cleaner) *dayBuilder {
	b := &dayBuilder{}
	b.reset()
	return b
}

func (b *dayBuilder) reset() {
	for _, c := range b.strCols() {
		c.reset()
	}
	for _, c := range []*fixedCol[float64]{&b.value, &b.orig, &b.refLow, &b.refHigh} {
		c.reset()
	}
	for _, c := range []*fixedCol[arrow.Timestamp]{&b.collected, &b.analyzed, &b.ingested} {
		c.reset()
	}
	b.generation.reset()
	b.line.reset()
	b.n = 0
}

func (b *dayBuilder) strCols() []*strCol {
	return []*strCol{&b.sampleID, &b.patientID, &b.robotID, &b.testCode, &b.testName, &b.unit, &b.origUnit, &b.flag, &b.status, &b.fw, &b.version, &b.object}
}

func (b *dayBuilder) append(e *emitter, r *rec) {
	c := e.c
	t := &c.cat.tests[r.test]
	b.sampleID.appendString(r.sample)
	b.patientID.appendString(r.patient)
	b.robotID.appendString(c.src.Robot)
	b.testCode.appendString(t.Code)
	b.testName.appendString(t.Name)
	b.value.append(r.value)
	b.unit.appendString(t.Unit)
	b.orig.append(r.orig)
	b.origUnit.appendString(r.unit)
	if r.hasRef&1 != 0 {
		b.refLow.append(r.refLow)
	} else {
		b.refLow.appendNull()
	}
	if r.hasRef&2 != 0 {
		b.refHigh.append(r.refHigh)
	} else {
		b.refHigh.appendNull()
	}
	b.flag.appendString(string(flagNames[r.flag]))
	b.status.appendString(statusNames[r.status])
	b.collected.append(arrow.Timestamp(r.collected))
	if r.analyzed != noTime {
		b.analyzed.append(arrow.Timestamp(r.analyzed))
	} else {
		b.analyzed.appendNull()
	}
	if r.fw != "" {
		b.fw.appendString(r.fw)
	} else {
		b.fw.appendNull()
	}
	b.version.appendString(c.layout.Version.Name)
	b.object.appendString(c.src.Object)
	b.generation.append(c.src.Generation)
	b.line.append(r.line)
	b.ingested.append(arrow.Timestamp(e.ingested))
	b.n++
}

func (b *dayBuilder) record() arrow.RecordBatch {
	sc := schema.Arrow()
	cols := make([]arrow.Array, sc.NumFields())
	set := func(name string, a arrow.Array) { cols[schema.Index(name)] = a }
	set(schema.SampleID, b.sampleID.array())
	set(schema.PatientID, b.patientID.array())
	set(schema.RobotID, b.robotID.array())
	set(schema.TestCode, b.testCode.array())
	set(schema.TestName, b.testName.array())
	set(schema.Value, b.value.array(arrow.PrimitiveTypes.Float64))
	set(schema.Unit, b.unit.array())
	set(schema.OriginalValue, b.orig.array(arrow.PrimitiveTypes.Float64))
	set(schema.OriginalUnit, b.origUnit.array())
	set(schema.RefLow, b.refLow.array(arrow.PrimitiveTypes.Float64))
	set(schema.RefHigh, b.refHigh.array(arrow.PrimitiveTypes.Float64))
	set(schema.Flag, b.flag.array())
	set(schema.Status, b.status.array())
	ts := sc.Field(schema.Index(schema.CollectedAt)).Type
	set(schema.CollectedAt, b.collected.array(ts))
	set(schema.AnalyzedAt, b.analyzed.array(ts))
	set(schema.InstrumentFW, b.fw.array())
	set(schema.SchemaVersion, b.version.array())
	set(schema.SourceObject, b.object.array())
	set(schema.SourceGeneration, b.generation.array(arrow.PrimitiveTypes.Int64))
	set(schema.SourceLine, b.line.array(arrow.PrimitiveTypes.Int64))
	set(schema.IngestedAt, b.ingested.array(ts))
	rec := array.NewRecordBatch(sc, cols, int64(b.n))
	for _, a := range cols {
		a.Release()
	}
	return rec
}

func (b *dayBuilder) flush(sink Sink, d civil.Date) error {
	if b.n == 0 {
		return nil
	}
	rec := b.record()
	defer b.reset()
	defer rec.Release()
	if err := sink.Curated(d, rec); err != nil {
		return fmt.Errorf("curated rows of %s: %w", d, err)
	}
	return nil
}
