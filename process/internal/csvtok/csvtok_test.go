package csvtok_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/labplatform/platform/process/internal/csvtok"
)

// rec is a Record copied out of the Reader, with string fields for
// comparison.
type rec struct {
	Line      int64
	Raw       string
	Fields    []string
	Problem   csvtok.Problem
	NoNewline bool
}

func (r rec) String() string {
	raw := r.Raw
	if len(raw) > 40 {
		raw = fmt.Sprintf("%.40s…(%d bytes)", raw, len(raw))
	}
	return fmt.Sprintf("{line %d raw %q fields %q %v no_newline=%v}", r.Line, raw, r.Fields, r.Problem, r.NoNewline)
}

func copyRecord(r *csvtok.Record) rec {
	out := rec{Line: r.Line, Raw: string(r.Raw), Problem: r.Problem, NoNewline: r.NoNewline}
	if r.Fields != nil {
		out.Fields = make([]string, len(r.Fields))
		for i, f := range r.Fields {
			out.Fields[i] = string(f)
		}
	}
	return out
}

func readAll(t testing.TB, src io.Reader, opts csvtok.Options) ([]rec, *csvtok.Reader) {
	t.Helper()
	r := csvtok.New(src, opts)
	var out []rec
	for {
		record, ok := r.Next()
		if !ok {
			break
		}
		out = append(out, copyRecord(record))
	}
	return out, r
}

// readers wraps an input in sources that hand it over in different chunk
// sizes, so refills and compaction land at every position in a line.
var readers = []struct {
	name string
	wrap func(string) io.Reader
}{
	{name: "whole", wrap: func(s string) io.Reader { return strings.NewReader(s) }},
	{name: "one_byte", wrap: func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
	{name: "half", wrap: func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) }},
	{name: "data_with_eof", wrap: func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) }},
}

func fields(f ...string) []string { return f }

