package clean

import (
	"bufio"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
)

// noTime marks an absent optional timestamp.
const noTime = math.MinInt64

// row is one valid, cleaned result, compact so a file's rows can be sorted
// in memory: its strings live in the run's arena (patient, sample, firmware,
// unit as written, in that order), test, status and flag are small codes.
type row struct {
	collected, analyzed int64 // Unix microseconds, UTC; analyzed may be noTime
	value, orig         float64
	refLow, refHigh     float64
	line                int64
	off                 uint32 // arena offset of the patient id
	pLen, sLen, fwLen   uint16
	uLen                uint8
	test                uint8
	status              uint8 // statusRank
	flag                uint8 // index into flagNames
	hasRef              uint8 // bit 0: refLow, bit 1: refHigh
}

// rowSize is the memory a row costs besides its strings, for the run budget.
const rowSize = 88 + 2*16 + 4 // row, sort key and its scratch, patient id

// rec is a row with its strings resolved; the strings stay valid until the
// cursor that produced it advances.
type rec struct {
	row
	patient, sample, fw, unit string
}

func (r *row) strings(arena []byte) (patient, sample, fw, unit string) {
	o := int(r.off)
	p := o + int(r.pLen)
	s := p + int(r.sLen)
	f := s + int(r.fwLen)
	u := f + int(r.uLen)
	a := arena[o:u]
	return unsafeString(a[:p-o]), unsafeString(a[p-o : s-o]), unsafeString(a[s-o : f-o]), unsafeString(a[f-o : u-o])
}

// less is the output order: patient, test code (the catalogue is sorted by
// code), sample, then the deduplication preference: higher status, later
// analysis, earlier line. Rows of one (patient, test, sample) are adjacent and
// the first of them is the one kept.
func compareRecs(a, b *rec) int {
	if c := cmp.Compare(a.patient, b.patient); c != 0 {
		return c
	}
	if c := cmp.Compare(a.test, b.test); c != 0 {
		return c
	}
	if c := cmp.Compare(a.sample, b.sample); c != 0 {
		return c
	}
	return comparePreference(&a.row, &b.row)
}

func comparePreference(a, b *row) int {
	if c := cmp.Compare(b.status, a.status); c != 0 {
		return c
	}
	if c := cmp.Compare(b.analyzed, a.analyzed); c != 0 {
		return c
	}
	return cmp.Compare(a.line, b.line)
}

// run collects rows until its budget is spent, then is sorted and either
// spilled to a temporary file or, for the last run, merged from memory.
type run struct {
	rows  []row
	arena []byte
	keys  []sortKey
	// sort's scratch, kept between runs
	tmp  []sortKey
	ids  map[string]uint32
	uniq []string
	pid  []uint32
}

// sortKey orders a row by (patient, test): the patient's rank among the
// run's distinct patients in string order, and the test's catalogue index
// (which orders like its code). Rows of equal keys are few (one patient's
// results of one test) and are ordered by comparison afterwards.
type sortKey struct {
	k   uint64 // rank<<8 | test
	idx uint32
}

func (r *run) add(rw row, patient, sample, fw, unit string) {
	rw.off = uint32(len(r.arena))
	rw.pLen, rw.sLen, rw.fwLen, rw.uLen = uint16(len(patient)), uint16(len(sample)), uint16(len(fw)), uint8(len(unit))
	r.arena = append(append(append(append(r.arena, patient...), sample...), fw...), unit...)
	r.rows = append(r.rows, rw)
}

func (r *run) bytes() int { return len(r.rows)*rowSize + len(r.arena) }

func (r *run) reset() {
	r.rows, r.arena, r.keys = r.rows[:0], r.arena[:0], r.keys[:0]
}

