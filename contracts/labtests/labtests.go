package labtests

import (
	"bytes"
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

//go:embed tests.json
var testsJSON []byte

// Test is the laboratory's reference data for one reported test.
//
// All numbers are in the canonical unit. A reference bound equal to the
// plausibility bound on the same side means the interval is one-sided (for
// example triglycerides "<= 149 mg/dL"): no value can be flagged on that side.
type Test struct {
	Code       string       // LOINC code, e.g. "2345-7"
	Name       string       // display name
	Mnemonic   string       // lab-internal code used by older robots, e.g. "GLU"
	Unit       string       // canonical UCUM unit
	Alternates []Conversion // other accepted units
	// Plausible bounds the physically possible values; a value outside is
	// impossible and its row is quarantined.
	Plausible Range
	// Reference is the default adult reference interval.
	Reference Range
	// CriticalLow and CriticalHigh are the panic limits; nil means the
	// laboratory defines none on that side.
	CriticalLow, CriticalHigh *float64
}

// Conversion converts a value in Unit to the canonical unit of its test:
// canonical = value*Factor + Offset.
type Conversion struct {
	Unit   string // UCUM unit
	Factor float64
	Offset float64
}

// Range is a closed interval [Low, High].
type Range struct {
	Low, High float64
}

// Flag is the interpretation of a result against its reference interval and
// critical limits.
type Flag string

// The flags a result can carry.
const (
	FlagCriticalLow  Flag = "LL"
	FlagLow          Flag = "L"
	FlagNormal       Flag = "N"
	FlagHigh         Flag = "H"
	FlagCriticalHigh Flag = "HH"
)

// UnknownUnitError reports a unit that is neither the canonical unit of a test
// nor one of its alternates.
type UnknownUnitError struct {
	Test string // LOINC code of the test
	Unit string // the unit as given
}

func (e *UnknownUnitError) Error() string {
	return fmt.Sprintf("labtests: unit %q is not accepted for test %s", e.Unit, e.Test)
}

// catalogue is the parsed embedded data, sorted by code. If the embedded data
// is broken, catalogue is empty and loadErr says why; the package tests fail
// in that case, so a released build always has loadErr == nil.
type catalogue struct {
	tests      []Test
	byCode     map[string]int
	byMnemonic map[string]int
}

var cat, loadErr = load(testsJSON)

// Validate reports every problem found in the embedded reference data. It is
// nil in any build whose tests pass; a service may call it at startup to fail
// fast instead of quarantining every row.
func Validate() error { return loadErr }

// All returns every test, sorted by Code. The slice and its tests are copies.
func All() []Test {
	out := make([]Test, len(cat.tests))
	for i, t := range cat.tests {
		out[i] = t.clone()
	}
	return out
}

// ByCode returns the test with the given LOINC code.
func ByCode(code string) (Test, bool) {
	i, ok := cat.byCode[strings.TrimSpace(code)]
	if !ok {
		return Test{}, false
	}
	return cat.tests[i].clone(), true
}

// ByMnemonic returns the test with the given lab-internal mnemonic, ignoring
// case.
func ByMnemonic(m string) (Test, bool) {
	i, ok := cat.byMnemonic[strings.ToUpper(strings.TrimSpace(m))]
	if !ok {
		return Test{}, false
	}
	return cat.tests[i].clone(), true
}

// ToCanonical converts value from unit (any spelling NormalizeUnit knows) to
// the test's canonical unit. A unit the test does not accept returns an
// *UnknownUnitError.
func (t Test) ToCanonical(value float64, unit string) (float64, error) {
	u := NormalizeUnit(unit)
	if u == t.Unit {
		return value, nil
	}
	for _, c := range t.Alternates {
		if c.Unit == u {
			return value*c.Factor + c.Offset, nil
		}
	}
	return 0, &UnknownUnitError{Test: t.Code, Unit: unit}
}

// IsPlausible reports whether v, in the canonical unit, is a physically
// possible result: finite and within t.Plausible, bounds included. (Go does not
// allow a method named like the Plausible field.)
func (t Test) IsPlausible(v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return false
	}
	return v >= t.Plausible.Low && v <= t.Plausible.High
}