func TestReader(t *testing.T) {
	const v2Header = "sample_id,patient_id,loinc,test_name,value,unit,ref_low,ref_high,collected_at"
	const v2Row = "S00012345,P0001234,2345-7,Glucose,5.4,mmol/L,3.9,5.5,2026-11-20T08:15:00Z"
	v2HeaderFields := strings.Split(v2Header, ",")
	v2RowFields := strings.Split(v2Row, ",")
	long := func(n int) string { return strings.Repeat("x", n) }

	tests := []struct {
		name  string
		in    string
		opts  csvtok.Options
		want  []rec
		small bool // also run with a tiny buffer
	}{
		{name: "empty file", in: "", want: nil},
		{name: "only BOM", in: "\xEF\xBB\xBF", want: nil},
		{
			name: "header only",
			in:   v2Header + "\n",
			want: []rec{{Line: 1, Raw: v2Header, Fields: v2HeaderFields}},
		},
		{
			name: "header only without final newline",
			in:   v2Header,
			want: []rec{{Line: 1, Raw: v2Header, Fields: v2HeaderFields, NoNewline: true}},
		},
		{
			name: "v2 header and row",
			in:   v2Header + "\n" + v2Row + "\n",
			want: []rec{
				{Line: 1, Raw: v2Header, Fields: v2HeaderFields},
				{Line: 2, Raw: v2Row, Fields: v2RowFields},
			},
		},
		{
			name: "BOM and CRLF",
			in:   "\xEF\xBB\xBF" + v2Header + "\r\n" + v2Row + "\r\n",
			want: []rec{
				{Line: 1, Raw: v2Header, Fields: v2HeaderFields},
				{Line: 2, Raw: v2Row, Fields: v2RowFields},
			},
		},
		{
			name: "BOM only stripped on line 1",
			in:   "a\n\xEF\xBB\xBFb\n",
			want: []rec{
				{Line: 1, Raw: "a", Fields: fields("a")},
				{Line: 2, Raw: "\uFEFFb", Fields: fields("\uFEFFb")},
			},
		},
		{
			name: "partial BOM is content",
			in:   "\xEF\xBB,a",
			want: []rec{{Line: 1, Raw: "\xEF\xBB,a", Problem: csvtok.ProblemInvalidUTF8, NoNewline: true}},
		},
		{
			name: "missing final newline",
			in:   "a,b\nc,d",
			want: []rec{
				{Line: 1, Raw: "a,b", Fields: fields("a", "b")},
				{Line: 2, Raw: "c,d", Fields: fields("c", "d"), NoNewline: true},
			},
		},
		{
			name: "missing final newline after CRLF lines",
			in:   "a,b\r\nc,d",
			want: []rec{
				{Line: 1, Raw: "a,b", Fields: fields("a", "b")},
				{Line: 2, Raw: "c,d", Fields: fields("c", "d"), NoNewline: true},
			},
		},
		{
			name: "lone CR at EOF stripped",
			in:   "a,b\r",
			want: []rec{{Line: 1, Raw: "a,b", Fields: fields("a", "b"), NoNewline: true}},
		},
		{
			name: "CR elsewhere kept",
			in:   "a\rb,c\r\r\n\r\n",
			want: []rec{
				{Line: 1, Raw: "a\rb,c\r", Fields: fields("a\rb", "c\r")},
				{Line: 2, Raw: "", Fields: fields("")},
			},
		},
		{
			name: "empty lines are records with one empty field",
			in:   "\n\na\n\n",
			want: []rec{
				{Line: 1, Raw: "", Fields: fields("")},
				{Line: 2, Raw: "", Fields: fields("")},
				{Line: 3, Raw: "a", Fields: fields("a")},
				{Line: 4, Raw: "", Fields: fields("")},
			},
		},
		{
			name: "empty fields",
			in:   ",a,,\n,\n",
			want: []rec{
				{Line: 1, Raw: ",a,,", Fields: fields("", "a", "", "")},
				{Line: 2, Raw: ",", Fields: fields("", "")},
			},
		},
		{
			name: "many fields",
			in:   strings.Repeat(",", 5000) + "\na,b\n",
			want: []rec{
				{Line: 1, Raw: strings.Repeat(",", 5000), Fields: make([]string, 5001)},
				{Line: 2, Raw: "a,b", Fields: fields("a", "b")},
			},
		},
		{
			name: "quoted field with delimiter",
			in:   `S1,"Glucose, fasting",5.4` + "\n",
			want: []rec{{Line: 1, Raw: `S1,"Glucose, fasting",5.4`, Fields: fields("S1", "Glucose, fasting", "5.4")}},
		},
		{
			name: "doubled quotes",
			in:   `a,"say ""hi""","""",""` + "\r\n",
			want: []rec{{Line: 1, Raw: `a,"say ""hi""","""",""`, Fields: fields("a", `say "hi"`, `"`, "")}},
		},
		{
			name: "quoted fields at both ends and trailing delimiter",
			in:   `"a",b,"c",` + "\n" + `"x"` + "\n",
			want: []rec{
				{Line: 1, Raw: `"a",b,"c",`, Fields: fields("a", "b", "c", "")},
				{Line: 2, Raw: `"x"`, Fields: fields("x")},
			},
		},
		{
			name: "quoted CR kept",
			in:   "\"a\rb\"\n",
			want: []rec{{Line: 1, Raw: "\"a\rb\"", Fields: fields("a\rb")}},
		},
		{
			name: "unterminated quote ends with its line",
			in:   "h1,h2\n" + `a,"b` + "\n" + `c,d` + "\n",
			want: []rec{
				{Line: 1, Raw: "h1,h2", Fields: fields("h1", "h2")},
				{Line: 2, Raw: `a,"b`, Problem: csvtok.ProblemUnterminatedQuote},
				{Line: 3, Raw: "c,d", Fields: fields("c", "d")},
			},
		},
		{
			name: "unterminated after doubled quote",
			in:   `"a""` + "\n" + `"b""""`,
			want: []rec{
				{Line: 1, Raw: `"a""`, Problem: csvtok.ProblemUnterminatedQuote},
				{Line: 2, Raw: `"b""""`, Problem: csvtok.ProblemUnterminatedQuote, NoNewline: true},
			},
		},
		{
			name: "bad quotes",
			in:   `a"b,c` + "\n" + `"a"b,c` + "\n" + `"a" ,c` + "\n" + `a, "b"` + "\n" + `x,y"` + "\n",
			want: []rec{
				{Line: 1, Raw: `a"b,c`, Problem: csvtok.ProblemBadQuote},
				{Line: 2, Raw: `"a"b,c`, Problem: csvtok.ProblemBadQuote},
				{Line: 3, Raw: `"a" ,c`, Problem: csvtok.ProblemBadQuote},
				{Line: 4, Raw: `a, "b"`, Problem: csvtok.ProblemBadQuote},
				{Line: 5, Raw: `x,y"`, Problem: csvtok.ProblemBadQuote},
			},
		},
		{
			name: "non-UTF-8",
			in:   "a,b\nS1,Gl\xfccose,5.4\n\"\xff\"\nc\n",
			want: []rec{
				{Line: 1, Raw: "a,b", Fields: fields("a", "b")},
				{Line: 2, Raw: "S1,Gl\xfccose,5.4", Problem: csvtok.ProblemInvalidUTF8},
				{Line: 3, Raw: "\"\xff\"", Problem: csvtok.ProblemInvalidUTF8},
				{Line: 4, Raw: "c", Fields: fields("c")},
			},
		},
		{
			name: "UTF-8 content",
			in:   "S1,Glükose,µmol/L,\"Zucker, nüchtern\"\n",
			want: []rec{{Line: 1, Raw: "S1,Glükose,µmol/L,\"Zucker, nüchtern\"", Fields: fields("S1", "Glükose", "µmol/L", "Zucker, nüchtern")}},
		},
		{
			name: "semicolon delimiter with decimal commas",
			in:   "sample_id;value;unit\nS1;5,4;mmol/L\nS2;\"a;b\";\n",
			opts: csvtok.Options{Delimiter: ';'},
			want: []rec{
				{Line: 1, Raw: "sample_id;value;unit", Fields: fields("sample_id", "value", "unit")},
				{Line: 2, Raw: "S1;5,4;mmol/L", Fields: fields("S1", "5,4", "mmol/L")},
				{Line: 3, Raw: "S2;\"a;b\";", Fields: fields("S2", "a;b", "")},
			},
		},
		{
			name:  "line lengths at the limit",
			opts:  csvtok.Options{MaxLineBytes: 8, MaxRawBytes: 3},
			small: true,
			in: long(8) + "\n" + long(8) + "\r\n" + long(9) + "\n" + long(9) + "\r\n" + long(10) + "\n" +
				long(7) + "\r\r\n" + long(20) + "\n" + long(8),
			want: []rec{
				{Line: 1, Raw: long(8), Fields: fields(long(8))},
				{Line: 2, Raw: long(8), Fields: fields(long(8))},
				{Line: 3, Raw: long(3), Problem: csvtok.ProblemTooLong},
				{Line: 4, Raw: long(3), Problem: csvtok.ProblemTooLong},
				{Line: 5, Raw: long(3), Problem: csvtok.ProblemTooLong},
				{Line: 6, Raw: long(7) + "\r", Fields: fields(long(7) + "\r")},
				{Line: 7, Raw: long(3), Problem: csvtok.ProblemTooLong},
				{Line: 8, Raw: long(8), Fields: fields(long(8)), NoNewline: true},
			},
		},
		{
			name:  "overlong last line without newline",
			opts:  csvtok.Options{MaxLineBytes: 4, MaxRawBytes: 100},
			small: true,
			in:    "a\n" + long(50),
			want: []rec{
				{Line: 1, Raw: "a", Fields: fields("a")},
				{Line: 2, Raw: long(4), Problem: csvtok.ProblemTooLong, NoNewline: true},
			},
		},
		{
			name:  "overlong line after BOM",
			opts:  csvtok.Options{MaxLineBytes: 4, MaxRawBytes: 2},
			small: true,
			in:    "\xEF\xBB\xBF" + "abcdefgh\nx\n",
			want: []rec{
				{Line: 1, Raw: "ab", Problem: csvtok.ProblemTooLong},
				{Line: 2, Raw: "x", Fields: fields("x")},
			},
		},
		{
			name: "too long wins over other problems",
			opts: csvtok.Options{MaxLineBytes: 4},
			in:   "\"\xff\xff\xff\xff\n",
			want: []rec{{Line: 1, Raw: "\"\xff\xff\xff", Problem: csvtok.ProblemTooLong}},
		},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			optsList := []csvtok.Options{tt.opts}
			if tt.small {
				small := tt.opts
				small.BufferSize = 1
				optsList = append(optsList, small)
			}
			for _, opts := range optsList {
				t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
					got, r := readAll(t, rd.wrap(tt.in), opts)
					if err := r.Err(); err != nil {
						t.Fatalf("Err() = %v", err)
					}
					if !slices.EqualFunc(got, tt.want, recEqual) {
						t.Errorf("records (BufferSize %d):\n got %v\nwant %v", opts.BufferSize, got, tt.want)
					}
					if r.BytesRead() != int64(len(tt.in)) {
						t.Errorf("BytesRead() = %d, want %d", r.BytesRead(), len(tt.in))
					}
					if _, ok := r.Next(); ok {
						t.Error("Next() after EOF = true")
					}
				})
			}
		}
	}
}

