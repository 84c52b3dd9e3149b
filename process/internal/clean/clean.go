package clean

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"runtime"
	"strings"
	"time"

	"cloud.google.com/go/civil"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/labplatform/platform/contracts/labtests"
	"github.com/labplatform/platform/contracts/robotcsv"
	"github.com/labplatform/platform/process/internal/csvtok"
	"golang.org/x/sync/errgroup"
)

// Source identifies the raw object being cleaned; it fills the lineage
// columns of every row.
type Source struct {
	// Object and Generation name the raw object (source_object,
	// source_generation).
	Object     string
	Generation int64
	// Robot is the robot id of every row (robot_id).
	Robot string
}

// Options tune Clean. The zero value is ready to use.
type Options struct {
	// Now is the clock for ingested_at and the future-timestamp rule;
	// default time.Now.
	Now func() time.Time
	// FutureTolerance is how far in the future a timestamp may lie (robot
	// clocks drift); default 10 minutes.
	FutureTolerance time.Duration
	// BatchRows is the number of rows per Arrow record batch, in and out;
	// default 16384.
	BatchRows int
	// RunBytes bounds the memory of the rows held for sorting; a file with
	// more is sorted in runs spilled to TempDir and merged. Default 48 MiB.
	RunBytes int
	// TempDir holds spilled runs; default os.TempDir().
	TempDir string
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FutureTolerance == 0 {
		o.FutureTolerance = 10 * time.Minute
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 16384
	}
	if o.RunBytes <= 0 {
		o.RunBytes = 48 << 20
	}
	return o
}

// Sink receives what Clean produces. Clean calls it from one goroutine.
type Sink interface {
	// Curated receives the valid rows of one collected_at day (UTC) in
	// output order: patient_id, test_code, sample_id. Batches of different
	// days interleave. rec is released after the call returns.
	Curated(day civil.Date, rec arrow.RecordBatch) error
	// Quarantine receives every rejected line in line order, then every
	// superseded row; q is valid during the call only.
	Quarantine(q *Quarantined) error
	// Result receives every row kept, in output order (so sorted by
	// patient), for the patient summaries.
	Result(r *Result) error
}

// Quarantined is one line that did not become a curated row.
type Quarantined struct {
	Line int64
	// Reasons holds every rule the line broke (reason codes), in rule order.
	Reasons []string
	// Detail explains the first reason, and more when useful.
	Detail string
	// Raw is the line as read (cut for overlong lines; empty for superseded
	// rows, whose text is in the raw object at Line).
	Raw []byte
}

// Result is one kept row, in the shape patient summaries need. Its strings
// are safe to keep.
type Result struct {
	PatientID, TestCode, SampleID, Unit, Flag, Status string
	Value                                             float64
	CollectedAt, AnalyzedAt                           time.Time
}

// ErrInput is the class of errors about the input stream itself (I/O while
// reading); content problems are never errors, they are quarantined.
var ErrInput = errors.New("read input")

// Clean reads one robot CSV export from in, cleans it, and hands curated
// batches, quarantined lines and results to sink. It returns the report,
// whose counts satisfy RowsIn = RowsValid + RowsQuarantined +
// RowsSuperseded. Memory stays bounded by Options.RunBytes plus a few
// batches, whatever the file's size.
func Clean(ctx context.Context, in io.Reader, src Source, sink Sink, opts Options) (*Report, error) {
	opts = opts.withDefaults()
	start := opts.Now()
	c := &cleaner{
		opts:    opts,
		src:     src,
		sink:    sink,
		cat:     newCatalogue(),
		report:  newReport(),
		nowUS:   start.UnixMicro(),
		limitUS: start.Add(opts.FutureTolerance).UnixMicro(),
	}
	hasher := sha256.New()
	counter := &countingReader{r: in, h: hasher}
	br := bufio.NewReaderSize(counter, 256<<10)
	err := c.run(ctx, br)
	c.report.Bytes = counter.n
	c.report.SHA256 = hex.EncodeToString(hasher.Sum(nil))
	c.report.Timings.Total = seconds(opts.Now().Sub(start))
	if err != nil {
		return c.report, err
	}
	return c.report, nil
}

type countingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	return n, err
}

type cleaner struct {
	opts   Options
	src    Source
	sink   Sink
	cat    *catalogue
	report *Report

	layout         *robotcsv.Layout
	header         []byte
	nowUS, limitUS int64

	cur     run
	spilled *spillFile
	q       Quarantined
}