// FlagFor interprets v, a plausible value in the canonical unit, against the
// reference interval ref (usually t.Reference; callers with age- or
// sex-specific intervals pass their own) and the test's critical limits.
// Critical limits are inclusive (v >= CriticalHigh is HH, v <= CriticalLow is
// LL); reference bounds are not (v > ref.High is H, v < ref.Low is L).
func (t Test) FlagFor(v float64, ref Range) Flag {
	switch {
	case t.CriticalHigh != nil && v >= *t.CriticalHigh:
		return FlagCriticalHigh
	case t.CriticalLow != nil && v <= *t.CriticalLow:
		return FlagCriticalLow
	case v > ref.High:
		return FlagHigh
	case v < ref.Low:
		return FlagLow
	default:
		return FlagNormal
	}
}

func (t Test) clone() Test {
	t.Alternates = slices.Clone(t.Alternates)
	if t.CriticalLow != nil {
		v := *t.CriticalLow
		t.CriticalLow = &v
	}
	if t.CriticalHigh != nil {
		v := *t.CriticalHigh
		t.CriticalHigh = &v
	}
	return t
}

// ValidLOINC reports whether code has the LOINC form "digits-checkdigit" and
// its check digit is right. LOINC's Mod 10 algorithm, applied to the digits
// before the hyphen: the digits in odd positions counted from the right form
// a number that is doubled; the digits of that product and the digits in even
// positions are summed; the check digit is what brings the sum to the next
// multiple of ten.
func ValidLOINC(code string) bool {
	body, check, ok := strings.Cut(code, "-")
	if !ok || len(body) == 0 || len(body) > 7 || len(check) != 1 || !allDigits(body) || !allDigits(check) {
		return false
	}
	return loincCheckDigit(body) == check[0]
}

