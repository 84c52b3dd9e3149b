package parquetout

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	pqparquet "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/labplatform/platform/contracts/schema"
)

// pqarrowWriter is the rejected implementation, kept so that the comparison
// in the package documentation stays reproducible: Arrow's own Parquet
// writer (pqarrow.FileWriter with buffered row groups) with the same
// Options, row-group cuts, dictionary columns and zstd codec as Writer.
type pqarrowWriter struct {
	fw    *pqarrow.FileWriter
	out   *errSink
	sc    *arrow.Schema
	group groupSizer
	rows  int64
	err   error
}

// newPqarrow opens a pqarrowWriter; with dictionaries false no column is
// dictionary encoded (pqarrow's fastest setting, see the package
// documentation).
func newPqarrow(w io.Writer, opts Options, dictionaries bool) (_ *pqarrowWriter, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	props := []pqparquet.WriterProperty{
		pqparquet.WithCompression(compress.Codecs.Zstd),
		pqparquet.WithCompressionLevel(opts.ZstdLevel),
		pqparquet.WithStats(true),
		pqparquet.WithMaxRowGroupLength(opts.RowGroupRows),
		pqparquet.WithDataPageSize(pageBufferSize), // faster than its 1 MiB default here
		pqparquet.WithDictionaryDefault(false),
		pqparquet.WithDictionaryPageSizeLimit(dictionaryLimit),
	}
	if dictionaries {
		for _, c := range dictionaryColumns {
			props = append(props, pqparquet.WithDictionaryFor(c, true))
		}
	}
	sc := schema.Arrow()
	// errSink keeps pqarrow from closing w (it closes an io.Closer) and
	// keeps the write error pqarrow drops when it starts a row group.
	out := &errSink{w: w}
	defer func() {
		if r := recover(); r != nil { // pqarrow panics when it cannot write the magic number
			err = fmt.Errorf("start file: %v: %w", r, out.err)
		}
	}()
	fw, err := pqarrow.NewFileWriter(sc, out, pqparquet.NewWriterProperties(props...), pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, err
	}
	return &pqarrowWriter{fw: fw, out: out, sc: sc, group: newGroupSizer(sc, opts)}, nil
}

func (w *pqarrowWriter) Write(rec arrow.RecordBatch) error {
	if w.err != nil {
		return w.err
	}
	if !rec.Schema().Equal(w.sc) {
		return fmt.Errorf("record schema is not the canonical result schema: %s", rec.Schema())
	}
	for off := int64(0); off < rec.NumRows(); {
		n := w.group.fit(rec, off)
		if n == 0 {
			w.fw.NewBufferedRowGroup() // writes out the full group
			w.group.reset()
			if w.out.err != nil {
				w.err = fmt.Errorf("write row group ending at row %d: %w", w.rows, w.out.err)
				return w.err
			}
			continue
		}
		part := rec
		if off != 0 || n != rec.NumRows() {
			part = rec.NewSlice(off, off+n)
		}
		err := w.fw.WriteBuffered(part)
		if part != rec {
			part.Release()
		}
		if err == nil {
			err = w.out.err
		}
		if err != nil {
			w.err = fmt.Errorf("write rows %d to %d: %w", w.rows, w.rows+n, err)
			return w.err
		}
		w.group.add(rec, off, n)
		w.rows += n
		off += n
	}
	return nil
}

func (w *pqarrowWriter) Close() error {
	if w.err != nil {
		if errors.Is(w.err, errClosed) {
			return nil
		}
		return w.err
	}
	w.err = errClosed
	err := w.fw.Close()
	if err == nil {
		err = w.out.err
	}
	if err != nil {
		w.err = fmt.Errorf("close file after %d rows: %w", w.rows, err)
	}
	return err
}

func (w *pqarrowWriter) Rows() int64 { return w.rows }

type errSink struct {
	w   io.Writer
	err error
}

func (s *errSink) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// countingDiscard counts what is written to it.
type countingDiscard struct{ n int64 }

func (c *countingDiscard) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// heapPeak samples the bytes of heap spans in use (HeapInuse) every
// millisecond until stop, and returns the highest sample.
func heapPeak() (stop func() uint64) {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	read := func() uint64 {
		metrics.Read(samples)
		return samples[0].Value.Uint64() + samples[1].Value.Uint64()
	}
	var (
		mu   sync.Mutex
		peak = read()
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				v := read()
				mu.Lock()
				peak = max(peak, v)
				mu.Unlock()
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return max(peak, read())
	}
}

// benchRows is the size of the benchmark's file; go test -bench Write
// -args -parquetout.rows=4000000 shows that memory does not grow with it.
var benchRows = flag.Int("parquetout.rows", benchConfig.rows, "rows in BenchmarkWrite's file")

// benchBatchRows is the size of the record batches the benchmark writes.
const benchBatchRows = 65_536