func (c *cleaner) run(ctx context.Context, br *bufio.Reader) error {
	parseStart := c.opts.Now()
	header, err := peekLine(br)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInput, err)
	}
	if len(header) == 0 {
		if _, err := br.Peek(1); errors.Is(err, io.EOF) {
			c.report.Empty = true
			return nil // zero bytes: nothing to clean, nothing lost
		}
	}
	layout, detectErr := robotcsv.Detect(string(header))
	delim := byte(',')
	if layout != nil {
		delim = layout.Version.Delimiter
		c.report.SchemaVersion = layout.Version.Name
	} else if bytes.Count(header, []byte{';'}) > bytes.Count(header, []byte{','}) {
		delim = ';'
	}
	tok := csvtok.New(br, csvtok.Options{Delimiter: delim})
	first, ok := tok.Next()
	if !ok {
		if err := tok.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrInput, err)
		}
		return nil
	}
	c.header = bytes.Clone(first.Raw)
	if detectErr != nil {
		c.report.HeaderError = detectErr.Error()
		return c.quarantineAll(ctx, tok, detectErr.Error())
	}
	c.layout = layout
	if err := c.pipeline(ctx, tok); err != nil {
		return err
	}
	c.report.Timings.Parse = seconds(c.opts.Now().Sub(parseStart))
	return c.finish(ctx)
}

// peekLine returns the first line without consuming it (up to 64 KiB).
func peekLine(br *bufio.Reader) ([]byte, error) {
	b, err := br.Peek(64 << 10)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return b, nil
}

// quarantineAll rejects every line after the header of a file whose header
// no version matches.
func (c *cleaner) quarantineAll(ctx context.Context, tok *csvtok.Reader, detail string) error {
	for n := 0; ; n++ {
		r, ok := tok.Next()
		if !ok {
			break
		}
		if n&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		c.report.RowsIn++
		if err := c.quarantine(r.Line, r.Raw, detail, ReasonUnknownHeader); err != nil {
			return err
		}
	}
	if err := tok.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrInput, err)
	}
	return nil
}

func (c *cleaner) quarantine(line int64, raw []byte, detail string, reasons ...string) error {
	c.report.RowsQuarantined++
	for _, r := range reasons {
		c.report.Reasons[r]++
	}
	c.q = Quarantined{Line: line, Reasons: reasons, Detail: detail, Raw: raw}
	if err := c.sink.Quarantine(&c.q); err != nil {
		return fmt.Errorf("quarantine line %d: %w", line, err)
	}
	return nil
}

var problemReasons = map[csvtok.Problem]string{
	csvtok.ProblemTooLong:           ReasonLineTooLong,
	csvtok.ProblemInvalidUTF8:       ReasonInvalidUTF8,
	csvtok.ProblemUnterminatedQuote: ReasonMalformedQuotes,
	csvtok.ProblemBadQuote:          ReasonMalformedQuotes,
}

// pipeline reads a file in three stages: one goroutine splits lines into
// raw batches (tokenizing, line-level rejects); GOMAXPROCS checkers apply
// the cleaning rules to batches in parallel; the caller's goroutine takes
// the checked batches in file order, quarantines in line order and adds the
// kept rows to the sort run. Batches rotate through a free list, so memory
// stays at a few batches whatever the file.
func (c *cleaner) pipeline(ctx context.Context, tok *csvtok.Reader) error {
	workers := max(1, min(runtime.GOMAXPROCS(0), 4))
	batches := workers + 2
	type job struct {
		b    *rawBatch
		done chan *checked
	}
	work := make(chan job, batches)
	order := make(chan job, batches)
	free := make(chan *rawBatch, batches)
	for range batches {
		free <- newRawBatch(c.layout)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { // split lines
		defer close(work)
		defer close(order)
		send := func(b *rawBatch) error {
			j := job{b: b, done: make(chan *checked, 1)}
			select {
			case order <- j:
			case <-gctx.Done():
				return gctx.Err()
			}
			select {
			case work <- j:
			case <-gctx.Done():
				return gctx.Err()
			}
			return nil
		}
		b := <-free
		for n := 0; ; n++ {
			r, ok := tok.Next()
			if !ok {
				break
			}
			if n&4095 == 0 && gctx.Err() != nil {
				return gctx.Err()
			}
			c.line(b, r)
			if b.len() >= c.opts.BatchRows {
				if err := send(b); err != nil {
					return err
				}
				select {
				case b = <-free:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
		}
		if err := tok.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrInput, err)
		}
		return send(b)
	})
	for range workers { // check
		k := c.newChecker()
		g.Go(func() error {
			for j := range work {
				j.done <- k.check(j.b)
			}
			return nil
		})
	}
	g.Go(func() error { // consume in file order
		for j := range order {
			var ck *checked
			select {
			case ck = <-j.done:
			case <-gctx.Done():
				return gctx.Err()
			}
			if err := c.consume(ck); err != nil {
				return err
			}
			ck.release()
			j.b.reset()
			free <- j.b
		}
		return nil
	})
	return g.Wait()
}