func recEqual(a, b rec) bool {
	return a.Line == b.Line && a.Raw == b.Raw && a.Problem == b.Problem && a.NoNewline == b.NoNewline &&
		(a.Fields == nil) == (b.Fields == nil) && slices.Equal(a.Fields, b.Fields)
}

// repeatReader yields b forever.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestReaderHugeLine(t *testing.T) {
	const huge = 10 << 20
	src := io.MultiReader(
		strings.NewReader("sample_id,value\nS1,5.4\n"),
		io.LimitReader(repeatReader('x'), huge),
		strings.NewReader("\r\nS2,6.1\n"),
		io.LimitReader(repeatReader('y'), huge), // the last line: no newline
	)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, r := readAll(t, src, csvtok.Options{})
	runtime.ReadMemStats(&after)
	if err := r.Err(); err != nil {
		t.Fatalf("Err() = %v", err)
	}
	want := []rec{
		{Line: 1, Raw: "sample_id,value", Fields: fields("sample_id", "value")},
		{Line: 2, Raw: "S1,5.4", Fields: fields("S1", "5.4")},
		{Line: 3, Raw: strings.Repeat("x", csvtok.DefaultMaxRawBytes), Problem: csvtok.ProblemTooLong},
		{Line: 4, Raw: "S2,6.1", Fields: fields("S2", "6.1")},
		{Line: 5, Raw: strings.Repeat("y", csvtok.DefaultMaxRawBytes), Problem: csvtok.ProblemTooLong, NoNewline: true},
	}
	if !slices.EqualFunc(got, want, recEqual) {
		t.Errorf("records:\n got %v\nwant %v", got, want)
	}
	if want := int64(2*huge + len("sample_id,value\nS1,5.4\n") + len("\r\nS2,6.1\n")); r.BytesRead() != want {
		t.Errorf("BytesRead() = %d, want %d", r.BytesRead(), want)
	}
	// The buffer grows to one MaxLineBytes line (256 KiB, 512 KiB, 1 MiB,
	// 1 MiB+2); the 10 MB lines are never held whole.
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d bytes reading two %d-byte lines", alloc, huge)
	if alloc > 4<<20 {
		t.Errorf("allocated %d bytes reading two %d-byte lines, want at most 4 MiB", alloc, huge)
	}
}

