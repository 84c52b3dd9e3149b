package cost

import (
	"reflect"
	"strings"
	"testing"

	"github.com/labplatform/platform/lifecycle/policy"
)

func TestShippedPrices(t *testing.T) {
	p, err := LoadPrices("../prices.json")
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := DefaultPrices()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(embedded, p) {
		t.Errorf("DefaultPrices() = %+v, want the file's %+v", embedded, p)
	}
	if p.Source != "https://cloud.google.com/storage/pricing" || p.Region != "europe-west1" || p.Note == "" {
		t.Errorf("source, region, note = %q, %q, %q", p.Source, p.Region, p.Note)
	}
	want := testPrices()
	for c, wp := range want.Classes {
		if p.Classes[c] != wp {
			t.Errorf("%s = %+v, want %+v", c, p.Classes[c], wp)
		}
	}
}

func TestParsePricesReportsEveryProblem(t *testing.T) {
	_, err := ParsePrices([]byte(`{
		"source": "", "as_of": "January", "region": "x", "currency": "USD",
		"classes": {
			"STANDARD": {"storage_gib_month": -1, "retrieval_gib": 0, "min_storage_days": 0, "class_a_per_10k": 0, "class_b_per_10k": 0},
			"NEARLINE": {"storage_gib_month": 0.01, "retrieval_gib": 0.01, "min_storage_days": -30, "class_a_per_10k": 0, "class_b_per_10k": 0},
			"COLDLINE": {"storage_gib_month": 0.004, "retrieval_gib": 0.02, "min_storage_days": 90, "class_a_per_10k": 0, "class_b_per_10k": 0},
			"GLACIER": {"storage_gib_month": 0.001, "retrieval_gib": 0, "min_storage_days": 0, "class_a_per_10k": 0, "class_b_per_10k": 0}
		}
	}`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"source is empty",
		`as_of "January"`,
		"class ARCHIVE has no prices",
		"class STANDARD: storage_gib_month is -1",
		"class NEARLINE: min_storage_days is -30",
		`unknown storage class "GLACIER"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestParsePricesIsStrict(t *testing.T) {
	for name, data := range map[string]string{
		"unknown field": `{"source": "s", "as_of": "2025-01-01", "classes": {}, "discount": 0.5}`,
		"trailing data": `{"source": "s", "as_of": "2025-01-01", "classes": {}} {}`,
		"not json":      `source: s`,
	} {
		if _, err := ParsePrices([]byte(data)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := LoadPrices("testdata/does-not-exist.json"); err == nil || !strings.Contains(err.Error(), "load prices") {
		t.Errorf("missing file: %v", err)
	}
	p := testPrices()
	if err := p.Validate(); err != nil {
		t.Errorf("test prices: %v", err)
	}
	delete(p.Classes, policy.Archive)
	if err := p.Validate(); err == nil {
		t.Error("a table without ARCHIVE validates")
	}
}