// line takes one data line into b: a line broken as a line is recorded as
// a reject, the rest is queued for the field-level rules.
func (c *cleaner) line(b *rawBatch, r *csvtok.Record) {
	b.rowsIn++
	if r.Problem != csvtok.ProblemNone {
		reason, ok := problemReasons[r.Problem]
		if !ok {
			reason = ReasonMalformedQuotes
		}
		b.reject(r, reason, r.Problem.String())
		return
	}
	if len(r.Raw) == 0 || len(bytes.TrimSpace(r.Raw)) == 0 {
		b.reject(r, ReasonEmptyLine, "empty line")
		return
	}
	if bytes.Equal(bytes.TrimSpace(r.Raw), bytes.TrimSpace(c.header)) {
		b.reject(r, ReasonDuplicateHeader, "the header line again")
		return
	}
	if len(r.Fields) != c.layout.Width {
		detail := fmt.Sprintf("%d fields, want %d", len(r.Fields), c.layout.Width)
		if r.NoNewline && len(r.Fields) < c.layout.Width {
			b.reject(r, ReasonTruncatedLine, detail+" in the last line, which has no line end")
			return
		}
		b.reject(r, ReasonWrongColumnCount, detail)
		return
	}
	b.append(r)
}

// rawBatch collects the file's fields as text, column by column, for an
// Arrow record batch that the cleaning rules read.
type rawBatch struct {
	pos    []int // column of each robotcsv.Field, -1 when absent
	fields []*strCol
	lines  fixedCol[int64]
	raws   strCol
	n      int
	// rejects are the lines rejected before their fields were read, in
	// line order, with their text in rejectRaw.
	rejects   []reject
	rejectRaw []byte
	rowsIn    int64
}

type reject struct {
	line           int64
	rawOff, rawEnd int
	reason, detail string
}

func (b *rawBatch) reject(r *csvtok.Record, reason, detail string) {
	off := len(b.rejectRaw)
	b.rejectRaw = append(b.rejectRaw, r.Raw...)
	b.rejects = append(b.rejects, reject{line: r.Line, rawOff: off, rawEnd: len(b.rejectRaw), reason: reason, detail: detail})
}

const numFields = int(robotcsv.InstrumentFW) + 1

func newRawBatch(l *robotcsv.Layout) *rawBatch {
	b := &rawBatch{pos: make([]int, numFields), fields: make([]*strCol, numFields)}
	for f := range numFields {
		b.pos[f] = l.Pos(robotcsv.Field(f))
		if b.pos[f] >= 0 {
			b.fields[f] = &strCol{}
		}
	}
	b.reset()
	return b
}

func (b *rawBatch) reset() {
	for _, f := range b.fields {
		if f != nil {
			f.reset()
		}
	}
	b.lines.reset()
	b.raws.reset()
	b.n = 0
	b.rejects, b.rejectRaw, b.rowsIn = b.rejects[:0], b.rejectRaw[:0], 0
}

func (b *rawBatch) append(r *csvtok.Record) {
	for f, p := range b.pos {
		if p >= 0 {
			b.fields[f].appendBytes(r.Fields[p])
		}
	}
	b.lines.append(r.Line)
	b.raws.appendBytes(r.Raw)
	b.n++
}

// len counts the lines taken, rejects included.
func (b *rawBatch) len() int { return b.n + len(b.rejects) }

// rawArrays is a finished raw batch: Arrow arrays over the batch's buffers,
// valid until the batch is reset.
type rawArrays struct {
	fields []*array.String
	lines  *array.Int64
	raws   *array.String
	n      int
}

