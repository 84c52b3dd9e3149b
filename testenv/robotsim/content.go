package robotsim

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labplatform/platform/contracts/labtests"
	"github.com/labplatform/platform/contracts/robotcsv"
)

// MalformedKind names one way a data row is broken.
type MalformedKind string

// The kinds of malformed rows. Every kind but TruncatedLine can be chosen
// with Faults.Malformed; TruncatedLine is the last line of a file cut short
// by Faults.TruncatedLastLine.
const (
	// FieldCount: a row with one field too few or one too many.
	FieldCount MalformedKind = "field_count"
	// BadNumber: a result that is not a number ("n/a", "<0.5", "###", "1.2.3").
	BadNumber MalformedKind = "bad_number"
	// UnknownTest: a LOINC code (v2, v3) or mnemonic (v1) labtests does not know.
	UnknownTest MalformedKind = "unknown_test"
	// UnknownUnit: a unit the test does not accept (a real unit of another test).
	UnknownUnit MalformedKind = "unknown_unit"
	// OutOfRange: a result outside the test's plausibility bounds.
	OutOfRange MalformedKind = "out_of_range"
	// FutureTimestamp: collected_at one to thirty days after the file was written.
	FutureTimestamp MalformedKind = "future_timestamp"
	// TruncatedLine: the file's last line, cut before its last delimiter and
	// without a line end.
	TruncatedLine MalformedKind = "truncated_line"
)

// MalformedKinds returns the row faults Faults.Malformed chooses from.
func MalformedKinds() []MalformedKind {
	return []MalformedKind{FieldCount, BadNumber, UnknownTest, UnknownUnit, OutOfRange, FutureTimestamp}
}

// MalformedLine is one broken line of a file: Line counts from 1, the
// header being line 1.
type MalformedLine struct {
	Line int           `json:"line"`
	Kind MalformedKind `json:"kind"`
}

// The unknown codes malformed rows carry; the tests check labtests knows
// none of them.
const (
	unknownLOINC    = "99999-9"
	unknownMnemonic = "XYZ"
)

// Default content rates; see Options.
const (
	defaultAbnormal  = 0.06
	defaultCritical  = 0.003
	defaultCorrected = 0.05
	// correctionDelay is how many visits after the original a correction is
	// re-sent: about 300 rows, so usually in a later file.
	correctionDelay = 40
)

// testModel is how one test's values are drawn, in its canonical unit.
type testModel struct {
	t labtests.Test
	// Normal results: mean + sd*z, or for upper one-sided intervals
	// (lipids, CRP) median*exp(sigma*z).
	mean, sd  float64
	logNormal bool
	decimals  int
}

type panel struct {
	name   string
	weight float64
	tests  []string // mnemonics
}

// panels are what a visit orders; weights need not sum to one.
var panels = []panel{
	{name: "BMP", weight: 0.30, tests: []string{"GLU", "BUN", "CREA", "NA", "K", "CL", "HCO3", "CA"}},
	{name: "CMP", weight: 0.12, tests: []string{"GLU", "BUN", "CREA", "NA", "K", "CL", "HCO3", "CA", "ALB", "TP", "ALP", "ALT", "AST", "TBIL"}},
	{name: "CBC", weight: 0.35, tests: []string{"WBC", "RBC", "HGB", "HCT", "MCV", "PLT"}},
	{name: "LIPID", weight: 0.20, tests: []string{"CHOL", "HDL", "LDL", "TRIG"}},
	{name: "HBA1C", weight: 0.10, tests: []string{"HBA1C"}},
	{name: "TSH", weight: 0.08, tests: []string{"TSH"}},
	{name: "FERR", weight: 0.05, tests: []string{"FERR"}},
	{name: "CRP", weight: 0.07, tests: []string{"CRP"}},
}

// catalogue is labtests turned into value models, and the panels as indexes
// into it.
type catalogue struct {
	models      []testModel
	panels      [][]int
	panelWeight []float64
}