// cycleReader yields its text again and again, in reads of at most chunk
// bytes.
type cycleReader struct {
	text  []byte
	off   int
	chunk int
}

func (c *cycleReader) Read(p []byte) (int, error) {
	p = p[:min(len(p), c.chunk)]
	n := 0
	for n < len(p) {
		m := copy(p[n:], c.text[c.off:])
		n += m
		c.off = (c.off + m) % len(c.text)
	}
	return n, nil
}

func TestReaderSteadyStateAllocs(t *testing.T) {
	text := "S00012345,P0001234,2345-7,Glucose,5.4,mmol/L,3.9,5.5,2026-11-20T08:15:00Z\r\n" +
		`S00012346,P0001234,2345-7,"Glucose, fasting",5.4,mmol/L,3.9,5.5,2026-11-20T08:15:00Z` + "\n" +
		`S00012347,P0001234,1234-5,"say ""hi""",,,,,` + "\n" +
		"bad\xff\n" + `a"b` + "\n\n" + strings.Repeat("z", 100) + "\n"
	r := csvtok.New(&cycleReader{text: []byte(text), chunk: 1000}, csvtok.Options{MaxLineBytes: 90, BufferSize: 4096})
	for range 1000 { // warm up: the field slice, scratch and rawCut reach their sizes
		r.Next()
	}
	lines := int64(0)
	allocs := testing.AllocsPerRun(10000, func() {
		if _, ok := r.Next(); ok {
			lines++
		}
	})
	if allocs != 0 {
		t.Errorf("Next allocates %.2f times per record in steady state, want 0", allocs)
	}
	if lines != 10001 { // AllocsPerRun runs the function once more to warm up
		t.Errorf("got %d records, want 10001", lines)
	}
}