func loincCheckDigit(body string) byte {
	var odd, even []byte
	for i := len(body) - 1; i >= 0; i-- {
		if (len(body)-i)%2 == 1 {
			odd = append([]byte{body[i]}, odd...)
		} else {
			even = append([]byte{body[i]}, even...)
		}
	}
	// Double the number formed by the odd-position digits, digit by digit.
	var doubled []byte
	carry := 0
	for i := len(odd) - 1; i >= 0; i-- {
		d := int(odd[i]-'0')*2 + carry
		doubled = append([]byte{byte('0' + d%10)}, doubled...)
		carry = d / 10
	}
	if carry > 0 {
		doubled = append([]byte{'1'}, doubled...)
	}
	sum := 0
	for _, d := range append(even, doubled...) {
		sum += int(d - '0')
	}
	return byte('0' + (10-sum%10)%10)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// NormalizeUnit maps common spellings of a unit to its UCUM form:
// "µmol/L", "μmol/L" and "umol/l" become "umol/L", "mg/dl" becomes "mg/dL",
// "x10^9/L", "10^9/L" and "G/L" become "10*9/L", "K/uL", "10^3/uL" and
// "x10E3/uL" become "10*3/uL", "mIU/L" becomes "m[IU]/L", and so on. Case is
// ignored except where it carries meaning ("G/L" is giga per litre, "g/L"
// grams per litre). An unknown spelling is returned trimmed but otherwise
// unchanged.
func NormalizeUnit(u string) string {
	t := strings.TrimSpace(u)
	if c, ok := caseSensitiveUnits[t]; ok {
		return c
	}
	if c, ok := foldedUnits[foldUnit(t)]; ok {
		return c
	}
	return t
}

// caseSensitiveUnits are spellings whose meaning depends on case, matched
// before case is folded.
var caseSensitiveUnits = map[string]string{
	"G/L": "10*9/L",  // giga per litre (French-style haematology)
	"T/L": "10*12/L", // tera per litre
}

// foldedUnits maps a folded spelling (see foldUnit) to its UCUM form.
var foldedUnits = map[string]string{
	// mass concentration
	"mg/dl":    "mg/dL",
	"mg%":      "mg/dL",
	"mg/100ml": "mg/dL",
	"g/dl":     "g/dL",
	"g%":       "g/dL",
	"g/100ml":  "g/dL",
	"g/l":      "g/L",
	"mg/l":     "mg/L",
	"ng/ml":    "ng/mL",
	"ug/l":     "ug/L",
	"mcg/l":    "ug/L",
	// substance concentration
	"mmol/l":   "mmol/L",
	"umol/l":   "umol/L",
	"mcmol/l":  "umol/L",
	"mmol/mol": "mmol/mol",
	"meq/l":    "meq/L",
	// catalytic activity
	"u/l":    "U/L",
	"iu/l":   "U/L",
	"ukat/l": "ukat/L",
	// arbitrary (international) units
	"miu/l":    "m[IU]/L",
	"m[iu]/l":  "m[IU]/L",
	"uiu/ml":   "u[IU]/mL",
	"u[iu]/ml": "u[IU]/mL",
	"mu/l":     "mU/L",
	// number concentration
	"10*9/l":    "10*9/L",
	"giga/l":    "10*9/L",
	"10*3/ul":   "10*3/uL",
	"10*3/mm*3": "10*3/uL",
	"10*3/mm3":  "10*3/uL",
	"k/ul":      "10*3/uL",
	"thou/ul":   "10*3/uL",
	"10*12/l":   "10*12/L",
	"10*6/ul":   "10*6/uL",
	"10*6/mm*3": "10*6/uL",
	"10*6/mm3":  "10*6/uL",
	"m/ul":      "10*6/uL",
	"mill/ul":   "10*6/uL",
	"/ul":       "/uL",
	"cells/ul":  "/uL",
	// volume and fractions
	"fl":   "fL",
	"um3":  "um3",
	"um*3": "um3",
	"l/l":  "L/L",
	"%":    "%",
}

// foldUnit lowercases u, drops spaces, spells micro as "u", and writes powers
// of ten the UCUM way: "x10^9/L", "×10E9/L" and "10⁹/L" all become "10*9/l".
func foldUnit(u string) string {
	var b strings.Builder
	prevSup := false
	for _, r := range u {
		if d, ok := superscriptDigit(r); ok {
			if !prevSup {
				b.WriteByte('*')
			}
			b.WriteRune(d)
			prevSup = true
			continue
		}
		prevSup = false
		switch r {
		case ' ', '\t':
		case 'µ', 'μ': // micro sign U+00B5, Greek mu U+03BC
			b.WriteByte('u')
		case '×':
			b.WriteByte('x')
		case '^':
			b.WriteByte('*')
		default:
			b.WriteString(strings.ToLower(string(r)))
		}
	}
	f := b.String()
	if rest, ok := strings.CutPrefix(f, "x10"); ok {
		f = "10" + rest
	}
	if rest, ok := strings.CutPrefix(f, "10e"); ok {
		f = "10*" + rest
	}
	return f
}

func superscriptDigit(r rune) (rune, bool) {
	switch r {
	case '⁰':
		return '0', true
	case '¹':
		return '1', true
	case '²':
		return '2', true
	case '³':
		return '3', true
	}
	if r >= '⁴' && r <= '⁹' {
		return '4' + (r - '⁴'), true
	}
	return 0, false
}

// The JSON layout of tests.json.
type fileJSON struct {
	Tests []testJSON `json:"tests"`
}

type testJSON struct {
	Code         string           `json:"code"`
	Name         string           `json:"name"`
	Mnemonic     string           `json:"mnemonic"`
	Unit         string           `json:"unit"`
	Alternates   []conversionJSON `json:"alternates"`
	Plausible    rangeJSON        `json:"plausible"`
	Reference    rangeJSON        `json:"reference"`
	CriticalLow  *float64         `json:"critical_low"`
	CriticalHigh *float64         `json:"critical_high"`
}

// conversionJSON gives either factor (with an optional offset) or divide_by,
// which keeps factors such as 1/88.42 exact and readable.
type conversionJSON struct {
	Unit     string   `json:"unit"`
	Factor   *float64 `json:"factor"`
	DivideBy *float64 `json:"divide_by"`
	Offset   float64  `json:"offset"`
}

type rangeJSON struct {
	Low  *float64 `json:"low"`
	High *float64 `json:"high"`
}

// minTests is the least number of tests the catalogue must hold.
const minTests = 25

// load parses and validates data. It collects every problem rather than
// stopping at the first; on any problem it returns an empty catalogue.
func load(data []byte) (catalogue, error) {
	empty := catalogue{byCode: map[string]int{}, byMnemonic: map[string]int{}}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f fileJSON
	if err := dec.Decode(&f); err != nil {
		return empty, fmt.Errorf("labtests: parse tests.json: %w", err)
	}
	var errs []error
	tests := make([]Test, 0, len(f.Tests))
	for i, tj := range f.Tests {
		t, err := tj.toTest()
		if err != nil {
			errs = append(errs, fmt.Errorf("labtests: tests.json entry %d (%s): %w", i, tj.Code, err))
			continue
		}
		tests = append(tests, t)
	}
	if len(f.Tests) < minTests {
		errs = append(errs, fmt.Errorf("labtests: tests.json has %d tests, want at least %d", len(f.Tests), minTests))
	}
	slices.SortFunc(tests, func(a, b Test) int { return cmp.Compare(a.Code, b.Code) })
	c := catalogue{tests: tests, byCode: map[string]int{}, byMnemonic: map[string]int{}}
	for i, t := range tests {
		if _, dup := c.byCode[t.Code]; dup {
			errs = append(errs, fmt.Errorf("labtests: code %s appears more than once", t.Code))
		}
		c.byCode[t.Code] = i
		m := strings.ToUpper(t.Mnemonic)
		if j, dup := c.byMnemonic[m]; dup {
			errs = append(errs, fmt.Errorf("labtests: mnemonic %s is used by %s and %s", t.Mnemonic, tests[j].Code, t.Code))
		}
		c.byMnemonic[m] = i
	}
	if len(errs) > 0 {
		return empty, errors.Join(errs...)
	}
	return c, nil
}

// toTest converts one entry and checks it on its own; the error joins every
// problem found.
func (tj testJSON) toTest() (Test, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if !ValidLOINC(tj.Code) {
		bad("code %q is not a LOINC code with a valid check digit", tj.Code)
	}
	if strings.TrimSpace(tj.Name) == "" {
		bad("name is empty")
	}
	if tj.Mnemonic == "" || strings.ToUpper(tj.Mnemonic) != tj.Mnemonic || strings.TrimSpace(tj.Mnemonic) != tj.Mnemonic {
		bad("mnemonic %q is not an upper-case code", tj.Mnemonic)
	}
	if tj.Unit == "" || NormalizeUnit(tj.Unit) != tj.Unit {
		bad("unit %q is not in normalized UCUM form (NormalizeUnit gives %q)", tj.Unit, NormalizeUnit(tj.Unit))
	}

	t := Test{Code: tj.Code, Name: tj.Name, Mnemonic: tj.Mnemonic, Unit: tj.Unit}
	seen := map[string]bool{tj.Unit: true}
	for _, cj := range tj.Alternates {
		c := Conversion{Unit: cj.Unit, Offset: cj.Offset}
		switch {
		case cj.Factor != nil && cj.DivideBy != nil:
			bad("alternate %q gives both factor and divide_by", cj.Unit)
		case cj.Factor != nil:
			c.Factor = *cj.Factor
		case cj.DivideBy != nil:
			if *cj.DivideBy > 0 && finite(*cj.DivideBy) {
				c.Factor = 1 / *cj.DivideBy
			}
		default:
			bad("alternate %q gives neither factor nor divide_by", cj.Unit)
		}
		if !(c.Factor > 0) || !finite(c.Factor) || !finite(c.Offset) {
			bad("alternate %q has factor %g and offset %g; want a finite factor > 0", cj.Unit, c.Factor, c.Offset)
		}
		if cj.Unit == "" || NormalizeUnit(cj.Unit) != cj.Unit {
			bad("alternate unit %q is not in normalized UCUM form (NormalizeUnit gives %q)", cj.Unit, NormalizeUnit(cj.Unit))
		}
		if seen[cj.Unit] {
			bad("unit %q is listed more than once (canonical unit %q)", cj.Unit, tj.Unit)
		}
		seen[cj.Unit] = true
		t.Alternates = append(t.Alternates, c)
	}

	var ok bool
	if t.Plausible, ok = tj.Plausible.toRange(); !ok {
		bad("plausible range needs finite low and high")
	}
	if t.Reference, ok = tj.Reference.toRange(); !ok {
		bad("reference range needs finite low and high")
	}
	p, r := t.Plausible, t.Reference
	if !(p.Low < p.High) {
		bad("plausible range %g..%g is empty", p.Low, p.High)
	}
	if !(p.Low <= r.Low && r.Low < r.High && r.High <= p.High) {
		bad("reference range %g..%g is not inside plausible range %g..%g", r.Low, r.High, p.Low, p.High)
	}
	if v := tj.CriticalLow; v != nil {
		if !finite(*v) || *v < p.Low || *v > r.Low {
			bad("critical low %g is not between plausible low %g and reference low %g", *v, p.Low, r.Low)
		}
		t.CriticalLow = v
	}
	if v := tj.CriticalHigh; v != nil {
		if !finite(*v) || *v < r.High || *v > p.High {
			bad("critical high %g is not between reference high %g and plausible high %g", *v, r.High, p.High)
		}
		t.CriticalHigh = v
	}
	return t, errors.Join(errs...)
}

func (rj rangeJSON) toRange() (Range, bool) {
	if rj.Low == nil || rj.High == nil || !finite(*rj.Low) || !finite(*rj.High) {
		return Range{}, false
	}
	return Range{Low: *rj.Low, High: *rj.High}, true
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
