package csvtok

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// Defaults for zero [Options] fields.
const (
	DefaultDelimiter    = ','
	DefaultMaxLineBytes = 1 << 20
	DefaultMaxRawBytes  = 4 << 10
	DefaultBufferSize   = 256 << 10
)

// maxKeptFields is the largest field slice kept between records; a line of
// mostly delimiters can need 24 bytes per byte of line, which is not kept.
const maxKeptFields = 1024

// maxEmptyReads is how many (0, nil) reads in a row are taken as a broken
// source, as bufio does.
const maxEmptyReads = 100

// Options are the optional settings of a [Reader]; the zero value uses the
// defaults.
type Options struct {
	// Delimiter separates fields; default ','. It must not be '"', '\r' or
	// '\n'.
	Delimiter byte
	// MaxLineBytes is the longest line (without its line ending) that is
	// split into fields; default 1 MiB. A longer line is reported with
	// [ProblemTooLong], its Raw cut to MaxRawBytes, and the rest of the line
	// is skipped without buffering it.
	MaxLineBytes int
	// MaxRawBytes is how much of an overlong line's text Raw keeps; default
	// 4 KiB, at most MaxLineBytes.
	MaxRawBytes int
	// BufferSize is the initial size of the read buffer; default 256 KiB. The
	// buffer grows to hold one line of MaxLineBytes if it must, never more.
	BufferSize int
}

// Problem says why a line has no fields.
type Problem int

// Problems, in order of precedence: a record reports the first that applies.
const (
	ProblemNone Problem = iota
	// ProblemTooLong: the line is longer than Options.MaxLineBytes.
	ProblemTooLong
	// ProblemInvalidUTF8: the line is not valid UTF-8.
	ProblemInvalidUTF8
	// ProblemUnterminatedQuote: a quoted field is still open at the end of
	// the line.
	ProblemUnterminatedQuote
	// ProblemBadQuote: a quote inside an unquoted field, or text between a
	// closing quote and the next delimiter.
	ProblemBadQuote
)

// String returns the problem's stable snake_case code, for quarantine reasons
// and metric labels.
func (p Problem) String() string {
	switch p {
	case ProblemNone:
		return "none"
	case ProblemTooLong:
		return "too_long"
	case ProblemInvalidUTF8:
		return "invalid_utf8"
	case ProblemUnterminatedQuote:
		return "unterminated_quote"
	case ProblemBadQuote:
		return "bad_quote"
	}
	return "problem_" + strconv.Itoa(int(p))
}

// Record is one physical line of the source.
type Record struct {
	// Line is the 1-based physical line number in the source.
	Line int64
	// Raw is the line's bytes without the line ending (and without the BOM on
	// line 1), cut to Options.MaxRawBytes when Problem is ProblemTooLong.
	// Valid until the next call to Next.
	Raw []byte
	// Fields are the unquoted fields; an empty line has one empty field.
	// Valid until the next call to Next. Nil when Problem != ProblemNone.
	Fields [][]byte
	// Problem says why Fields is nil; ProblemNone otherwise.
	Problem Problem
	// NoNewline is set when the line ended at EOF without a line terminator.
	NoNewline bool
}

// Reader tokenizes a CSV stream line by line. It is not safe for concurrent
// use.
type Reader struct {
	src   io.Reader
	delim byte
	// maxLine and maxRaw are the resolved Options.
	maxLine int
	maxRaw  int
	// bufLimit is the largest the buffer may grow: one line of maxLine bytes
	// plus CRLF, or the configured size if larger.
	bufLimit int

	buf        []byte
	start, end int // unconsumed data is buf[start:end]
	// scanned is how many bytes from start are known to hold no '\n'.
	scanned int

	eof       bool
	err       error
	bytesRead int64
	line      int64 // the number of the last line returned
	started   bool  // the BOM check has run
	done      bool

	rec     Record
	fields  [][]byte
	scratch []byte // unescaped quoted fields; cap >= the line, never regrown mid-line
	rawCut  []byte // the kept prefix of an overlong line
}