// failingReader returns its text, then err.
type failingReader struct {
	text string
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.text == "" {
		return 0, f.err
	}
	n := copy(p, f.text)
	f.text = f.text[n:]
	return n, nil
}

func TestReaderReadError(t *testing.T) {
	errBoom := errors.New("boom")
	got, r := readAll(t, &failingReader{text: "a,b\nc,d\ne,", err: errBoom}, csvtok.Options{})
	want := []rec{
		{Line: 1, Raw: "a,b", Fields: fields("a", "b")},
		{Line: 2, Raw: "c,d", Fields: fields("c", "d")},
	}
	if !slices.EqualFunc(got, want, recEqual) {
		t.Errorf("records:\n got %v\nwant %v", got, want)
	}
	err := r.Err()
	if !errors.Is(err, errBoom) {
		t.Fatalf("Err() = %v, want it to wrap %v", err, errBoom)
	}
	if !strings.Contains(err.Error(), "line 3") {
		t.Errorf("Err() = %q, want it to name line 3", err)
	}
}

// stuckReader never returns data or an error.
type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

// lyingReader claims to have read more than it was given.
type lyingReader struct{}

func (lyingReader) Read(p []byte) (int, error) { return len(p) + 1, nil }

func TestReaderBrokenSource(t *testing.T) {
	tests := []struct {
		name string
		src  io.Reader
		want error
	}{
		{name: "no progress", src: stuckReader{}, want: io.ErrNoProgress},
		{name: "invalid count", src: lyingReader{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, r := readAll(t, tt.src, csvtok.Options{})
			if len(got) != 0 {
				t.Errorf("got %d records, want none", len(got))
			}
			if r.Err() == nil || (tt.want != nil && !errors.Is(r.Err(), tt.want)) {
				t.Errorf("Err() = %v, want %v", r.Err(), tt.want)
			}
		})
	}
}

func TestReaderInvalidOptions(t *testing.T) {
	tests := []struct {
		name string
		opts csvtok.Options
	}{
		{name: "quote delimiter", opts: csvtok.Options{Delimiter: '"'}},
		{name: "newline delimiter", opts: csvtok.Options{Delimiter: '\n'}},
		{name: "CR delimiter", opts: csvtok.Options{Delimiter: '\r'}},
		{name: "negative MaxLineBytes", opts: csvtok.Options{MaxLineBytes: -1}},
		{name: "negative BufferSize", opts: csvtok.Options{BufferSize: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := csvtok.New(strings.NewReader("a\n"), tt.opts)
			if _, ok := r.Next(); ok {
				t.Error("Next() = true, want false")
			}
			if r.Err() == nil {
				t.Error("Err() = nil, want an error")
			}
		})
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    csvtok.Problem
		want string
	}{
		{p: csvtok.ProblemNone, want: "none"},
		{p: csvtok.ProblemTooLong, want: "too_long"},
		{p: csvtok.ProblemInvalidUTF8, want: "invalid_utf8"},
		{p: csvtok.ProblemUnterminatedQuote, want: "unterminated_quote"},
		{p: csvtok.ProblemBadQuote, want: "bad_quote"},
		{p: csvtok.Problem(42), want: "problem_42"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("Problem(%d).String() = %q, want %q", int(tt.p), got, tt.want)
		}
	}
}

// chunkReader hands over at most n bytes per Read.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.data)
	c.data = c.data[n:]
	return n, nil
}

