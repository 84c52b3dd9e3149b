package robotsim

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/labplatform/platform/contracts/robotcsv"
)

func TestGenerate(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"v1", "v2", "v3"} {
		t.Run(v, func(t *testing.T) {
			opts := GenerateOptions{Version: v, Rows: 5000, Seed: 42, Malformed: 0.01}
			var a, b, c bytes.Buffer
			st, err := Generate(&a, opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Generate(&b, opts); err != nil {
				t.Fatal(err)
			}
			opts.Seed = 43
			if _, err := Generate(&c, opts); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) || bytes.Equal(a.Bytes(), c.Bytes()) {
				t.Error("same seed differs, or different seeds agree")
			}
			if st.Bytes != int64(a.Len()) || st.Rows != 5000 || st.Malformed == 0 {
				t.Errorf("stats %+v for %d bytes", st, a.Len())
			}
			chk := checkExport(t, a.Bytes(), defaultFileTime)
			checkAgainstManifest(t, File{Path: v, Stats: st}, chk)
			if v == "v3" && st.Corrected == 0 {
				t.Error("no corrections in a v3 file")
			}
		})
	}
}

func TestGenerateTruncatedAndAlternate(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	st, err := Generate(&buf, GenerateOptions{Version: "v1", Rows: 300, AlternateUnits: true, TruncatedLastLine: true})
	if err != nil {
		t.Fatal(err)
	}
	chk := checkExport(t, buf.Bytes(), defaultFileTime)
	checkAgainstManifest(t, File{Path: "v1", Stats: st}, chk)
	if st.Malformed != 1 || st.MalformedLines[0] != (MalformedLine{Line: 301, Kind: TruncatedLine}) {
		t.Errorf("stats %+v", st)
	}
	alt := 0
	for _, x := range chk.rows {
		if x.unit != x.test.Unit {
			alt++
		}
	}
	if alt < len(chk.rows)/2 {
		t.Errorf("%d of %d rows in alternate units", alt, len(chk.rows))
	}
}

func TestGenerateErrors(t *testing.T) {
	t.Parallel()
	if _, err := Generate(io.Discard, GenerateOptions{Version: "v7", Rows: -1, Malformed: 3, Robot: "X1"}); err == nil {
		t.Error("bad options accepted")
	}
	boom := errors.New("disk full")
	if _, err := Generate(failingWriter{boom}, GenerateOptions{Rows: 100000}); !errors.Is(err, boom) {
		t.Errorf("write error: got %v", err)
	}
	var buf bytes.Buffer
	if _, err := Generate(&buf, GenerateOptions{Rows: 0}); err != nil || buf.String() != robotcsv.V2.Header()+"\n" {
		t.Errorf("zero rows: %q, %v", buf.String(), err)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// BenchmarkGenerateV2 measures the generator on a v2 file with 0.1%
// malformed rows; MB/s is of file bytes.
func BenchmarkGenerateV2(b *testing.B) {
	const rows = 100_000
	st, err := Generate(io.Discard, GenerateOptions{Version: "v2", Rows: rows, Malformed: 0.001})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Bytes)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Generate(io.Discard, GenerateOptions{Version: "v2", Rows: rows, Malformed: 0.001}); err != nil {
			b.Fatal(err)
		}
	}
}
