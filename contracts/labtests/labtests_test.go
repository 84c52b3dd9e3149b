package labtests

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the test table in README.md from tests.json")

func TestEmbeddedDataIsValid(t *testing.T) {
	if err := Validate(); err != nil {
		t.Fatalf("embedded tests.json is invalid:\n%v", err)
	}
	all := All()
	if len(all) < 25 {
		t.Errorf("got %d tests, want at least 25", len(all))
	}
	if !slices.IsSortedFunc(all, func(a, b Test) int { return strings.Compare(a.Code, b.Code) }) {
		t.Errorf("All() is not sorted by code")
	}
	codes := map[string]bool{}
	mnemonics := map[string]bool{}
	for _, tc := range all {
		t.Run(tc.Code, func(t *testing.T) {
			if !ValidLOINC(tc.Code) {
				t.Errorf("code %q has a wrong LOINC check digit", tc.Code)
			}
			if codes[tc.Code] {
				t.Errorf("duplicate code %s", tc.Code)
			}
			codes[tc.Code] = true
			m := strings.ToUpper(tc.Mnemonic)
			if m == "" || mnemonics[m] {
				t.Errorf("empty or duplicate mnemonic %q", tc.Mnemonic)
			}
			mnemonics[m] = true
			if tc.Name == "" {
				t.Errorf("empty name")
			}
			if got := NormalizeUnit(tc.Unit); got != tc.Unit {
				t.Errorf("canonical unit %q normalizes to %q", tc.Unit, got)
			}
			for _, c := range tc.Alternates {
				if c.Unit == tc.Unit {
					t.Errorf("canonical unit %q is also an alternate", tc.Unit)
				}
				if !(c.Factor > 0) {
					t.Errorf("alternate %q: factor %g, want > 0", c.Unit, c.Factor)
				}
				if got := NormalizeUnit(c.Unit); got != c.Unit {
					t.Errorf("alternate unit %q normalizes to %q", c.Unit, got)
				}
			}
			p, r := tc.Plausible, tc.Reference
			// A reference bound equal to the plausible bound marks a one-sided
			// interval (lipids, CRP), so the outer comparisons allow equality.
			if !(p.Low <= r.Low && r.Low < r.High && r.High <= p.High && p.Low < p.High) {
				t.Errorf("want plausible.low <= reference.low < reference.high <= plausible.high, got plausible %v reference %v", p, r)
			}
			if tc.CriticalLow != nil && (*tc.CriticalLow < p.Low || *tc.CriticalLow > r.Low) {
				t.Errorf("critical low %g outside [plausible.low %g, reference.low %g]", *tc.CriticalLow, p.Low, r.Low)
			}
			if tc.CriticalHigh != nil && (*tc.CriticalHigh < r.High || *tc.CriticalHigh > p.High) {
				t.Errorf("critical high %g outside [reference.high %g, plausible.high %g]", *tc.CriticalHigh, r.High, p.High)
			}
		})
	}
}

func TestRequiredTestsPresent(t *testing.T) {
	tests := []struct {
		code, mnemonic, unit string
	}{
		{code: "2345-7", mnemonic: "GLU", unit: "mg/dL"},
		{code: "2160-0", mnemonic: "CREA", unit: "mg/dL"},
		{code: "2951-2", mnemonic: "NA", unit: "mmol/L"},
		{code: "2823-3", mnemonic: "K", unit: "mmol/L"},
		{code: "718-7", mnemonic: "HGB", unit: "g/dL"},
		{code: "6690-2", mnemonic: "WBC", unit: "10*3/uL"},
		{code: "777-3", mnemonic: "PLT", unit: "10*3/uL"},
		{code: "4548-4", mnemonic: "HBA1C", unit: "%"},
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			got, ok := ByCode(tc.code)
			if !ok {
				t.Fatalf("ByCode(%q) not found", tc.code)
			}
			if got.Mnemonic != tc.mnemonic || got.Unit != tc.unit {
				t.Errorf("ByCode(%q) = mnemonic %q unit %q, want %q %q", tc.code, got.Mnemonic, got.Unit, tc.mnemonic, tc.unit)
			}
			byM, ok := ByMnemonic(strings.ToLower(tc.mnemonic))
			if !ok || byM.Code != tc.code {
				t.Errorf("ByMnemonic(%q) = %q, %v; want %q", strings.ToLower(tc.mnemonic), byM.Code, ok, tc.code)
			}
		})
	}
}

