package cost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"github.com/labplatform/platform/lifecycle"
	"github.com/labplatform/platform/lifecycle/policy"
)

// Prices is a GCS price table for one region (lifecycle/prices.json, or a
// file given with --prices). Storage is priced per GiB-month, retrieval per
// GiB read, operations per 10,000.
type Prices struct {
	// Source is where the figures come from (the public pricing page).
	Source string `json:"source"`
	// AsOf is the date the figures are known to hold, YYYY-MM-DD.
	AsOf     string `json:"as_of"`
	Note     string `json:"note,omitempty"`
	Region   string `json:"region"`
	Currency string `json:"currency"`
	// Classes holds the prices of STANDARD, NEARLINE, COLDLINE and ARCHIVE.
	Classes map[policy.Class]ClassPrice `json:"classes"`
}

// ClassPrice is what one storage class costs.
type ClassPrice struct {
	// StoragePerGiBMonth is the at-rest price of one GiB for one month.
	StoragePerGiBMonth float64 `json:"storage_gib_month"`
	// RetrievalPerGiB is charged for every GiB read from the class (a
	// rewrite reads its source).
	RetrievalPerGiB float64 `json:"retrieval_gib"`
	// MinStorageDays is the minimum storage duration: an object deleted or
	// moved out of the class earlier is charged as if it had stayed that
	// long (the early-deletion charge).
	MinStorageDays int `json:"min_storage_days"`
	// ClassAPer10k and ClassBPer10k are the prices of 10,000 Class A
	// (insert, rewrite, list) and Class B (get) operations on objects of
	// the class.
	ClassAPer10k float64 `json:"class_a_per_10k"`
	ClassBPer10k float64 `json:"class_b_per_10k"`
}

// DefaultPrices returns the price table shipped in lifecycle/prices.json.
func DefaultPrices() (Prices, error) {
	p, err := ParsePrices(lifecycle.PricesJSON)
	if err != nil {
		return Prices{}, fmt.Errorf("shipped prices.json: %w", err)
	}
	return p, nil
}

// ParsePrices decodes a price table strictly (unknown fields are errors) and
// validates it.
func ParsePrices(data []byte) (Prices, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Prices
	if err := dec.Decode(&p); err != nil {
		return Prices{}, fmt.Errorf("decode prices: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Prices{}, errors.New("decode prices: data after the top-level object")
	}
	if err := p.Validate(); err != nil {
		return Prices{}, err
	}
	return p, nil
}

// LoadPrices reads and parses the price table at path.
func LoadPrices(path string) (Prices, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Prices{}, fmt.Errorf("load prices: %w", err)
	}
	p, err := ParsePrices(data)
	if err != nil {
		return Prices{}, fmt.Errorf("prices %s: %w", path, err)
	}
	return p, nil
}

// classes are the storage classes a price table must price, warmest first.
var classes = []policy.Class{policy.Standard, policy.Nearline, policy.Coldline, policy.Archive}

// Validate reports every problem of the table, joined: a missing source or
// date, a class missing or unknown, a negative or non-finite price.
func (p Prices) Validate() error {
	var errs []error
	if p.Source == "" {
		errs = append(errs, errors.New("prices: source is empty (name the pricing page)"))
	}
	if _, err := time.Parse(time.DateOnly, p.AsOf); err != nil {
		errs = append(errs, fmt.Errorf("prices: as_of %q is not YYYY-MM-DD", p.AsOf))
	}
	for _, c := range classes {
		if _, ok := p.Classes[c]; !ok {
			errs = append(errs, fmt.Errorf("prices: class %s has no prices", c))
		}
	}
	keys := make([]policy.Class, 0, len(p.Classes))
	for c := range p.Classes {
		keys = append(keys, c)
	}
	slices.Sort(keys)
	for _, c := range keys {
		cp := p.Classes[c]
		if c.Rank() < 0 {
			errs = append(errs, fmt.Errorf("prices: unknown storage class %q", c))
		}
		for _, v := range []struct {
			name string
			val  float64
		}{
			{"storage_gib_month", cp.StoragePerGiBMonth},
			{"retrieval_gib", cp.RetrievalPerGiB},
			{"class_a_per_10k", cp.ClassAPer10k},
			{"class_b_per_10k", cp.ClassBPer10k},
		} {
			if v.val < 0 || math.IsNaN(v.val) || math.IsInf(v.val, 0) {
				errs = append(errs, fmt.Errorf("prices: class %s: %s is %v, want a finite price >= 0", c, v.name, v.val))
			}
		}
		if cp.MinStorageDays < 0 {
			errs = append(errs, fmt.Errorf("prices: class %s: min_storage_days is %d, want >= 0", c, cp.MinStorageDays))
		}
	}
	return errors.Join(errs...)
}