func (b *rawBatch) finish() *rawArrays {
	a := &rawArrays{
		fields: make([]*array.String, numFields),
		lines:  b.lines.array(arrow.PrimitiveTypes.Int64).(*array.Int64),
		raws:   b.raws.array().(*array.String),
		n:      b.n,
	}
	for f, fb := range b.fields {
		if fb != nil {
			a.fields[f] = fb.array().(*array.String)
		}
	}
	return a
}

func (a *rawArrays) release() {
	for _, f := range a.fields {
		if f != nil {
			f.Release()
		}
	}
	a.lines.Release()
	a.raws.Release()
}

// trim drops surrounding white space, quickly when there is none.
func trim(s string) string {
	if len(s) == 0 || s[0] > ' ' && s[len(s)-1] > ' ' {
		return s
	}
	return strings.TrimSpace(s)
}

// checker applies the cleaning rules. Each goroutine has its own: the
// caches (units, timestamps) and scratch space are not shared.
type checker struct {
	cat      *catalogue
	times    [2]timeParser
	scratch  []byte
	layout   *robotcsv.Layout
	required []robotcsv.Field // requiredFields the version has
	limitUS  int64            // latest acceptable timestamp
}

func (c *cleaner) newChecker() *checker {
	k := &checker{cat: newCatalogue(), layout: c.layout, limitUS: c.limitUS}
	for _, f := range requiredFields {
		if c.layout.Version.Has(f) {
			k.required = append(k.required, f)
		}
	}
	for i := range k.times {
		k.times[i] = timeParser{v: c.layout.Version}
	}
	return k
}

// checked is a batch after the rules: its kept rows (strings in strs) and
// its failures, both in line order.
type checked struct {
	b     *rawBatch
	a     *rawArrays
	rows  []row
	strs  []byte
	fails []failure
}

type failure struct {
	i       int // row of the batch
	reasons []string
	detail  string
}

func (ck *checked) release() { ck.a.release() }

// check applies every rule to every row of b.
func (k *checker) check(b *rawBatch) *checked {
	a := b.finish()
	ck := &checked{b: b, a: a, rows: make([]row, 0, a.n)}
	v := k.layout.Version
	for i := 0; i < a.n; i++ {
		var ch check
		rw, patient, sample, fw, unit := k.checkRow(a, i, v, &ch)
		if len(ch.reasons) > 0 {
			ck.fails = append(ck.fails, failure{i: i, reasons: ch.reasons, detail: ch.detail()})
			continue
		}
		rw.off = uint32(len(ck.strs))
		rw.pLen, rw.sLen, rw.fwLen, rw.uLen = uint16(len(patient)), uint16(len(sample)), uint16(len(fw)), uint8(len(unit))
		ck.strs = append(append(append(append(ck.strs, patient...), sample...), fw...), unit...)
		ck.rows = append(ck.rows, rw)
	}
	return ck
}

// consume takes a checked batch in file order: its failures and the line
// rejects go to quarantine in line order, its rows into the sort run.
func (c *cleaner) consume(ck *checked) error {
	b, a := ck.b, ck.a
	c.report.RowsIn += b.rowsIn
	j := 0 // next line reject
	flushRejects := func(before int64) error {
		for ; j < len(b.rejects) && b.rejects[j].line < before; j++ {
			rj := &b.rejects[j]
			if err := c.quarantine(rj.line, b.rejectRaw[rj.rawOff:rj.rawEnd], rj.detail, rj.reason); err != nil {
				return err
			}
		}
		return nil
	}
	for _, f := range ck.fails {
		line := a.lines.Value(f.i)
		if err := flushRejects(line); err != nil {
			return err
		}
		if err := c.quarantine(line, []byte(a.raws.Value(f.i)), f.detail, f.reasons...); err != nil {
			return err
		}
	}
	if err := flushRejects(math.MaxInt64); err != nil {
		return err
	}
	for i := range ck.rows {
		rw := ck.rows[i]
		patient, sample, fw, unit := rw.strings(ck.strs)
		c.cur.add(rw, patient, sample, fw, unit)
		c.report.RowsValid++ // superseded rows are moved out of valid when found
		if c.cur.bytes() >= c.opts.RunBytes {
			if err := c.spill(); err != nil {
				return err
			}
		}
	}
	return nil
}

// check collects the reasons a row breaks, in rule order.
type check struct {
	reasons []string
	details []string
}

