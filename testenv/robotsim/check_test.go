package robotsim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/labtests"
	"github.com/labplatform/platform/contracts/robotcsv"
)

// fakeClock never sleeps: Sleep advances Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.t = c.t.Add(d)
	}
	return nil
}

var testStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func newTestSim(t *testing.T, opts Options) *Simulator {
	t.Helper()
	if opts.Root == "" {
		opts.Root = t.TempDir()
	}
	if opts.Clock == nil {
		opts.Clock = &fakeClock{t: testStart}
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func steps(t *testing.T, s *Simulator, n int) []Written {
	t.Helper()
	var ws []Written
	for range n {
		w, err := s.Step(t.Context())
		if err != nil {
			t.Fatalf("Step: %v", err)
		}
		ws = append(ws, w)
	}
	return ws
}

// row is a data line that passed every check, in canonical terms.
type row struct {
	line      int
	sample    string
	patient   string
	test      labtests.Test
	unit      string // as written
	value     float64
	status    string
	collected time.Time
}

// checked is an export read the way the cleaning step must read it.
type checked struct {
	version string
	rows    []row
	// bad maps a line number to why it failed.
	bad map[int]string
	// lines counts data lines.
	lines int
}

// checkExport reads one export with contracts only: Detect on the header,
// the version's column count, ParseDecimal, ParseTime, labtests codes,
// units and plausibility; collection may not be after writtenAt.
func checkExport(t *testing.T, content []byte, writtenAt time.Time) checked {
	t.Helper()
	header, rest, _ := bytes.Cut(content, []byte("\n"))
	l, err := robotcsv.Detect(string(header))
	if err != nil {
		t.Fatalf("Detect: %v", err)
	}
	v := l.Version
	c := checked{version: v.Name, bad: map[int]string{}}
	times := map[string]parsedTime{}
	r := csv.NewReader(bytes.NewReader(rest))
	r.Comma = rune(v.Delimiter)
	r.FieldsPerRecord = -1
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		c.lines++
		if err != nil {
			c.bad[line] = "csv"
			continue
		}
		if got, _ := r.FieldPos(0); got+1 != line {
			t.Fatalf("line %d: reader is at line %d (a quoted line end?)", line, got+1)
		}
		x, reason := checkRow(l, rec, writtenAt, times)
		if reason != "" {
			c.bad[line] = reason
			continue
		}
		x.line = line
		c.rows = append(c.rows, x)
	}
	return c
}

type parsedTime struct {
	t   time.Time
	err error
}

func checkRow(l *robotcsv.Layout, rec []string, writtenAt time.Time, times map[string]parsedTime) (row, string) {
	v := l.Version
	// ParseTime, remembered: a visit's rows share their timestamps.
	parseTime := func(s string) (time.Time, error) {
		p, ok := times[s]
		if !ok {
			p.t, p.err = v.ParseTime(s)
			times[s] = p
		}
		return p.t, p.err
	}
	if len(rec) != l.Width {
		return row{}, string(FieldCount)
	}
	get := func(f robotcsv.Field) string { return rec[l.Pos(f)] }
	var x row
	x.sample, x.patient = get(robotcsv.SampleID), get(robotcsv.PatientID)
	if x.sample == "" || x.patient == "" {
		return row{}, "empty id"
	}
	var ok bool
	if v.TestCoding == robotcsv.Mnemonic {
		x.test, ok = labtests.ByMnemonic(get(robotcsv.Test))
	} else {
		x.test, ok = labtests.ByCode(get(robotcsv.Test))
	}
	if !ok {
		return row{}, string(UnknownTest)
	}
	if v.Has(robotcsv.TestName) && get(robotcsv.TestName) != x.test.Name {
		return row{}, "test name"
	}
	reported, err := v.ParseDecimal(get(robotcsv.Value))
	if err != nil {
		return row{}, string(BadNumber)
	}
	x.unit = get(robotcsv.Unit)
	if x.value, err = x.test.ToCanonical(reported, x.unit); err != nil {
		return row{}, string(UnknownUnit)
	}
	if !x.test.IsPlausible(x.value) {
		return row{}, string(OutOfRange)
	}
	if x.collected, err = parseTime(get(robotcsv.CollectedAt)); err != nil {
		return row{}, "collected_at"
	}
	if x.collected.After(writtenAt) {
		return row{}, string(FutureTimestamp)
	}
	if v.Has(robotcsv.RefRange) {
		if _, _, err := v.ParseRefRange(get(robotcsv.RefRange)); err != nil {
			return row{}, "ref_range"
		}
	} else {
		for _, f := range []robotcsv.Field{robotcsv.RefLow, robotcsv.RefHigh} {
			if _, err := v.ParseDecimal(get(f)); err != nil {
				return row{}, "ref bound"
			}
		}
	}
	x.status = robotcsv.StatusFinal
	if v.Has(robotcsv.Status) {
		x.status = get(robotcsv.Status)
		if x.status != robotcsv.StatusFinal && x.status != robotcsv.StatusCorrected {
			return row{}, "status"
		}
		a, err := parseTime(get(robotcsv.AnalyzedAt))
		if err != nil || a.Before(x.collected) || a.After(writtenAt) {
			return row{}, "analyzed_at"
		}
		if get(robotcsv.InstrumentFW) == "" {
			return row{}, "instrument_fw"
		}
	}
	return x, ""
}

// readManifestFile reads a file of the manifest and checks its size and hash.
func readManifestFile(t *testing.T, root string, f File) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f.Path)))
	if err != nil {
		t.Fatalf("manifest file: %v", err)
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
		t.Fatalf("%s: %d bytes, sha256 %x; manifest says %d bytes, %s", f.Path, len(b), sum, f.Size, f.SHA256)
	}
	return b
}

// tree maps every file under root (relative, slashed) to its content hash.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		sum := sha256.Sum256(b)
		m[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkAgainstManifest checks a file's rows against its manifest entry:
// the bad lines are exactly the malformed lines, each of the named kind.
func checkAgainstManifest(t *testing.T, f File, c checked) {
	t.Helper()
	if c.lines != f.Rows || len(c.rows) != f.Valid || len(c.bad) != f.Malformed {
		t.Errorf("%s: read %d lines, %d valid, %d bad; manifest says %d, %d, %d",
			f.Path, c.lines, len(c.rows), len(c.bad), f.Rows, f.Valid, f.Malformed)
	}
	for _, m := range f.MalformedLines {
		reason, ok := c.bad[m.Line]
		switch {
		case !ok:
			t.Errorf("%s line %d: manifest says %s, but the line is valid", f.Path, m.Line, m.Kind)
		case m.Kind == TruncatedLine:
			if m.Line != f.Rows+1 || (reason != string(FieldCount) && reason != "csv") {
				t.Errorf("%s line %d: truncated line fails as %q (last line %d)", f.Path, m.Line, reason, f.Rows+1)
			}
		case reason != string(m.Kind):
			t.Errorf("%s line %d: manifest says %s, the line fails as %s", f.Path, m.Line, m.Kind, reason)
		}
	}
}