// New returns a Reader over r. Invalid options are reported by [Reader.Err]
// after the first call to [Reader.Next].
func New(r io.Reader, opts Options) *Reader {
	rd := &Reader{src: r}
	if err := rd.configure(opts); err != nil {
		rd.err = err
		rd.done = true
	}
	return rd
}

func (r *Reader) configure(o Options) error {
	if o.Delimiter == 0 {
		o.Delimiter = DefaultDelimiter
	}
	if o.MaxLineBytes == 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.MaxRawBytes == 0 {
		o.MaxRawBytes = DefaultMaxRawBytes
	}
	if o.BufferSize == 0 {
		o.BufferSize = DefaultBufferSize
	}
	switch {
	case o.Delimiter == '"' || o.Delimiter == '\r' || o.Delimiter == '\n':
		return fmt.Errorf("csvtok: delimiter %q is not allowed", o.Delimiter)
	case o.MaxLineBytes < 0, o.MaxRawBytes < 0, o.BufferSize < 0:
		return fmt.Errorf("csvtok: negative size in options (MaxLineBytes %d, MaxRawBytes %d, BufferSize %d)",
			o.MaxLineBytes, o.MaxRawBytes, o.BufferSize)
	case o.MaxLineBytes > 1<<40:
		return fmt.Errorf("csvtok: MaxLineBytes %d is too large", o.MaxLineBytes)
	}
	r.delim = o.Delimiter
	r.maxLine = o.MaxLineBytes
	r.maxRaw = min(o.MaxRawBytes, o.MaxLineBytes)
	r.bufLimit = max(o.BufferSize, o.MaxLineBytes+2)
	r.buf = make([]byte, o.BufferSize)
	return nil
}

// Err returns the error that stopped Next: an I/O error from the source,
// wrapped with where it happened, or invalid options. It is nil at a clean
// EOF.
func (r *Reader) Err() error { return r.err }

// BytesRead returns how many bytes have been read from the source so far,
// including read-ahead not yet returned as records. At EOF it is the size of
// the source.
func (r *Reader) BytesRead() int64 { return r.bytesRead }

