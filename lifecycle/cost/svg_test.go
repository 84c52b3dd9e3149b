package cost

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/labplatform/platform/lifecycle/policy"
)

// series is one <g class="series"> of the chart: its rectangles' heights.
type series struct {
	class, projection string
	heights           []float64
}

func parseChart(t *testing.T, svg []byte) (all []series, texts []string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var cur *series
	root := true
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart is not XML: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root {
				if el.Name.Local != "svg" || el.Name.Space != "http://www.w3.org/2000/svg" {
					t.Fatalf("root element = %v, want svg in the SVG namespace", el.Name)
				}
				root = false
			}
			attrs := map[string]string{}
			for _, a := range el.Attr {
				attrs[a.Name.Local] = a.Value
			}
			switch {
			case el.Name.Local == "g" && attrs["class"] == "series":
				all = append(all, series{class: attrs["data-class"], projection: attrs["data-projection"]})
				cur = &all[len(all)-1]
			case el.Name.Local == "rect" && cur != nil:
				h, err := strconv.ParseFloat(attrs["height"], 64)
				if err != nil || h < 0 {
					t.Fatalf("series %s/%s: rect height %q", cur.projection, cur.class, attrs["height"])
				}
				cur.heights = append(cur.heights, h)
			}
		case xml.EndElement:
			if el.Name.Local == "g" {
				cur = nil
			}
		case xml.CharData:
			if s := strings.TrimSpace(string(el)); s != "" {
				texts = append(texts, s)
			}
		}
	}
	return all, texts
}

func TestSVGHasASeriesPerClass(t *testing.T) {
	r := rawStandardReport(t)
	var b bytes.Buffer
	if err := r.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	all, texts := parseChart(t, b.Bytes())
	byKey := map[string]series{}
	for _, s := range all {
		byKey[s.projection+"/"+s.class] = s
	}
	for _, proj := range []string{"with_policies", "without_policies"} {
		for _, c := range []policy.Class{policy.Standard, policy.Nearline, policy.Coldline, policy.Archive} {
			s, ok := byKey[proj+"/"+string(c)]
			if !ok {
				t.Errorf("no series %s/%s", proj, c)
				continue
			}
			if len(s.heights) != 12 {
				t.Errorf("series %s/%s has %d bars, want 12", proj, c, len(s.heights))
			}
		}
	}
	if len(all) != 8 {
		t.Errorf("%d series, want 8", len(all))
	}
	// Without policies the object stays STANDARD: a bar every month, and
	// nothing in the colder classes.
	for i, h := range byKey["without_policies/STANDARD"].heights {
		if h <= 0 {
			t.Errorf("without policies, month %d: STANDARD bar height %v", i+1, h)
		}
		if byKey["without_policies/COLDLINE"].heights[i] != 0 {
			t.Errorf("without policies, month %d: a COLDLINE bar", i+1)
		}
	}
	// With policies: STANDARD only in month 1, COLDLINE from month 3, and
	// the month-1 STANDARD bar (1.33) lower than without (2.00).
	with := byKey["with_policies/STANDARD"].heights
	if with[0] <= 0 || with[1] != 0 || with[0] >= byKey["without_policies/STANDARD"].heights[0] {
		t.Errorf("with policies STANDARD bars = %v", with)
	}
	cold := byKey["with_policies/COLDLINE"].heights
	if cold[1] != 0 || cold[2] <= 0 || cold[11] <= 0 {
		t.Errorf("with policies COLDLINE bars = %v", cold)
	}
	joined := strings.Join(texts, "\n")
	for _, want := range []string{"month", "USD per month", "with policies", "without policies", "STANDARD", "ARCHIVE"} {
		if !strings.Contains(joined, want) {
			t.Errorf("chart has no text %q", want)
		}
	}
}

func TestSVGEscapesAndHandlesZero(t *testing.T) {
	f := policy.Default()
	inv := NewInventory(f, `a<b&"c"`, t0)
	r := NewReport(inv, f, testPrices(), t0, 2, Options{})
	var b bytes.Buffer
	if err := r.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	all, texts := parseChart(t, b.Bytes())
	if len(all) != 8 {
		t.Errorf("%d series, want 8", len(all))
	}
	if !strings.Contains(strings.Join(texts, "\n"), `a<b&"c"`) {
		t.Error("the prefix does not survive escaping")
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{0, 1}, {0.3, 0.5}, {1, 1}, {1.2, 2}, {2.1, 2.5}, {7, 10}, {24, 25}, {26, 50}, {101, 200},
	} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
