package quarantine

import (
	"bytes"
	"encoding/csv"
	"testing"

	"github.com/labplatform/platform/process/internal/clean"
)

func TestWriteRoundTrip(t *testing.T) {
	raws := [][]byte{
		[]byte(`S1,P1,"quoted, with comma",5`),
		[]byte("bad \xff\xfe bytes and a \\ backslash"),
		nil,
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, raw := range raws {
		if err := w.Write(&clean.Quarantined{Line: int64(i + 2), Reasons: []string{"a", "b"}, Detail: "d", Raw: raw}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("the file is not valid CSV: %v", err)
	}
	if len(recs) != len(raws)+1 || w.Rows() != int64(len(raws)) {
		t.Fatalf("%d records, %d rows", len(recs), w.Rows())
	}
	for i, raw := range raws {
		rec := recs[i+1]
		got := []byte(rec[3])
		if rec[4] == "true" {
			if got, err = Unescape(rec[3]); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, raw) || rec[1] != "a|b" {
			t.Errorf("line %d: raw %q reasons %q, want %q", i, got, rec[1], raw)
		}
	}
}