// Next returns the next line of the source. It returns false at EOF or when
// reading failed (see [Reader.Err]); a line cut short by a read error is not
// returned. The Record and its slices are valid until the next call to Next.
func (r *Reader) Next() (*Record, bool) {
	if r.done {
		return nil, false
	}
	if !r.started {
		r.started = true
		r.skipBOM()
	}
	line, newline, long, ok := r.readLine()
	if !ok {
		r.done = true
		return nil, false
	}
	if cap(r.fields) > maxKeptFields {
		r.fields = nil
	}
	r.line++
	rec := &r.rec
	rec.Line = r.line
	rec.NoNewline = !newline
	rec.Fields = nil
	if long {
		// readLine kept the start of the line in rawCut and skipped the rest.
		rec.Raw = r.rawCut
		rec.Problem = ProblemTooLong
		return rec, true
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > r.maxLine {
		// Ends within the buffer but is still one or two bytes too long.
		rec.Raw = line[:r.maxRaw:r.maxRaw]
		rec.Problem = ProblemTooLong
		return rec, true
	}
	rec.Raw = line
	rec.Problem = r.split(line)
	if rec.Problem == ProblemNone {
		rec.Fields = r.fields
	}
	return rec, true
}

// skipBOM drops a UTF-8 byte order mark at the start of the source.
func (r *Reader) skipBOM() {
	for r.end-r.start < 3 && !r.eof && r.err == nil {
		r.fill()
	}
	if bytes.HasPrefix(r.buf[r.start:r.end], []byte("\xEF\xBB\xBF")) {
		r.start += 3
	}
}

// readLine returns the next line including a trailing CR, and whether it
// ended with '\n'. For a line that does not fit in maxLine+2 bytes it returns
// long instead, having copied its start into rawCut and skipped the rest. ok
// is false at EOF with no more data, or on a read error.
func (r *Reader) readLine() (line []byte, newline, long, ok bool) {
	for {
		data := r.buf[r.start:r.end]
		if i := bytes.IndexByte(data[r.scanned:], '\n'); i >= 0 {
			i += r.scanned
			r.start += i + 1
			r.scanned = 0
			return data[:i:i], true, false, true
		}
		r.scanned = len(data)
		switch {
		case len(data) >= r.maxLine+2:
			// No '\n' within maxLine+2 bytes: even without a CR the line is
			// longer than maxLine.
			return r.skipLong()
		case r.eof:
			if len(data) == 0 {
				return nil, false, false, false
			}
			r.start = r.end
			r.scanned = 0
			return data[:len(data):len(data)], false, false, true
		case r.err != nil:
			return nil, false, false, false
		}
		r.fill()
	}
}

// skipLong keeps the first maxRaw bytes of the buffered overlong line in
// rawCut and discards the rest of the line, one buffer at a time.
func (r *Reader) skipLong() (line []byte, newline, long, ok bool) {
	if r.rawCut == nil {
		r.rawCut = make([]byte, 0, r.maxRaw)
	}
	r.rawCut = append(r.rawCut[:0], r.buf[r.start:r.start+r.maxRaw]...)
	r.start, r.end, r.scanned = 0, 0, 0
	for {
		if i := bytes.IndexByte(r.buf[r.start:r.end], '\n'); i >= 0 {
			r.start += i + 1
			return nil, true, true, true
		}
		r.start = r.end
		switch {
		case r.eof:
			return nil, false, true, true
		case r.err != nil:
			return nil, false, true, false
		}
		r.fill()
	}
}

// fill reads once from the source into the free end of the buffer, moving
// unconsumed data to the front and growing the buffer (up to bufLimit) when
// there is no room. It sets eof or err.
func (r *Reader) fill() {
	if r.start > 0 {
		n := copy(r.buf, r.buf[r.start:r.end])
		r.start, r.end = 0, n
	}
	if r.end == len(r.buf) {
		size := min(max(2*len(r.buf), 4096), r.bufLimit)
		if size <= len(r.buf) {
			// Unreachable: readLine stops before the buffer holds bufLimit
			// bytes of one line. Fail rather than loop.
			r.err = fmt.Errorf("csvtok: line %d at byte %d: read buffer full", r.line+1, r.bytesRead)
			return
		}
		nb := make([]byte, size)
		copy(nb, r.buf[:r.end])
		r.buf = nb
	}
	for range maxEmptyReads {
		n, err := r.src.Read(r.buf[r.end:])
		if n < 0 || n > len(r.buf)-r.end {
			r.err = fmt.Errorf("csvtok: reading line %d at byte %d: source returned invalid count %d", r.line+1, r.bytesRead, n)
			return
		}
		r.end += n
		r.bytesRead += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				r.eof = true
			} else {
				r.err = fmt.Errorf("csvtok: reading line %d at byte %d: %w", r.line+1, r.bytesRead, err)
			}
			return
		}
		if n > 0 {
			return
		}
	}
	r.err = fmt.Errorf("csvtok: reading line %d at byte %d: %w", r.line+1, r.bytesRead, io.ErrNoProgress)
}

// split fills r.fields with the fields of line, or returns the problem that
// prevents it. A line without quotes (most) is split eight bytes at a time.
// In a line with quotes, the stretches of unquoted fields are split the same
// way and each quoted field is parsed on its own.
func (r *Reader) split(line []byte) Problem {
	if bytes.IndexByte(line, '"') < 0 {
		fields, ascii := splitPlain(r.fields[:0], line, r.delim)
		r.fields = fields
		if !ascii && !utf8.Valid(line) {
			return ProblemInvalidUTF8
		}
		return ProblemNone
	}
	fields, at := splitUntilQuote(r.fields[:0], line, r.delim)
	fields, p := r.splitQuoted(fields, line[at:])
	r.fields = fields
	if !utf8.Valid(line) {
		return ProblemInvalidUTF8
	}
	return p
}