// BenchmarkWrite writes a generated file (benchConfig: 800,000 rows of
// 100,000 patients, sorted) in batches of 65,536 rows made outside the
// timer, with default Options, through Writer (parquet-go), the rejected
// pqarrow writer with the same dictionaries and without any, and Writer at
// zstd level 3, to a counting io.Discard. It reports:
//   - rows/s: over the wall time in New, Write and Close; rows/cpu-s: over
//     the process's CPU time (user+system, garbage collection included) in
//     them, which other load on the machine disturbs less;
//   - MB/s of the CSV the rows came from (125 bytes a row);
//   - out-B: the file's size;
//   - peak-heap-B: the highest heap in use (HeapInuse, sampled every
//     millisecond) during the timed loop, less what was in use before; it
//     includes the batch being written and garbage not yet collected;
//   - peak-rss-B: the process's peak resident memory (VmHWM, reset before
//     each sub-benchmark), the test binary and the batch generator included;
//   - live-heap-B: from one more, untimed pass, the most the writer keeps
//     between Writes (heap after a collection, the batch released).
func BenchmarkWrite(b *testing.B) {
	impls := []struct {
		name string
		open func(io.Writer) (fileWriter, error)
	}{
		{name: "parquet-go", open: func(w io.Writer) (fileWriter, error) { return New(w, Options{}) }},
		{name: "pqarrow", open: func(w io.Writer) (fileWriter, error) { return newPqarrow(w, Options{}, true) }},
		{name: "pqarrow-nodict", open: func(w io.Writer) (fileWriter, error) { return newPqarrow(w, Options{}, false) }},
		{name: "parquet-go-zstd3", open: func(w io.Writer) (fileWriter, error) { return New(w, Options{ZstdLevel: 3}) }},
	}
	cfg := benchConfig
	cfg.rows = *benchRows
	for _, impl := range impls {
		b.Run(impl.name, func(b *testing.B) {
			rssReset := resetPeakRSS()
			runtime.GC()
			base := heapInuse()
			stop := heapPeak()
			res := benchWrite(b, cfg, impl.open)
			peak := stop()
			res.report(b)
			if peak > base {
				b.ReportMetric(float64(peak-base), "peak-heap-B")
			}
			if rss := peakRSS(); rssReset && rss > 0 {
				b.ReportMetric(float64(rss), "peak-rss-B")
			}
			b.ReportMetric(float64(liveHeap(b, cfg, impl.open)), "live-heap-B")
		})
	}
}

// benchResult is what benchWrite measured.
type benchResult struct {
	rows, out  int64
	wall, cpu  time.Duration // spent in New, Write and Close
	iterations int
}

func (r benchResult) report(b *testing.B) {
	n := float64(r.rows) * float64(r.iterations)
	b.ReportMetric(n/r.wall.Seconds(), "rows/s")
	b.ReportMetric(n/r.cpu.Seconds(), "rows/cpu-s")
	b.ReportMetric(float64(r.out), "out-B")
}

// benchWrite writes cfg's rows through open's writer b.N times, timing only
// the writer's calls.
func benchWrite(b *testing.B, cfg genConfig, open func(io.Writer) (fileWriter, error)) benchResult {
	res := benchResult{rows: int64(cfg.rows)}
	b.SetBytes(res.rows * 125)
	b.ReportAllocs()
	timed := func(f func() error) {
		b.StartTimer()
		wall, cpu := time.Now(), cpuTime()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		res.wall += time.Since(wall)
		res.cpu += cpuTime() - cpu
		b.StopTimer()
	}
	for b.Loop() {
		b.StopTimer()
		out := &countingDiscard{}
		gen := newGenerator(cfg)
		var w fileWriter
		timed(func() (err error) { w, err = open(out); return err })
		for rec := gen.batch(benchBatchRows); rec != nil; rec = gen.batch(benchBatchRows) {
			timed(func() error { return w.Write(rec) })
			rec.Release()
		}
		timed(w.Close)
		if w.Rows() != res.rows {
			b.Fatalf("wrote %d rows, want %d", w.Rows(), res.rows)
		}
		res.out = out.n
		res.iterations++
		b.StartTimer()
	}
	return res
}

// liveHeap writes cfg's rows once more, untimed, and returns the most heap
// the writer keeps between Writes: after each Write the batch is released,
// the garbage collected and the heap compared with before the writer.
func liveHeap(b *testing.B, cfg genConfig, open func(io.Writer) (fileWriter, error)) uint64 {
	b.StopTimer()
	defer b.StartTimer()
	gen := newGenerator(cfg)
	runtime.GC()
	base := heapAlloc()
	w, err := open(io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	var peak uint64
	for rec := gen.batch(benchBatchRows); rec != nil; rec = gen.batch(benchBatchRows) {
		if err := w.Write(rec); err != nil {
			b.Fatal(err)
		}
		rec.Release()
		runtime.GC()
		if h := heapAlloc(); h > base {
			peak = max(peak, h-base)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return peak
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS returns the free heap to the OS and resets the process's
// peak resident memory (Linux), reporting whether it could.
func resetPeakRSS() bool {
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS is the process's peak resident memory (VmHWM) in bytes, or 0.
func peakRSS() uint64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(status)) {
		if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(kb), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return n << 10
		}
	}
	return 0
}

func heapInuse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