func (ch *check) fail(reason, detail string) {
	ch.reasons = append(ch.reasons, reason)
	ch.details = append(ch.details, detail)
}

func (ch *check) detail() string { return strings.Join(ch.details, "; ") }

var requiredFields = []robotcsv.Field{robotcsv.SampleID, robotcsv.PatientID, robotcsv.Test, robotcsv.Value, robotcsv.Unit, robotcsv.CollectedAt, robotcsv.Status}

func (c *checker) checkRow(a *rawArrays, i int, v robotcsv.Version, ch *check) (rw row, patient, sample, fw, unit string) {
	var fv [numFields]string // the row's fields, trimmed; "" when absent
	for f, col := range a.fields {
		if col != nil {
			fv[f] = trim(col.Value(i))
		}
	}
	for _, f := range c.required {
		if fv[f] == "" {
			ch.fail(ReasonMissingField, "missing "+f.String())
		}
	}
	sample, patient = fv[robotcsv.SampleID], fv[robotcsv.PatientID]
	if sample != "" && !validID(sample) {
		ch.fail(ReasonBadSampleID, fmt.Sprintf("sample id %q is not 3-64 letters, digits, '-' or '_'", cut(sample)))
	}
	if patient != "" && !validID(patient) {
		ch.fail(ReasonBadPatientID, "patient id is not 3-64 letters, digits, '-' or '_'")
	}
	test := -1
	if code := fv[robotcsv.Test]; code != "" {
		if test = c.cat.lookup(v.TestCoding, code); test < 0 {
			ch.fail(ReasonUnknownTest, fmt.Sprintf("test %q is not in the catalogue", cut(code)))
		}
	}
	valueText := fv[robotcsv.Value]
	value, valueOK := parseNumber(valueText, v.DecimalSeparator, &c.scratch)
	if valueText != "" && !valueOK {
		ch.fail(ReasonBadValue, fmt.Sprintf("value %q is not a number", cut(valueText)))
	}
	unit = fv[robotcsv.Unit]
	cv := conversion{}
	if test >= 0 && unit != "" {
		if cv = c.cat.convert(test, unit); !cv.ok {
			ch.fail(ReasonUnknownUnit, fmt.Sprintf("unit %q is not accepted for %s", cut(unit), c.cat.tests[test].Code))
		}
	}
	t := labtests.Test{}
	if test >= 0 {
		t = c.cat.tests[test]
	}
	canonical := value*cv.factor + cv.offset
	if test >= 0 && valueOK && cv.ok && !t.IsPlausible(canonical) {
		ch.fail(ReasonImplausibleValue, fmt.Sprintf("%g %s is outside the plausible %g-%g", canonical, t.Unit, t.Plausible.Low, t.Plausible.High))
	}
	ref, hasRef := c.refRange(&fv, v, ch)
	if cv.ok {
		ref.Low = ref.Low*cv.factor + cv.offset
		ref.High = ref.High*cv.factor + cv.offset
	}
	collected, analyzed := c.timestamps(&fv, ch)
	rank := statusRank(v.DefaultStatus)
	if v.Has(robotcsv.Status) {
		if s := fv[robotcsv.Status]; s != "" {
			if rank = statusRank(s); rank == 0 {
				ch.fail(ReasonBadStatus, fmt.Sprintf("status %q is not preliminary, final or corrected", cut(s)))
			}
		}
	}
	if len(ch.reasons) > 0 {
		return row{}, "", "", "", ""
	}
	fw = fv[robotcsv.InstrumentFW]
	if len(fw) > 1024 {
		fw = fw[:1024]
	}
	if len(unit) > 255 {
		unit = unit[:255] // cannot happen: a unit this long is unknown
	}
	flagRef := t.Reference
	if hasRef&1 != 0 {
		flagRef.Low = ref.Low
	}
	if hasRef&2 != 0 {
		flagRef.High = ref.High
	}
	rw = row{
		collected: collected,
		analyzed:  analyzed,
		value:     canonical,
		orig:      value,
		refLow:    ref.Low,
		refHigh:   ref.High,
		line:      a.lines.Value(i),
		test:      uint8(test),
		status:    rank,
		flag:      flagIndex(t.FlagFor(canonical, flagRef)),
		hasRef:    hasRef,
	}
	return rw, patient, sample, fw, unit
}