// sort orders the run; keys[i].idx is the i-th row in output order. It is a
// radix sort on (patient rank, test), then a comparison sort of each group of
// equal keys by sample and preference: linear in the rows, where a
// comparison sort of string keys spent a fifth of the cleaning time.
func (r *run) sort() {
	n := len(r.rows)
	if r.ids == nil {
		r.ids = map[string]uint32{}
	}
	clear(r.ids)
	r.uniq, r.pid = r.uniq[:0], slices.Grow(r.pid[:0], n)[:n]
	for i := range r.rows {
		p, _, _, _ := r.rows[i].strings(r.arena)
		id, ok := r.ids[p]
		if !ok {
			id = uint32(len(r.uniq))
			r.ids[p] = id
			r.uniq = append(r.uniq, p)
		}
		r.pid[i] = id
	}
	order := make([]uint32, len(r.uniq))
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(a, b uint32) int { return cmp.Compare(r.uniq[a], r.uniq[b]) })
	rank := make([]uint32, len(r.uniq))
	for k, id := range order {
		rank[id] = uint32(k)
	}
	keys := slices.Grow(r.keys[:0], n)[:n]
	for i := range r.rows {
		keys[i] = sortKey{k: uint64(rank[r.pid[i]])<<8 | uint64(r.rows[i].test), idx: uint32(i)}
	}
	r.tmp = slices.Grow(r.tmp[:0], n)[:n]
	keys, r.tmp = radixSort(keys, r.tmp, 8+bitsLen(uint64(len(r.uniq))))
	for lo := 0; lo < n; {
		hi := lo + 1
		for hi < n && keys[hi].k == keys[lo].k {
			hi++
		}
		if hi-lo > 1 {
			slices.SortFunc(keys[lo:hi], func(a, b sortKey) int {
				ra, rb := &r.rows[a.idx], &r.rows[b.idx]
				_, sa, _, _ := ra.strings(r.arena)
				_, sb, _, _ := rb.strings(r.arena)
				if c := cmp.Compare(sa, sb); c != 0 {
					return c
				}
				return comparePreference(ra, rb)
			})
		}
		lo = hi
	}
	r.keys = keys
}

func bitsLen(x uint64) int {
	n := 0
	for ; x > 0; x >>= 1 {
		n++
	}
	return n
}

// radixSort sorts keys by k (its low bits significant bits), stably, using
// tmp as scratch; it returns the sorted slice and the other one (the two
// swap roles on every pass that moves keys).
func radixSort(keys, tmp []sortKey, bits int) (sorted, scratch []sortKey) {
	if len(keys) < 2 {
		return keys, tmp
	}
	var count [256]int
	for shift := 0; shift < bits; shift += 8 {
		clear(count[:])
		for _, k := range keys {
			count[(k.k>>shift)&0xff]++
		}
		if count[(keys[0].k>>shift)&0xff] == len(keys) {
			continue // every key has this byte: nothing to move
		}
		sum := 0
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, k := range keys {
			b := (k.k >> shift) & 0xff
			tmp[count[b]] = k
			count[b]++
		}
		keys, tmp = tmp, keys
	}
	return keys, tmp
}