// splitPlain appends to fields the subslices of line, which holds no quote,
// between delimiters, reading eight bytes at a time, and reports whether line
// is all ASCII. One pass instead of bytes.IndexByte per field: robot fields
// are a few bytes long, so IndexByte's per-call cost dominated (1.6x slower
// end to end).
func splitPlain(fields [][]byte, line []byte, delim byte) (_ [][]byte, ascii bool) {
	delims := ones * uint64(delim)
	var all uint64
	start, i := 0, 0
	for ; len(line)-i >= 8; i += 8 {
		v := binary.LittleEndian.Uint64(line[i:])
		all |= v
		for m := zeroBytes(v ^ delims); m != 0; m &= m - 1 {
			j := i + bits.TrailingZeros64(m)>>3
			fields = append(fields, line[start:j:j])
			start = j + 1
		}
	}
	for ; i < len(line); i++ {
		c := line[i]
		all |= uint64(c)
		if c == delim {
			fields = append(fields, line[start:i:i])
			start = i + 1
		}
	}
	return append(fields, line[start:]), all&highs == 0
}

// splitUntilQuote is splitPlain for a line that may hold quotes: it stops at
// the field that holds the first quote and returns that field's offset in
// line, or -1 when it reached the end of line.
func splitUntilQuote(fields [][]byte, line []byte, delim byte) (_ [][]byte, at int) {
	delims, quotes := ones*uint64(delim), uint64(ones*'"')
	start, i := 0, 0
	for ; len(line)-i >= 8; i += 8 {
		v := binary.LittleEndian.Uint64(line[i:])
		m := zeroBytes(v ^ delims)
		q := zeroBytes(v ^ quotes)
		if q != 0 {
			m &= q&-q - 1 // only the delimiters before the quote
		}
		for ; m != 0; m &= m - 1 {
			j := i + bits.TrailingZeros64(m)>>3
			fields = append(fields, line[start:j:j])
			start = j + 1
		}
		if q != 0 {
			return fields, start
		}
	}
	for ; i < len(line); i++ {
		c := line[i]
		if c == '"' {
			return fields, start
		}
		if c == delim {
			fields = append(fields, line[start:i:i])
			start = i + 1
		}
	}
	return append(fields, line[start:]), -1
}

// splitQuoted appends the fields of line, which starts with a field that
// holds a quote. Quoted fields without doubled quotes are subslices of line;
// the others are unescaped into r.scratch, which is sized to the line first
// so that it never moves while earlier fields point into it.
func (r *Reader) splitQuoted(fields [][]byte, line []byte) ([][]byte, Problem) {
	if cap(r.scratch) < len(line) {
		r.scratch = make([]byte, 0, max(len(line), min(2*cap(r.scratch), r.maxLine)))
	}
	scratch := r.scratch[:0]
	delim := r.delim
	for {
		if line[0] != '"' {
			return fields, ProblemBadQuote // a quote inside an unquoted field
		}
		// Find the closing quote, unescaping "" on the way.
		rest := line[1:]
		from := -1 // start of this field in scratch once it needed unescaping
		var f []byte
		for {
			q := bytes.IndexByte(rest, '"')
			if q < 0 {
				return fields, ProblemUnterminatedQuote
			}
			if q+1 < len(rest) && rest[q+1] == '"' {
				if from < 0 {
					from = len(scratch)
				}
				scratch = append(scratch, rest[:q+1]...)
				rest = rest[q+2:]
				continue
			}
			if from < 0 {
				f = rest[:q:q]
			} else {
				scratch = append(scratch, rest[:q]...)
				f = scratch[from:len(scratch):len(scratch)]
			}
			rest = rest[q+1:]
			break
		}
		fields = append(fields, f)
		if len(rest) == 0 {
			return fields, ProblemNone
		}
		if rest[0] != delim {
			return fields, ProblemBadQuote // text after the closing quote
		}
		rest = rest[1:]
		var at int
		fields, at = splitUntilQuote(fields, rest, delim)
		if at < 0 {
			return fields, ProblemNone
		}
		line = rest[at:]
	}
}

const (
	ones  = 0x0101010101010101
	low7  = 0x7F7F7F7F7F7F7F7F
	highs = 0x8080808080808080
)

// zeroBytes returns 0x80 in each byte of v that is zero and 0 elsewhere,
// without the false positives of the shorter (v-ones)&^v trick.
func zeroBytes(v uint64) uint64 {
	return ^((v&low7 + low7) | v | low7)
}