func TestLookupMisses(t *testing.T) {
	if _, ok := ByCode("0000-0"); ok {
		t.Errorf("ByCode(0000-0) found a test")
	}
	if _, ok := ByMnemonic("NOPE"); ok {
		t.Errorf("ByMnemonic(NOPE) found a test")
	}
}

func TestAllReturnsCopies(t *testing.T) {
	all := All()
	all[0].Name = "changed"
	all[0].Alternates[0].Factor = -1
	for i := range all {
		if all[i].CriticalHigh != nil {
			*all[i].CriticalHigh = -1
		}
	}
	for _, got := range All() {
		if got.Name == "changed" || (len(got.Alternates) > 0 && got.Alternates[0].Factor == -1) {
			t.Fatalf("All() shares memory with the catalogue: %+v", got)
		}
		if got.CriticalHigh != nil && *got.CriticalHigh == -1 {
			t.Fatalf("All() shares critical limits with the catalogue: %s", got.Code)
		}
	}
}

// loincCheckDigitLuhn is an independent formulation of LOINC's Mod 10: it is
// the Luhn check with the rightmost digit of the body doubled.
func loincCheckDigitLuhn(body string) byte {
	sum := 0
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if (len(body)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}

func TestLOINCCheckDigitAgreesWithLuhn(t *testing.T) {
	for n := 0; n < 200000; n++ {
		body := fmt.Sprint(n)
		if got, want := loincCheckDigit(body), loincCheckDigitLuhn(body); got != want {
			t.Fatalf("check digit of %s = %c, Luhn gives %c", body, got, want)
		}
	}
}

func TestValidLOINC(t *testing.T) {
	tests := []struct {
		code string
		want bool
	}{
		{code: "2345-7", want: true},
		{code: "2160-0", want: true},
		{code: "718-7", want: true},
		{code: "17861-6", want: true},
		{code: "13457-7", want: true},
		{code: "4548-4", want: true},
		{code: "2345-8", want: false},
		{code: "2354-7", want: false},
		{code: "2345", want: false},
		{code: "2345-", want: false},
		{code: "-7", want: false},
		{code: "23a5-7", want: false},
		{code: "2345-77", want: false},
		{code: "", want: false},
	}
	for _, tc := range tests {
		if got := ValidLOINC(tc.code); got != tc.want {
			t.Errorf("ValidLOINC(%q) = %v, want %v", tc.code, got, tc.want)
		}
	}
}

func TestToCanonical(t *testing.T) {
	tests := []struct {
		name  string
		code  string
		value float64
		unit  string
		want  float64
		tol   float64
	}{
		{name: "glucose canonical", code: "2345-7", value: 99, unit: "mg/dL", want: 99, tol: 0},
		{name: "glucose mmol/L", code: "2345-7", value: 5.5, unit: "mmol/L", want: 99.088, tol: 1e-9},
		{name: "glucose mmol/l lower case", code: "2345-7", value: 5.5, unit: " mmol/l ", want: 99.088, tol: 1e-9},
		{name: "creatinine umol/L", code: "2160-0", value: 88.42, unit: "umol/L", want: 1.0, tol: 1e-12},
		{name: "creatinine µmol/L", code: "2160-0", value: 176.84, unit: "µmol/L", want: 2.0, tol: 1e-12},
		{name: "HbA1c IFCC", code: "4548-4", value: 48, unit: "mmol/mol", want: 6.54304, tol: 1e-9},
		{name: "HbA1c IFCC zero keeps offset", code: "4548-4", value: 0, unit: "mmol/mol", want: 2.152, tol: 1e-12},
		{name: "haemoglobin g/L", code: "718-7", value: 140, unit: "g/L", want: 14, tol: 1e-12},
		{name: "haemoglobin mmol/L", code: "718-7", value: 8.7, unit: "mmol/L", want: 14.0157, tol: 1e-9},
		{name: "urea nitrogen mmol/L", code: "3094-0", value: 5, unit: "mmol/L", want: 14.005, tol: 1e-9},
		{name: "calcium mmol/L", code: "17861-6", value: 2.5, unit: "mmol/L", want: 10.02, tol: 1e-9},
		{name: "cholesterol mmol/L", code: "2093-3", value: 5.17, unit: "mmol/L", want: 199.9239, tol: 1e-9},
		{name: "triglycerides mmol/L", code: "2571-8", value: 1.7, unit: "mmol/L", want: 150.569, tol: 1e-9},
		{name: "bilirubin umol/L", code: "1975-2", value: 17.1, unit: "umol/L", want: 1.0, tol: 1e-12},
		{name: "WBC 10^9/L", code: "6690-2", value: 7.2, unit: "x10^9/L", want: 7.2, tol: 0},
		{name: "WBC G/L", code: "6690-2", value: 7.2, unit: "G/L", want: 7.2, tol: 0},
		{name: "WBC per uL", code: "6690-2", value: 7200, unit: "/µL", want: 7.2, tol: 1e-12},
		{name: "platelets K/uL", code: "777-3", value: 250, unit: "K/uL", want: 250, tol: 0},
		{name: "RBC 10^12/L", code: "789-8", value: 4.8, unit: "10^12/L", want: 4.8, tol: 0},
		{name: "haematocrit L/L", code: "4544-3", value: 0.42, unit: "L/L", want: 42, tol: 1e-12},
		{name: "ALT ukat/L", code: "1742-6", value: 0.5, unit: "µkat/L", want: 30, tol: 1e-12},
		{name: "TSH uIU/mL", code: "3016-3", value: 2.1, unit: "µIU/mL", want: 2.1, tol: 0},
		{name: "TSH mIU/L", code: "3016-3", value: 2.1, unit: "mIU/L", want: 2.1, tol: 0},
		{name: "CRP mg/dL", code: "1988-5", value: 1.2, unit: "mg/dl", want: 12, tol: 1e-12},
		{name: "ferritin ug/L", code: "2276-4", value: 80, unit: "ug/L", want: 80, tol: 0},
		{name: "albumin g/L", code: "1751-7", value: 40, unit: "g/L", want: 4, tol: 1e-12},
		{name: "sodium mEq/L", code: "2951-2", value: 140, unit: "mEq/L", want: 140, tol: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			test, ok := ByCode(tc.code)
			if !ok {
				t.Fatalf("ByCode(%q) not found", tc.code)
			}
			got, err := test.ToCanonical(tc.value, tc.unit)
			if err != nil {
				t.Fatalf("ToCanonical(%g, %q): %v", tc.value, tc.unit, err)
			}
			if math.Abs(got-tc.want) > tc.tol {
				t.Errorf("ToCanonical(%g, %q) = %.10g %s, want %.10g", tc.value, tc.unit, got, test.Unit, tc.want)
			}
		})
	}
}