func FuzzReader(f *testing.F) {
	seeds := []string{
		"",
		"\xEF\xBB\xBF",
		"sample_id,value\r\nS1,5.4\r\n",
		"\xEF\xBB\xBFa,\"b, c\",\"say \"\"hi\"\"\"\nd",
		"a,\"b\nc,d\n",
		"a\"b\n\"a\"b\n\n\r\n\r",
		"S1;5,4;mmol/L\n",
		"x\xff,y\n" + strings.Repeat("z", 300) + "\nq",
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint16(i*37), uint8(i*5), uint8(i), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, data []byte, maxLine uint16, bufSize, chunk uint8, semicolon bool) {
		opts := csvtok.Options{
			MaxLineBytes: int(maxLine%512) + 1,
			MaxRawBytes:  int(maxLine/512)%64 + 1,
			BufferSize:   int(bufSize) + 1,
		}
		if semicolon {
			opts.Delimiter = ';'
		}
		r := csvtok.New(&chunkReader{data: data, n: int(chunk) + 1}, opts)

		body := bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))
		lines := bytes.Split(body, []byte("\n"))
		if len(lines[len(lines)-1]) == 0 {
			lines = lines[:len(lines)-1] // ends with '\n', or is empty
		}
		n := 0
		for ; ; n++ {
			got, ok := r.Next()
			if !ok {
				break
			}
			if n >= len(lines) {
				t.Fatalf("record %d (line %d) beyond the %d physical lines", n+1, got.Line, len(lines))
			}
			if got.Line != int64(n+1) {
				t.Fatalf("record %d has line %d", n+1, got.Line)
			}
			if wantNL := n < len(lines)-1 || bytes.HasSuffix(body, []byte("\n")); got.NoNewline == wantNL {
				t.Errorf("line %d: NoNewline = %v", got.Line, got.NoNewline)
			}
			line := lines[n]
			line = bytes.TrimSuffix(line, []byte("\r"))
			if len(line) > opts.MaxLineBytes {
				cut := line[:min(opts.MaxRawBytes, opts.MaxLineBytes)]
				if got.Problem != csvtok.ProblemTooLong || !bytes.Equal(got.Raw, cut) {
					t.Fatalf("line %d of %d bytes: got %v %q, want too_long %q", got.Line, len(line), got.Problem, got.Raw, cut)
				}
				continue
			}
			if !bytes.Equal(got.Raw, line) {
				t.Fatalf("line %d: Raw = %q, want %q", got.Line, got.Raw, line)
			}
			if (got.Problem == csvtok.ProblemNone) != (got.Fields != nil) {
				t.Fatalf("line %d: problem %v with %d fields", got.Line, got.Problem, len(got.Fields))
			}
			switch {
			case got.Problem == csvtok.ProblemTooLong:
				t.Fatalf("line %d of %d bytes reported too long", got.Line, len(line))
			case (got.Problem == csvtok.ProblemInvalidUTF8) == utf8.Valid(line):
				t.Fatalf("line %d: problem %v, utf8.Valid = %v", got.Line, got.Problem, utf8.Valid(line))
			case got.Problem == csvtok.ProblemInvalidUTF8:
				continue
			case len(line) == 0:
				if len(got.Fields) != 1 || len(got.Fields[0]) != 0 {
					t.Fatalf("empty line %d: fields %q, want one empty field", got.Line, got.Fields)
				}
				continue
			case bytes.IndexByte(line, '\r') >= 0:
				continue // encoding/csv rewrites CRs
			}
			// Compare a single valid line with encoding/csv, which agrees
			// on everything else.
			cr := csv.NewReader(bytes.NewReader(append(bytes.Clone(line), '\n')))
			cr.FieldsPerRecord = -1
			if semicolon {
				cr.Comma = ';'
			}
			want, err := cr.Read()
			if (err == nil) != (got.Problem == csvtok.ProblemNone) {
				t.Fatalf("line %d %q: problem %v, encoding/csv error %v", got.Line, line, got.Problem, err)
			}
			if err == nil {
				gotFields := make([]string, len(got.Fields))
				for i, f := range got.Fields {
					gotFields[i] = string(f)
				}
				if !slices.Equal(gotFields, want) {
					t.Fatalf("line %d %q: fields %q, encoding/csv %q", got.Line, line, gotFields, want)
				}
			}
		}
		if n != len(lines) {
			t.Fatalf("got %d records, want %d physical lines", n, len(lines))
		}
		if err := r.Err(); err != nil {
			t.Fatalf("Err() = %v", err)
		}
		if r.BytesRead() != int64(len(data)) {
			t.Fatalf("BytesRead() = %d, want %d", r.BytesRead(), len(data))
		}
	})
}