var loadCatalogue = sync.OnceValues(func() (*catalogue, error) {
	if err := labtests.Validate(); err != nil {
		return nil, err
	}
	c := &catalogue{}
	index := map[string]int{}
	for _, t := range labtests.All() {
		index[t.Mnemonic] = len(c.models)
		c.models = append(c.models, newTestModel(t))
	}
	for _, p := range panels {
		var idx []int
		for _, m := range p.tests {
			i, ok := index[m]
			if !ok {
				return nil, fmt.Errorf("robotsim: panel %s: labtests has no mnemonic %s", p.name, m)
			}
			idx = append(idx, i)
		}
		c.panels = append(c.panels, idx)
		c.panelWeight = append(c.panelWeight, p.weight)
	}
	if _, ok := labtests.ByCode(unknownLOINC); ok {
		return nil, fmt.Errorf("robotsim: the unknown test code %s is known to labtests", unknownLOINC)
	}
	if _, ok := labtests.ByMnemonic(unknownMnemonic); ok {
		return nil, fmt.Errorf("robotsim: the unknown mnemonic %s is known to labtests", unknownMnemonic)
	}
	return c, nil
})

func newTestModel(t labtests.Test) testModel {
	m := testModel{t: t}
	ref, pl := t.Reference, t.Plausible
	switch {
	case ref.Low <= pl.Low: // upper limit only: right-skewed (lipids, CRP)
		m.logNormal = true
		m.mean = ref.High * 0.6
		m.sd = 0.345 // about 7% above the limit
	case ref.High >= pl.High: // lower limit only (HDL)
		m.mean = ref.Low * 1.4
		m.sd = ref.Low * 0.25
	default:
		m.mean = (ref.Low + ref.High) / 2
		m.sd = (ref.High - ref.Low) / 4
	}
	switch {
	case ref.High >= 100:
		m.decimals = 0
	case ref.High >= 10:
		m.decimals = 1
	default:
		m.decimals = 2
	}
	return m
}

// Patients returns the ids of the population a simulator with this seed and
// population size draws from, most frequent visitors first: patient 0 visits
// the most often. The ids are pseudonymous ("P" and 12 hex digits).
func Patients(seed uint64, n int) []string {
	if n < 1 {
		return nil
	}
	return newPopulation(seed, n).ids
}

// population is a stable set of pseudonymous patients. Each patient has a
// personal offset per test, so their results cluster over visits.
type population struct {
	ids  []string
	seed uint64
}

func newPopulation(seed uint64, n int) *population {
	p := &population{ids: make([]string, n), seed: splitmix(seed ^ 0x9e3779b97f4a7c15)}
	for i := range p.ids {
		p.ids[i] = fmt.Sprintf("P%012X", splitmix(p.seed+uint64(i))&0xFFFFFFFFFFFF)
	}
	return p
}

// pick returns a patient, favouring low indexes: some patients visit often.
func (p *population) pick(r *rand.Rand) int {
	u := r.Float64()
	return int(float64(len(p.ids)) * u * u)
}

