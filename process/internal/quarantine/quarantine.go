// Package quarantine writes the quarantine file of one raw object: a CSV
// with one line per rejected or superseded source line, carrying its line
// number, its reason codes, a detail, and its raw text.
//
// Raw text that is not valid UTF-8 is written with each invalid byte as
// \xNN (and a backslash as \\), and the raw_escaped column says so, so the
// file stays loadable by CSV tools and BigQuery and no byte is lost.
package quarantine

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labplatform/platform/process/internal/clean"
)

// Header is the first line of every quarantine file.
var Header = []string{"source_line", "reasons", "detail", "raw", "raw_escaped"}

// Writer writes quarantine lines.
type Writer struct {
	w    *csv.Writer
	rec  []string
	rows int64
}

// NewWriter writes the header to w and returns a Writer.
func NewWriter(w io.Writer) (*Writer, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(Header); err != nil {
		return nil, fmt.Errorf("write quarantine header: %w", err)
	}
	return &Writer{w: cw, rec: make([]string, len(Header))}, nil
}

// Write adds one quarantined line.
func (w *Writer) Write(q *clean.Quarantined) error {
	raw, escaped := Escape(q.Raw)
	w.rec[0] = strconv.FormatInt(q.Line, 10)
	w.rec[1] = strings.Join(q.Reasons, "|")
	w.rec[2] = strings.ToValidUTF8(q.Detail, "\uFFFD")
	w.rec[3] = raw
	w.rec[4] = strconv.FormatBool(escaped)
	if err := w.w.Write(w.rec); err != nil {
		return fmt.Errorf("write quarantine line %d: %w", q.Line, err)
	}
	w.rows++
	return nil
}

// Rows returns the number of lines written (the header excluded).
func (w *Writer) Rows() int64 { return w.rows }

// Flush writes any buffered data to the underlying writer.
func (w *Writer) Flush() error {
	w.w.Flush()
	if err := w.w.Error(); err != nil {
		return fmt.Errorf("flush quarantine: %w", err)
	}
	return nil
}

// Escape returns raw as text: unchanged when it is valid UTF-8, otherwise
// with every invalid byte written as \xNN and every backslash as \\.
func Escape(raw []byte) (string, bool) {
	if utf8.Valid(raw) {
		return string(raw), false
	}
	var b strings.Builder
	for len(raw) > 0 {
		r, n := utf8.DecodeRune(raw)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02X`, raw[0])
		case r == '\\':
			b.WriteString(`\\`)
		default:
			b.Write(raw[:n])
		}
		raw = raw[n:]
	}
	return b.String(), true
}

// Unescape reverses Escape for a raw_escaped value.
func Unescape(s string) ([]byte, error) {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(s) && s[i+1] == 'x':
			v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("unescape %q at byte %d: %w", s, i, err)
			}
			out = append(out, byte(v))
			i += 3
		default:
			return nil, fmt.Errorf("unescape: lone backslash at byte %d", i)
		}
	}
	return out, nil
}