// spill writes the sorted run to w.
func (r *run) spill(w *bufio.Writer) error {
	var buf []byte
	for _, k := range r.keys {
		rw := &r.rows[k.idx]
		buf = encodeRow(buf[:0], rw, r.arena[rw.off:int(rw.off)+int(rw.pLen)+int(rw.sLen)+int(rw.fwLen)+int(rw.uLen)])
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return w.Flush()
}

const encodedFixed = 8*7 + 2*3 + 1*5

func encodeRow(b []byte, r *row, strs []byte) []byte {
	le := binary.LittleEndian
	b = le.AppendUint64(b, uint64(r.collected))
	b = le.AppendUint64(b, uint64(r.analyzed))
	b = le.AppendUint64(b, math.Float64bits(r.value))
	b = le.AppendUint64(b, math.Float64bits(r.orig))
	b = le.AppendUint64(b, math.Float64bits(r.refLow))
	b = le.AppendUint64(b, math.Float64bits(r.refHigh))
	b = le.AppendUint64(b, uint64(r.line))
	b = le.AppendUint16(b, r.pLen)
	b = le.AppendUint16(b, r.sLen)
	b = le.AppendUint16(b, r.fwLen)
	b = append(b, r.uLen, r.test, r.status, r.flag, r.hasRef)
	return append(b, strs...)
}

// cursor walks one sorted run.
type cursor interface {
	// next returns the next row, or nil at the end; the row is valid until
	// the following call.
	next() (*rec, error)
}

type memCursor struct {
	r   *run
	i   int
	cur rec
}

func (c *memCursor) next() (*rec, error) {
	if c.i >= len(c.r.keys) {
		return nil, nil
	}
	rw := &c.r.rows[c.r.keys[c.i].idx]
	c.i++
	c.cur.row = *rw
	c.cur.patient, c.cur.sample, c.cur.fw, c.cur.unit = rw.strings(c.r.arena)
	return &c.cur, nil
}

type fileCursor struct {
	br    *bufio.Reader
	fixed [encodedFixed]byte
	strs  []byte
	cur   rec
}

func (c *fileCursor) next() (*rec, error) {
	if _, err := io.ReadFull(c.br, c.fixed[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("read spilled run: %w", err)
	}
	le := binary.LittleEndian
	b := c.fixed[:]
	r := &c.cur.row
	r.collected = int64(le.Uint64(b[0:]))
	r.analyzed = int64(le.Uint64(b[8:]))
	r.value = math.Float64frombits(le.Uint64(b[16:]))
	r.orig = math.Float64frombits(le.Uint64(b[24:]))
	r.refLow = math.Float64frombits(le.Uint64(b[32:]))
	r.refHigh = math.Float64frombits(le.Uint64(b[40:]))
	r.line = int64(le.Uint64(b[48:]))
	r.pLen, r.sLen, r.fwLen = le.Uint16(b[56:]), le.Uint16(b[58:]), le.Uint16(b[60:])
	r.uLen, r.test, r.status, r.flag, r.hasRef = b[62], b[63], b[64], b[65], b[66]
	r.off = 0
	n := int(r.pLen) + int(r.sLen) + int(r.fwLen) + int(r.uLen)
	c.strs = slices.Grow(c.strs[:0], n)[:n]
	if _, err := io.ReadFull(c.br, c.strs); err != nil {
		return nil, fmt.Errorf("read spilled run: %w", err)
	}
	c.cur.patient, c.cur.sample, c.cur.fw, c.cur.unit = r.strings(c.strs)
	return &c.cur, nil
}

// spillFile is a temporary file of sorted runs, one after another.
type spillFile struct {
	f      *os.File
	w      *bufio.Writer
	bounds []int64 // end offset of each run
}

func newSpillFile(dir string) (*spillFile, error) {
	f, err := os.CreateTemp(dir, "process-run-*.bin")
	if err != nil {
		return nil, fmt.Errorf("create spill file: %w", err)
	}
	// Unlinked at once: the space is freed when the file is closed, even
	// after a crash.
	if err := os.Remove(f.Name()); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("unlink spill file: %w", err)
	}
	return &spillFile{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (s *spillFile) add(r *run) error {
	if err := r.spill(s.w); err != nil {
		return fmt.Errorf("spill run: %w", err)
	}
	off, err := s.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("spill run: %w", err)
	}
	s.bounds = append(s.bounds, off)
	return nil
}

func (s *spillFile) cursors() []cursor {
	var cs []cursor
	start := int64(0)
	for _, end := range s.bounds {
		cs = append(cs, &fileCursor{br: bufio.NewReaderSize(io.NewSectionReader(s.f, start, end-start), 64<<10)})
		start = end
	}
	return cs
}

func (s *spillFile) Close() error { return s.f.Close() }

// merger yields the rows of several sorted runs in order.
type merger struct {
	h mergeHeap
}

type mergeItem struct {
	c   cursor
	cur *rec
}

type mergeHeap []mergeItem

func (h mergeHeap) Len() int           { return len(h) }
func (h mergeHeap) Less(i, j int) bool { return compareRecs(h[i].cur, h[j].cur) < 0 }
func (h mergeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)        { *h = append(*h, x.(mergeItem)) }
func (h *mergeHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newMerger(cs []cursor) (*merger, error) {
	m := &merger{}
	for _, c := range cs {
		r, err := c.next()
		if err != nil {
			return nil, err
		}
		if r != nil {
			m.h = append(m.h, mergeItem{c: c, cur: r})
		}
	}
	heap.Init(&m.h)
	return m, nil
}

// each calls fn with every row in order. The row is valid during the call.
func (m *merger) each(fn func(*rec) error) error {
	if len(m.h) == 1 { // the common case: one run, no heap work
		for r := m.h[0].cur; r != nil; {
			if err := fn(r); err != nil {
				return err
			}
			var err error
			if r, err = m.h[0].c.next(); err != nil {
				return err
			}
		}
		return nil
	}
	for len(m.h) > 0 {
		top := &m.h[0]
		if err := fn(top.cur); err != nil {
			return err
		}
		r, err := top.c.next()
		if err != nil {
			return err
		}
		if r == nil {
			heap.Pop(&m.h)
			continue
		}
		top.cur = r
		heap.Fix(&m.h, 0)
	}
	return nil
}