// refRange reads the row's reference limits in the reported unit; bit 0 of
// has says low is present, bit 1 high.
func (c *checker) refRange(fv *[numFields]string, v robotcsv.Version, ch *check) (r labtests.Range, has uint8) {
	if v.Has(robotcsv.RefRange) {
		s := fv[robotcsv.RefRange]
		if s == "" {
			return r, 0
		}
		lo, hi, err := v.ParseRefRange(s)
		if err != nil {
			ch.fail(ReasonBadReferenceRange, fmt.Sprintf("reference range %q: not low-high", cut(s)))
			return r, 0
		}
		r, has = labtests.Range{Low: lo, High: hi}, 3
	} else {
		if s := fv[robotcsv.RefLow]; s != "" {
			lo, ok := parseNumber(s, v.DecimalSeparator, &c.scratch)
			if !ok {
				ch.fail(ReasonBadReferenceRange, fmt.Sprintf("ref_low %q is not a number", cut(s)))
			}
			r.Low, has = lo, has|1
		}
		if s := fv[robotcsv.RefHigh]; s != "" {
			hi, ok := parseNumber(s, v.DecimalSeparator, &c.scratch)
			if !ok {
				ch.fail(ReasonBadReferenceRange, fmt.Sprintf("ref_high %q is not a number", cut(s)))
			}
			r.High, has = hi, has|2
		}
	}
	if has == 3 && r.Low > r.High {
		ch.fail(ReasonBadReferenceRange, fmt.Sprintf("reference range %g-%g is reversed", r.Low, r.High))
	}
	return r, has
}

func (c *checker) timestamps(fv *[numFields]string, ch *check) (collected, analyzed int64) {
	analyzed = noTime
	s := fv[robotcsv.CollectedAt]
	if s != "" {
		var ok bool
		if collected, ok = c.times[0].parse(s); !ok {
			ch.fail(ReasonBadTimestamp, fmt.Sprintf("collected_at %q is not a %s timestamp", cut(s), c.layout.Version.Name))
		} else if collected > c.limitUS {
			ch.fail(ReasonFutureTimestamp, fmt.Sprintf("collected_at %s is in the future", time.UnixMicro(collected).UTC().Format(time.RFC3339)))
		}
	}
	if s := fv[robotcsv.AnalyzedAt]; s != "" {
		t, ok := c.times[1].parse(s)
		switch {
		case !ok:
			ch.fail(ReasonBadTimestamp, fmt.Sprintf("analyzed_at %q is not a %s timestamp", cut(s), c.layout.Version.Name))
		case t > c.limitUS:
			ch.fail(ReasonFutureTimestamp, fmt.Sprintf("analyzed_at %s is in the future", time.UnixMicro(t).UTC().Format(time.RFC3339)))
		case collected != 0 && t < collected:
			ch.fail(ReasonAnalyzedBefore, "analyzed_at is before collected_at")
		default:
			analyzed = t
		}
	}
	return collected, analyzed
}

// cut shortens a field quoted in a detail.
func cut(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func (c *cleaner) spill() error {
	if c.spilled == nil {
		s, err := newSpillFile(c.opts.TempDir)
		if err != nil {
			return err
		}
		c.spilled = s
	}
	c.cur.sort()
	if err := c.spilled.add(&c.cur); err != nil {
		return err
	}
	c.report.Runs++
	c.cur.reset()
	return nil
}

// finish sorts what is left, merges it with any spilled runs and emits the
// kept rows and the superseded ones.
func (c *cleaner) finish(ctx context.Context) error {
	mergeStart := c.opts.Now()
	c.cur.sort()
	c.report.Runs++
	cursors := []cursor{&memCursor{r: &c.cur}}
	if c.spilled != nil {
		defer c.spilled.Close()
		cursors = append(c.spilled.cursors(), cursors...)
	}
	m, err := newMerger(cursors)
	if err != nil {
		return err
	}
	e := newEmitter(c)
	n := 0
	if err := m.each(func(r *rec) error {
		n++
		if n&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return e.add(r)
	}); err != nil {
		return err
	}
	if err := e.close(); err != nil {
		return err
	}
	c.report.Timings.Merge = seconds(c.opts.Now().Sub(mergeStart))
	return nil
}

// Day returns the UTC day of a Unix-microsecond timestamp.
func day(us int64) civil.Date {
	return civil.DateOf(time.UnixMicro(us).UTC())
}