func TestToCanonicalUnknownUnit(t *testing.T) {
	tests := []struct {
		code string
		unit string
	}{
		{code: "2345-7", unit: "furlongs"},
		{code: "2345-7", unit: "g/dL"},   // a real unit, just not one glucose accepts
		{code: "6690-2", unit: "g/L"},    // grams, not giga: case matters
		{code: "2823-3", unit: ""},       // no unit at all
		{code: "4548-4", unit: "mmol/L"}, // HbA1c is not a concentration
		{code: "2160-0", unit: "mmol/mol"},
	}
	for _, tc := range tests {
		t.Run(tc.code+" "+tc.unit, func(t *testing.T) {
			test, _ := ByCode(tc.code)
			_, err := test.ToCanonical(1, tc.unit)
			var uerr *UnknownUnitError
			if !errors.As(err, &uerr) {
				t.Fatalf("ToCanonical(1, %q) error = %v, want *UnknownUnitError", tc.unit, err)
			}
			if uerr.Test != tc.code || uerr.Unit != tc.unit {
				t.Errorf("error = %+v, want Test %q Unit %q", uerr, tc.code, tc.unit)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.code) || !strings.Contains(msg, fmt.Sprintf("%q", tc.unit)) {
				t.Errorf("message %q does not name test %s and unit %q", msg, tc.code, tc.unit)
			}
		})
	}
}