// z is patient i's stable offset for test t, roughly standard normal
// (Irwin-Hall of four uniforms).
func (p *population) z(i, t int) float64 {
	h := splitmix(p.seed ^ uint64(i)<<8 ^ uint64(t))
	var sum float64
	for range 4 {
		sum += float64(h&0xFFFF) / 65536
		h >>= 16
	}
	return (sum - 2) * math.Sqrt(3)
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unitPlan is how one robot reports one test: code, unit spelling, and the
// conversion from the canonical unit.
type unitPlan struct {
	code     string // LOINC or mnemonic, per version
	name     string // quoted when it holds the delimiter
	unit     string
	factor   float64 // canonical = reported*factor + offset
	offset   float64
	decimals int
	refLow   string
	refHigh  string
	refRange string
	// wrongUnit is a unit the test does not accept, for UnknownUnit rows.
	wrongUnit string
}

func (u *unitPlan) toReported(canonical float64) float64 {
	return (canonical - u.offset) / u.factor
}

// legacySpellings are how v1 firmware writes units; a spelling is used only
// if labtests.NormalizeUnit maps it back.
var legacySpellings = strings.NewReplacer(
	"10*3/uL", "x10^3/µl", "10*6/uL", "x10^6/µl", "10*9/L", "x10^9/l", "10*12/L", "x10^12/l",
	"umol/L", "µmol/l", "m[IU]/L", "mIU/l", "u[IU]/mL", "µIU/ml", "mg/dL", "mg/dl", "g/dL", "g/dl",
)

func newUnitPlans(c *catalogue, v robotcsv.Version, alternate bool) []unitPlan {
	plans := make([]unitPlan, len(c.models))
	for i, m := range c.models {
		t := m.t
		p := unitPlan{unit: t.Unit, factor: 1, decimals: m.decimals}
		if alternate && len(t.Alternates) > 0 {
			a := t.Alternates[0]
			p.unit, p.factor, p.offset = a.Unit, a.Factor, a.Offset
			p.decimals = sigDecimals(p.toReported(t.Reference.High))
		}
		if v.TestCoding == robotcsv.Mnemonic {
			p.code = t.Mnemonic
			if s := legacySpellings.Replace(p.unit); labtests.NormalizeUnit(s) == p.unit {
				p.unit = s
			}
		} else {
			p.code = t.Code
		}
		p.name = t.Name
		if strings.ContainsAny(p.name, string(v.Delimiter)+`"`) {
			p.name = `"` + strings.ReplaceAll(p.name, `"`, `""`) + `"`
		}
		lo := string(appendDecimal(nil, p.toReported(t.Reference.Low), p.decimals, v.DecimalSeparator))
		hi := string(appendDecimal(nil, p.toReported(t.Reference.High), p.decimals, v.DecimalSeparator))
		p.refLow, p.refHigh, p.refRange = lo, hi, lo+"-"+hi
		p.wrongUnit = "furlong/fortnight"
		for _, u := range []string{"U/L", "fL", "mg/dL", "mmol/L", "%"} {
			if _, err := t.ToCanonical(1, u); err != nil {
				p.wrongUnit = u
				break
			}
		}
		plans[i] = p
	}
	return plans
}

// sigDecimals gives the decimals that show about three significant digits of v.
func sigDecimals(v float64) int {
	if v <= 0 {
		return 2
	}
	return min(max(2-int(math.Floor(math.Log10(v))), 0), 4)
}

func appendDecimal(b []byte, f float64, decimals int, sep byte) []byte {
	n := len(b)
	b = strconv.AppendFloat(b, f, 'f', decimals, 64)
	if sep != '.' {
		if i := bytes.IndexByte(b[n:], '.'); i >= 0 {
			b[n+i] = sep
		}
	}
	return b
}

// rates are the content settings a generator needs.
type rates struct {
	abnormal, critical, corrected, malformed float64
	kinds                                    []MalformedKind
}

// visit is one sample: a patient, a collection time and the tests ordered.
type visit struct {
	sample    string
	patient   int
	collected time.Time
	colText   string
	anaText   string
	tests     []int
	next      int
}

// correction is a result to be re-sent with status corrected.
type correction struct {
	sample  string
	patient int
	test    int
	value   float64
	colText string
	due     uint64 // visit count at which it is sent
}

// gen writes the rows of one robot's exports. It keeps the robot's state
// across files: the visit counter that makes sample ids unique and the
// corrections still to send.
type gen struct {
	v        robotcsv.Version
	loc      *time.Location
	r        *rand.Rand
	cat      *catalogue
	pop      *population
	plans    []unitPlan
	rates    rates
	idPrefix string // robot id and stream letter
	fw       string
	visits   uint64
	pending  []correction
	// fresh are the corrections drawn in the file being written; the
	// simulator releases them into pending once that file is complete, so a
	// correction never lands before its original. With sameFile (Generate)
	// they go to pending at once.
	fresh     []correction
	sameFile  bool
	vis       visit
	now       time.Time
	nowText   string
	buf       []byte
	scratch   []byte
	header    string
	hasStatus bool
}

func newGen(c *catalogue, v robotcsv.Version, r *rand.Rand, pop *population, alternate bool, rt rates, idPrefix, fw string) (*gen, error) {
	loc, err := v.Location()
	if err != nil {
		return nil, err
	}
	if !v.Has(robotcsv.Status) {
		rt.corrected = 0 // v1 and v2 cannot say "corrected": they re-send nothing
	}
	if len(rt.kinds) == 0 {
		rt.kinds = MalformedKinds()
	}
	return &gen{
		v: v, loc: loc, r: r, cat: c, pop: pop, plans: newUnitPlans(c, v, alternate), rates: rt,
		idPrefix: idPrefix, fw: fw, header: v.Header() + "\n", hasStatus: v.Has(robotcsv.Status),
		buf: make([]byte, 0, 80<<10),
	}, nil
}

func (g *gen) formatTime(t time.Time) string {
	return string(t.In(g.loc).AppendFormat(g.scratch[:0], g.v.TimestampLayout))
}

// setNow sets the time the robot writes at: the upper bound of collection
// and analysis times, the time of corrections.
func (g *gen) setNow(t time.Time) {
	g.now = t.Truncate(time.Second)
	g.nowText = g.formatTime(g.now)
}

func (g *gen) newVisit() {
	g.visits++
	v := &g.vis
	b := append(g.scratch[:0], g.idPrefix...)
	n := strconv.AppendUint(nil, g.visits, 10)
	for range 9 - len(n) {
		b = append(b, '0')
	}
	v.sample = string(append(b, n...))
	v.patient = g.pop.pick(g.r)
	v.collected = g.now.Add(-time.Duration(15*60+g.r.IntN(8*3600)) * time.Second)
	analyzed := v.collected.Add(time.Duration(float64(g.now.Sub(v.collected)) * (0.3 + 0.7*g.r.Float64()))).Truncate(time.Second)
	v.colText, v.anaText = g.formatTime(v.collected), g.formatTime(analyzed)
	v.tests, v.next = v.tests[:0], 0
	v.tests = append(v.tests, g.cat.panels[g.pickPanel()]...)
	for _, p := range []float64{0.4, 0.15} {
		if g.r.Float64() < p {
			for _, t := range g.cat.panels[g.pickPanel()] {
				if !slices.Contains(v.tests, t) {
					v.tests = append(v.tests, t)
				}
			}
		}
	}
}

func (g *gen) pickPanel() int {
	var total float64
	for _, w := range g.cat.panelWeight {
		total += w
	}
	u := g.r.Float64() * total
	for i, w := range g.cat.panelWeight {
		if u < w {
			return i
		}
		u -= w
	}
	return len(g.cat.panelWeight) - 1
}

// value draws a canonical result for test ti of patient p: mostly around
// the reference interval, some abnormal, rarely critical; always plausible.
func (g *gen) value(ti, p int) float64 {
	m := &g.cat.models[ti]
	t := &m.t
	ref, pl := t.Reference, t.Plausible
	step := math.Pow(10, -float64(m.decimals))
	u := g.r.Float64()
	var v float64
	switch {
	case u < g.rates.critical && (t.CriticalLow != nil || t.CriticalHigh != nil):
		high := t.CriticalHigh != nil && (t.CriticalLow == nil || g.r.IntN(2) == 0)
		if high {
			v = math.Min(*t.CriticalHigh*(1+0.25*g.r.Float64()), pl.High)
		} else {
			v = math.Max(*t.CriticalLow*(1-0.3*g.r.Float64()), pl.Low)
		}
		return v
	case u < g.rates.critical+g.rates.abnormal:
		width := ref.High - ref.Low
		switch {
		case m.logNormal:
			width = ref.High
		case ref.High >= pl.High:
			width = ref.Low
		}
		floor, ceiling := pl.Low, pl.High
		if t.CriticalLow != nil {
			floor = *t.CriticalLow
		}
		if t.CriticalHigh != nil {
			ceiling = *t.CriticalHigh
		}
		lowOK := ref.Low > pl.Low
		highOK := ref.High < pl.High
		if highOK && (!lowOK || g.r.IntN(3) > 0) {
			v = ref.High + math.Min(width, ceiling-ref.High)*(0.05+0.75*g.r.Float64())
		} else {
			v = ref.Low - math.Min(width, ref.Low-floor)*(0.05+0.45*g.r.Float64())
		}
	default:
		z := 0.5*g.pop.z(p, ti) + 0.866*g.r.NormFloat64()
		if m.logNormal {
			v = m.mean * math.Exp(m.sd*z)
		} else {
			v = m.mean + m.sd*z
		}
	}
	// Only the critical branch may reach a critical limit.
	if t.CriticalHigh != nil {
		v = math.Min(v, *t.CriticalHigh-step)
	}
	if t.CriticalLow != nil {
		v = math.Max(v, *t.CriticalLow+step)
	}
	return math.Min(math.Max(v, pl.Low), pl.High)
}

// row appends one data line to g.buf. A plain row is valid and takes part in
// no correction (the line a truncation will cut).
func (g *gen) row(plain bool) (kind MalformedKind, corrected bool) {
	if !plain && len(g.pending) > 0 && g.pending[0].due <= g.visits {
		c := g.pending[0]
		g.pending = g.pending[1:]
		t := &g.cat.models[c.test].t
		v := math.Min(math.Max(c.value*(0.85+0.3*g.r.Float64()), t.Plausible.Low), t.Plausible.High)
		g.appendRow(c.sample, c.patient, c.test, v, c.colText, g.nowText, robotcsv.StatusCorrected)
		return "", true
	}
	if g.vis.next >= len(g.vis.tests) {
		g.newVisit()
	}
	ti := g.vis.tests[g.vis.next]
	g.vis.next++
	v := g.value(ti, g.vis.patient)
	if !plain && g.rates.malformed > 0 && g.r.Float64() < g.rates.malformed {
		kind = g.rates.kinds[g.r.IntN(len(g.rates.kinds))]
		g.appendMalformed(kind, ti, v)
		return kind, false
	}
	g.appendRow(g.vis.sample, g.vis.patient, ti, v, g.vis.colText, g.vis.anaText, robotcsv.StatusFinal)
	if !plain && g.rates.corrected > 0 && g.r.Float64() < g.rates.corrected {
		c := correction{
			sample: g.vis.sample, patient: g.vis.patient, test: ti, value: v,
			colText: g.vis.colText, due: g.visits + correctionDelay,
		}
		if g.sameFile {
			g.pending = append(g.pending, c)
		} else {
			g.fresh = append(g.fresh, c)
		}
	}
	return "", false
}

// Overrides for malformed rows.
type override struct {
	code, unit, valueText, colText string
}

func (g *gen) appendMalformed(kind MalformedKind, ti int, v float64) {
	p := &g.plans[ti]
	sep := string(g.v.DecimalSeparator)
	var o override
	switch kind {
	case BadNumber:
		o.valueText = []string{"n/a", "<0" + sep + "5", "###", "1" + sep + "2" + sep + "3"}[g.r.IntN(4)]
	case UnknownTest:
		o.code = unknownLOINC
		if g.v.TestCoding == robotcsv.Mnemonic {
			o.code = unknownMnemonic
		}
	case UnknownUnit:
		o.unit = p.wrongUnit
	case OutOfRange:
		pl := g.cat.models[ti].t.Plausible
		o.valueText = string(appendDecimal(nil, p.toReported(pl.High*2+1), p.decimals, g.v.DecimalSeparator))
	case FutureTimestamp:
		o.colText = g.formatTime(g.now.Add(time.Duration(24*3600+g.r.IntN(29*24*3600)) * time.Second))
	}
	start := len(g.buf)
	g.appendRowOverride(g.vis.sample, g.vis.patient, ti, v, g.vis.colText, g.vis.anaText, robotcsv.StatusFinal, o)
	if kind == FieldCount {
		line := g.buf[start : len(g.buf)-1]
		if g.r.IntN(2) == 0 { // drop the last field
			g.buf = append(g.buf[:start+bytes.LastIndexByte(line, g.v.Delimiter)], '\n')
		} else { // one field too many
			g.buf = append(append(g.buf[:len(g.buf)-1], g.v.Delimiter), "extra\n"...)
		}
	}
}

func (g *gen) appendRow(sample string, patient, ti int, v float64, colText, anaText, status string) {
	g.appendRowOverride(sample, patient, ti, v, colText, anaText, status, override{})
}

func (g *gen) appendRowOverride(sample string, patient, ti int, v float64, colText, anaText, status string, o override) {
	p := &g.plans[ti]
	b := g.buf
	for i, c := range g.v.Columns {
		if i > 0 {
			b = append(b, g.v.Delimiter)
		}
		switch c.Field {
		case robotcsv.SampleID:
			b = append(b, sample...)
		case robotcsv.PatientID:
			b = append(b, g.pop.ids[patient]...)
		case robotcsv.Test:
			b = append(b, or(o.code, p.code)...)
		case robotcsv.TestName:
			b = append(b, p.name...)
		case robotcsv.Value:
			if o.valueText != "" {
				b = append(b, o.valueText...)
			} else {
				b = appendDecimal(b, p.toReported(v), p.decimals, g.v.DecimalSeparator)
			}
		case robotcsv.Unit:
			b = append(b, or(o.unit, p.unit)...)
		case robotcsv.RefRange:
			b = append(b, p.refRange...)
		case robotcsv.RefLow:
			b = append(b, p.refLow...)
		case robotcsv.RefHigh:
			b = append(b, p.refHigh...)
		case robotcsv.CollectedAt:
			b = append(b, or(o.colText, colText)...)
		case robotcsv.AnalyzedAt:
			b = append(b, anaText...)
		case robotcsv.Status:
			b = append(b, status...)
		case robotcsv.InstrumentFW:
			b = append(b, g.fw...)
		}
	}
	g.buf = append(b, '\n')
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Stats describes what a generator wrote.
type Stats struct {
	// Rows counts data lines (the header excluded), malformed ones included.
	Rows int `json:"rows"`
	// Valid rows pass every check of the contracts; Corrected of them carry
	// status corrected.
	Valid     int `json:"valid"`
	Malformed int `json:"malformed"`
	Corrected int `json:"corrected"`
	// MalformedLines lists every broken line with its kind.
	MalformedLines []MalformedLine `json:"malformed_lines,omitempty"`
	Bytes          int64           `json:"bytes"`
}

func (s *Stats) add(line int, kind MalformedKind, corrected bool) {
	s.Rows++
	switch {
	case kind != "":
		s.Malformed++
		s.MalformedLines = append(s.MalformedLines, MalformedLine{Line: line, Kind: kind})
	default:
		s.Valid++
		if corrected {
			s.Corrected++
		}
	}
}

const flushAt = 64 << 10

// writeFile streams one export: the header and rows data lines written at
// now. With truncate, the last line is cut before its last delimiter and
// has no line end.
func (g *gen) writeFile(w io.Writer, rows int, now time.Time, truncate bool) (Stats, error) {
	var st Stats
	g.setNow(now)
	g.buf = append(g.buf[:0], g.header...)
	flush := func() error {
		n, err := w.Write(g.buf)
		st.Bytes += int64(n)
		g.buf = g.buf[:0]
		return err
	}
	for i := range rows {
		last := truncate && i == rows-1
		start := len(g.buf)
		kind, corrected := g.row(last)
		if last {
			line := g.buf[start : len(g.buf)-1]
			cut := 1 + g.r.IntN(bytes.LastIndexByte(line, g.v.Delimiter))
			g.buf = g.buf[:start+cut]
			kind = TruncatedLine
		}
		st.add(i+2, kind, corrected)
		if len(g.buf) >= flushAt {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	return st, flush()
}

// takeFresh returns the corrections drawn since the last call.
func (g *gen) takeFresh() []correction {
	c := g.fresh
	g.fresh = nil
	return c
}

// release makes corrections of a complete file due.
func (g *gen) release(c []correction) { g.pending = append(g.pending, c...) }

// writeVisit appends one whole visit (a panel's rows) to w: how a robot's
// plain-file database grows. first is the line number of its first row.
func (g *gen) writeVisit(w io.Writer, now time.Time, first int, st *Stats) error {
	g.setNow(now)
	g.buf = g.buf[:0]
	g.newVisit()
	for i := 0; g.vis.next < len(g.vis.tests); i++ {
		kind, corrected := g.row(false)
		st.add(first+i, kind, corrected)
	}
	n, err := w.Write(g.buf)
	st.Bytes += int64(n)
	return err
}