func TestNormalizeUnit(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{in: "µmol/L", want: "umol/L"}, // micro sign U+00B5
		{in: "μmol/L", want: "umol/L"}, // Greek mu U+03BC
		{in: "umol/l", want: "umol/L"},
		{in: "UMOL/L", want: "umol/L"},
		{in: "mcmol/L", want: "umol/L"},
		{in: "mg/dl", want: "mg/dL"},
		{in: "MG/DL", want: "mg/dL"},
		{in: " mg/dL ", want: "mg/dL"},
		{in: "mg %", want: "mg/dL"},
		{in: "g/dl", want: "g/dL"},
		{in: "g/l", want: "g/L"},
		{in: "g/L", want: "g/L"},
		{in: "G/L", want: "10*9/L"},
		{in: "x10^9/L", want: "10*9/L"},
		{in: "10^9/L", want: "10*9/L"},
		{in: "×10⁹/L", want: "10*9/L"},
		{in: "10E9/L", want: "10*9/L"},
		{in: "10*9/L", want: "10*9/L"},
		{in: "K/uL", want: "10*3/uL"},
		{in: "K/µL", want: "10*3/uL"},
		{in: "10^3/uL", want: "10*3/uL"},
		{in: "x10E3/uL", want: "10*3/uL"},
		{in: "10³/µL", want: "10*3/uL"},
		{in: "10^3/mm3", want: "10*3/uL"},
		{in: "T/L", want: "10*12/L"},
		{in: "x10^12/L", want: "10*12/L"},
		{in: "10^6/uL", want: "10*6/uL"},
		{in: "M/uL", want: "10*6/uL"},
		{in: "/µL", want: "/uL"},
		{in: "cells/uL", want: "/uL"},
		{in: "mmol/l", want: "mmol/L"},
		{in: "MMOL/L", want: "mmol/L"},
		{in: "mEq/L", want: "meq/L"},
		{in: "mmol/mol", want: "mmol/mol"},
		{in: "u/l", want: "U/L"},
		{in: "IU/L", want: "U/L"},
		{in: "µkat/L", want: "ukat/L"},
		{in: "mIU/L", want: "m[IU]/L"},
		{in: "µIU/mL", want: "u[IU]/mL"},
		{in: "uIU/ml", want: "u[IU]/mL"},
		{in: "mU/L", want: "mU/L"},
		{in: "ng/ml", want: "ng/mL"},
		{in: "µg/L", want: "ug/L"},
		{in: "mcg/L", want: "ug/L"},
		{in: "mg/l", want: "mg/L"},
		{in: "fl", want: "fL"},
		{in: "µm³", want: "um3"},
		{in: "l/l", want: "L/L"},
		{in: "%", want: "%"},
		{in: "  furlongs/fortnight ", want: "furlongs/fortnight"},
		{in: "Mg/Dl?", want: "Mg/Dl?"},
		{in: "", want: ""},
	}
	for _, tc := range tests {
		if got := NormalizeUnit(tc.in); got != tc.want {
			t.Errorf("NormalizeUnit(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func ptr(v float64) *float64 { return &v }

func TestFlagFor(t *testing.T) {
	withCritical := Test{Code: "x", CriticalLow: ptr(2.5), CriticalHigh: ptr(6.5)}
	withoutCritical := Test{Code: "y"}
	ref := Range{Low: 3.5, High: 5.1}
	tests := []struct {
		name string
		test Test
		v    float64
		want Flag
	}{
		{name: "far below critical low", test: withCritical, v: 1, want: FlagCriticalLow},
		{name: "at critical low", test: withCritical, v: 2.5, want: FlagCriticalLow},
		{name: "just above critical low", test: withCritical, v: 2.5000001, want: FlagLow},
		{name: "just below reference low", test: withCritical, v: 3.4999, want: FlagLow},
		{name: "at reference low", test: withCritical, v: 3.5, want: FlagNormal},
		{name: "inside", test: withCritical, v: 4.2, want: FlagNormal},
		{name: "at reference high", test: withCritical, v: 5.1, want: FlagNormal},
		{name: "just above reference high", test: withCritical, v: 5.1001, want: FlagHigh},
		{name: "just below critical high", test: withCritical, v: 6.4999, want: FlagHigh},
		{name: "at critical high", test: withCritical, v: 6.5, want: FlagCriticalHigh},
		{name: "far above critical high", test: withCritical, v: 12, want: FlagCriticalHigh},
		{name: "no critical low defined", test: withoutCritical, v: 0, want: FlagLow},
		{name: "no critical high defined", test: withoutCritical, v: 1000, want: FlagHigh},
		{name: "no critical, inside", test: withoutCritical, v: 4, want: FlagNormal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.test.FlagFor(tc.v, ref); got != tc.want {
				t.Errorf("FlagFor(%g) = %q, want %q", tc.v, got, tc.want)
			}
		})
	}
}

func TestFlagForEmbeddedData(t *testing.T) {
	tests := []struct {
		code string
		v    float64
		want Flag
	}{
		{code: "2345-7", v: 40, want: FlagCriticalLow},
		{code: "2345-7", v: 69.9, want: FlagLow},
		{code: "2345-7", v: 99, want: FlagNormal},
		{code: "2345-7", v: 126, want: FlagHigh},
		{code: "2345-7", v: 500, want: FlagCriticalHigh},
		{code: "2571-8", v: 0, want: FlagNormal}, // one-sided: no L for triglycerides
		{code: "2571-8", v: 150, want: FlagHigh},
		{code: "2085-9", v: 39, want: FlagLow}, // one-sided: no H for HDL
		{code: "2085-9", v: 300, want: FlagNormal},
	}
	for _, tc := range tests {
		test, _ := ByCode(tc.code)
		if got := test.FlagFor(tc.v, test.Reference); got != tc.want {
			t.Errorf("%s FlagFor(%g) = %q, want %q", tc.code, tc.v, got, tc.want)
		}
	}
}

func TestIsPlausible(t *testing.T) {
	test := Test{Plausible: Range{Low: 0, High: 3000}}
	tests := []struct {
		v    float64
		want bool
	}{
		{v: 0, want: true},
		{v: 3000, want: true},
		{v: 99, want: true},
		{v: -0.001, want: false},
		{v: 3000.001, want: false},
		{v: math.NaN(), want: false},
		{v: math.Inf(1), want: false},
		{v: math.Inf(-1), want: false},
	}
	for _, tc := range tests {
		if got := test.IsPlausible(tc.v); got != tc.want {
			t.Errorf("IsPlausible(%g) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// TestLoadReportsEveryProblem breaks a copy of the embedded data in one way
// per case and checks the loader names the problem; the last case breaks
// several things at once and expects them all.
func TestLoadReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(f *fileJSON)
		want   []string
	}{
		{
			name:   "bad check digit",
			mutate: func(f *fileJSON) { f.Tests[0].Code = "2345-8" },
			want:   []string{`code "2345-8" is not a LOINC code`},
		},
		{
			name:   "duplicate code",
			mutate: func(f *fileJSON) { f.Tests[1].Code = f.Tests[0].Code },
			want:   []string{"code 2345-7 appears more than once"},
		},
		{
			name:   "duplicate mnemonic",
			mutate: func(f *fileJSON) { f.Tests[1].Mnemonic = f.Tests[0].Mnemonic },
			want:   []string{"mnemonic GLU is used by"},
		},
		{
			name: "canonical unit among alternates",
			mutate: func(f *fileJSON) {
				f.Tests[0].Alternates = append(f.Tests[0].Alternates, conversionJSON{Unit: "mg/dL", Factor: ptr(1)})
			},
			want: []string{`unit "mg/dL" is listed more than once`},
		},
		{
			name:   "zero factor",
			mutate: func(f *fileJSON) { f.Tests[0].Alternates[0].Factor = ptr(0) },
			want:   []string{`alternate "mmol/L" has factor 0`},
		},
		{
			name: "factor and divide_by",
			mutate: func(f *fileJSON) {
				f.Tests[0].Alternates[0].DivideBy = ptr(2)
			},
			want: []string{"gives both factor and divide_by"},
		},
		{
			name:   "unnormalized unit",
			mutate: func(f *fileJSON) { f.Tests[0].Unit = "mg/dl" },
			want:   []string{`unit "mg/dl" is not in normalized UCUM form`},
		},
		{
			name:   "reference outside plausible",
			mutate: func(f *fileJSON) { f.Tests[0].Plausible.High = ptr(90) },
			want:   []string{"reference range 70..99 is not inside plausible range 0..90"},
		},
		{
			name:   "critical high inside reference",
			mutate: func(f *fileJSON) { f.Tests[0].CriticalHigh = ptr(90) },
			want:   []string{"critical high 90 is not between reference high 99"},
		},
		{
			name:   "critical low below plausible",
			mutate: func(f *fileJSON) { f.Tests[0].CriticalLow = ptr(-1) },
			want:   []string{"critical low -1 is not between plausible low 0"},
		},
		{
			name:   "missing range bound",
			mutate: func(f *fileJSON) { f.Tests[0].Reference.Low = nil },
			want:   []string{"reference range needs finite low and high"},
		},
		{
			name:   "too few tests",
			mutate: func(f *fileJSON) { f.Tests = f.Tests[:3] },
			want:   []string{"has 3 tests, want at least 25"},
		},
		{
			name: "several problems at once",
			mutate: func(f *fileJSON) {
				f.Tests[0].Code = "2345-8"
				f.Tests[0].Name = ""
				f.Tests[2].Mnemonic = "na"
			},
			want: []string{`code "2345-8"`, "name is empty", `mnemonic "na" is not an upper-case code`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f fileJSON
			if err := json.Unmarshal(testsJSON, &f); err != nil {
				t.Fatal(err)
			}
			tc.mutate(&f)
			data, err := json.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := load(data)
			if err == nil {
				t.Fatalf("load accepted broken data")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if len(c.tests) != 0 {
				t.Errorf("load returned %d tests with an error, want none", len(c.tests))
			}
		})
	}
}

func TestLoadRejectsMalformedJSON(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{name: "syntax", data: `{"tests": [`},
		{name: "unknown field", data: `{"tests": [{"code": "2345-7", "colour": "red"}]}`},
		{name: "wrong type", data: `{"tests": [{"code": 2345}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := load([]byte(tc.data)); err == nil {
				t.Errorf("load(%s) succeeded", tc.data)
			}
		})
	}
}

const (
	readmeBegin = "<!-- tests table: generated by `go test -update`; do not edit -->\n"
	readmeEnd   = "<!-- end tests table -->\n"
)

// TestREADMETable keeps the table in README.md in step with tests.json.
func TestREADMETable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok := strings.Cut(string(readme), readmeBegin)
	if !ok {
		t.Fatalf("README.md lacks the line %q", readmeBegin)
	}
	_, after, ok := strings.Cut(rest, readmeEnd)
	if !ok {
		t.Fatalf("README.md lacks the line %q", readmeEnd)
	}
	want := before + readmeBegin + renderTable(All()) + readmeEnd + after
	if *update {
		if err := os.WriteFile("README.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(readme) != want {
		t.Errorf("README.md test table is out of date; run: go test ./labtests -run TestREADMETable -update")
	}
}

func renderTable(tests []Test) string {
	var b strings.Builder
	b.WriteString("| LOINC | Name | Mnemonic | Unit | Alternates (to canonical) | Reference interval | Critical low | Critical high | Plausible |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range tests {
		var alts []string
		for _, c := range t.Alternates {
			s := fmt.Sprintf("`%s` × %s", c.Unit, num(c.Factor))
			if inv := fmt.Sprintf("%.8g", 1/c.Factor); len(inv) < len(num(c.Factor))-2 {
				s = fmt.Sprintf("`%s` ÷ %s", c.Unit, inv) // a divide_by entry
			}
			if c.Offset != 0 {
				s += fmt.Sprintf(" + %s", num(c.Offset))
			}
			alts = append(alts, s)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | `%s` | %s | %s | %s | %s | %s–%s |\n",
			t.Code, t.Name, t.Mnemonic, t.Unit, strings.Join(alts, "; "),
			refText(t), optNum(t.CriticalLow), optNum(t.CriticalHigh),
			num(t.Plausible.Low), num(t.Plausible.High))
	}
	return b.String()
}

func refText(t Test) string {
	r, p := t.Reference, t.Plausible
	switch {
	case r.Low == p.Low:
		return "≤ " + num(r.High)
	case r.High == p.High:
		return "≥ " + num(r.Low)
	default:
		return num(r.Low) + "–" + num(r.High)
	}
}

func optNum(v *float64) string {
	if v == nil {
		return "—"
	}
	return num(*v)
}

func num(v float64) string { return fmt.Sprintf("%.6g", v) }
