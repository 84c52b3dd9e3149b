package parquetout

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/labplatform/platform/contracts/schema"
)

// labTest is one LOINC test with its canonical UCUM unit and reference range
// (NaN: no limit on that side).
type labTest struct {
	code, name, unit string
	low, high        float64
	// origUnit and factor: the robot reports value/factor in origUnit.
	origUnit string
	factor   float64
}

var nan = math.NaN()

// labTests are 28 common chemistry and haematology tests, sorted by code.
var labTests = func() []labTest {
	t := []labTest{
		{code: "2345-7", name: "Glucose", unit: "mg/dL", low: 70, high: 99, origUnit: "mmol/L", factor: 18.016},
		{code: "2160-0", name: "Creatinine", unit: "mg/dL", low: 0.6, high: 1.3, origUnit: "umol/L", factor: 0.01131},
		{code: "3094-0", name: "Urea nitrogen", unit: "mg/dL", low: 7, high: 20},
		{code: "2951-2", name: "Sodium", unit: "mmol/L", low: 135, high: 145},
		{code: "2823-3", name: "Potassium", unit: "mmol/L", low: 3.5, high: 5.1},
		{code: "2075-0", name: "Chloride", unit: "mmol/L", low: 98, high: 107},
		{code: "2028-9", name: "Carbon dioxide", unit: "mmol/L", low: 22, high: 29},
		{code: "17861-6", name: "Calcium", unit: "mg/dL", low: 8.6, high: 10.3},
		{code: "2885-2", name: "Protein", unit: "g/dL", low: 6.0, high: 8.3},
		{code: "1751-7", name: "Albumin", unit: "g/dL", low: 3.5, high: 5.0},
		{code: "1975-2", name: "Bilirubin.total", unit: "mg/dL", low: 0.1, high: 1.2},
		{code: "6768-6", name: "Alkaline phosphatase", unit: "U/L", low: 44, high: 147},
		{code: "1742-6", name: "Alanine aminotransferase", unit: "U/L", low: 7, high: 56},
		{code: "1920-8", name: "Aspartate aminotransferase", unit: "U/L", low: 10, high: 40},
		{code: "2093-3", name: "Cholesterol", unit: "mg/dL", low: nan, high: 200, origUnit: "mmol/L", factor: 38.67},
		{code: "2571-8", name: "Triglyceride", unit: "mg/dL", low: nan, high: 150},
		{code: "2085-9", name: "Cholesterol in HDL", unit: "mg/dL", low: 40, high: nan},
		{code: "13457-7", name: "Cholesterol in LDL (calculated)", unit: "mg/dL", low: nan, high: 100},
		{code: "4548-4", name: "Hemoglobin A1c", unit: "%", low: nan, high: 5.7},
		{code: "718-7", name: "Hemoglobin", unit: "g/dL", low: 12, high: 17.5},
		{code: "4544-3", name: "Hematocrit", unit: "%", low: 36, high: 50},
		{code: "6690-2", name: "Leukocytes", unit: "10*3/uL", low: 4.5, high: 11},
		{code: "789-8", name: "Erythrocytes", unit: "10*6/uL", low: 4.2, high: 5.9},
		{code: "777-3", name: "Platelets", unit: "10*3/uL", low: 150, high: 450},
		{code: "787-2", name: "MCV", unit: "fL", low: 80, high: 100},
		{code: "3016-3", name: "Thyrotropin", unit: "m[IU]/L", low: 0.4, high: 4.0},
		{code: "2276-4", name: "Ferritin", unit: "ng/mL", low: 24, high: 336},
		{code: "1988-5", name: "C reactive protein", unit: "mg/L", low: nan, high: 10},
	}
	slices.SortFunc(t, func(a, b labTest) int {
		switch {
		case a.code < b.code:
			return -1
		case a.code > b.code:
			return 1
		}
		return 0
	})
	return t
}()

// genConfig shapes generated rows.
type genConfig struct {
	rows, testsPerPatient int
	// nulls leaves analyzed_at and instrument_fw null on some rows, as a mix
	// of schema v2 and v3 rows would; otherwise every row is v3.
	nulls bool
	seed  uint64
}

// benchConfig is the benchmark's file: 800,000 results of 100,000
// patients, eight of the 28 tests each.
var benchConfig = genConfig{rows: 800_000, testsPerPatient: 8, seed: 1}

// generator produces a curated file's rows in batches, sorted by patient_id
// then test_code, from one raw object (source_object constant).
type generator struct {
	cfg     genConfig
	rng     *rand.Rand
	day     time.Time
	row     int   // rows produced
	patient int   // current patient
	tests   []int // indexes into labTests of the current patient, sorted
	next    int   // position in tests
	sample  string
	pid     string
	at      time.Time
}

func newGenerator(cfg genConfig) *generator {
	return &generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.seed, 42)), day: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), patient: -1}
}

const (
	sourceObject     = "robot=R017/date=2026-11-21/R017-results-20261121T060000Z.csv"
	sourceGeneration = 1763704800123456
)

var ingestedAt = time.Date(2026, 11, 21, 6, 5, 0, 0, time.UTC)

// batch returns the next up to n rows, or nil when all rows were produced.
func (g *generator) batch(n int) arrow.RecordBatch {
	n = min(n, g.cfg.rows-g.row)
	if n <= 0 {
		return nil
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema.Arrow())
	defer b.Release()
	b.Reserve(n)
	str := func(name string) *array.StringBuilder { return b.Field(schema.Index(name)).(*array.StringBuilder) }
	f64 := func(name string) *array.Float64Builder { return b.Field(schema.Index(name)).(*array.Float64Builder) }
	i64 := func(name string) *array.Int64Builder { return b.Field(schema.Index(name)).(*array.Int64Builder) }
	ts := func(name string) *array.TimestampBuilder {
		return b.Field(schema.Index(name)).(*array.TimestampBuilder)
	}
	optF64 := func(name string, v float64) {
		if v != v {
			f64(name).AppendNull()
		} else {
			f64(name).Append(v)
		}
	}
	for range n {
		if g.next == len(g.tests) {
			g.nextPatient()
		}
		t := labTests[g.tests[g.next]]
		g.next++
		line := int64(g.row)*7919%int64(g.cfg.rows) + 2 // rows were sorted: lines are scattered
		v3 := !g.cfg.nulls || g.row%3 != 0

		value := g.value(t)
		str(schema.SampleID).Append(g.sample)
		str(schema.PatientID).Append(g.pid)
		str(schema.RobotID).Append("R017")
		str(schema.TestCode).Append(t.code)
		str(schema.TestName).Append(t.name)
		f64(schema.Value).Append(value)
		str(schema.Unit).Append(t.unit)
		if t.origUnit != "" {
			f64(schema.OriginalValue).Append(round(value/t.factor, 3))
			str(schema.OriginalUnit).Append(t.origUnit)
		} else {
			f64(schema.OriginalValue).Append(value)
			str(schema.OriginalUnit).Append(t.unit)
		}
		optF64(schema.RefLow, t.low)
		optF64(schema.RefHigh, t.high)
		str(schema.Flag).Append(flagOf(t, value))
		str(schema.Status).Append(g.status())
		ts(schema.CollectedAt).Append(arrow.Timestamp(g.at.UnixMicro()))
		if v3 {
			ts(schema.AnalyzedAt).Append(arrow.Timestamp(g.at.Add(time.Duration(30+g.rng.IntN(150))*time.Minute + time.Duration(g.rng.IntN(60e6))*time.Microsecond).UnixMicro()))
			str(schema.InstrumentFW).Append("cobas-8000 fw 4.2.1")
			str(schema.SchemaVersion).Append("v3")
		} else {
			ts(schema.AnalyzedAt).AppendNull()
			str(schema.InstrumentFW).AppendNull()
			str(schema.SchemaVersion).Append("v2")
		}
		str(schema.SourceObject).Append(sourceObject)
		i64(schema.SourceGeneration).Append(sourceGeneration)
		i64(schema.SourceLine).Append(line)
		ts(schema.IngestedAt).Append(arrow.Timestamp(ingestedAt.UnixMicro()))
		g.row++
	}
	return b.NewRecordBatch()
}

// nextPatient moves to the next patient: one sample, collected at one
// instant of the day, with testsPerPatient distinct tests in code order.
func (g *generator) nextPatient() {
	g.patient++
	g.pid = fmt.Sprintf("P%07d", g.patient+1)
	g.sample = fmt.Sprintf("S%010d", g.rng.Int64N(1e10))
	g.at = g.day.Add(time.Duration(g.rng.Int64N(int64(24*time.Hour/time.Microsecond))) * time.Microsecond)
	g.tests = g.rng.Perm(len(labTests))[:min(g.cfg.testsPerPatient, len(labTests))]
	slices.Sort(g.tests)
	g.next = 0
}

func (g *generator) value(t labTest) float64 {
	lo, hi := t.low, t.high
	if lo != lo {
		lo = hi / 4
	}
	if hi != hi {
		hi = lo * 2
	}
	span := hi - lo
	v := lo - span/4 + g.rng.Float64()*span*1.5 // about a third outside the range
	if v < 0 {
		v = 0
	}
	return round(v, 2)
}

func (g *generator) status() string {
	switch r := g.rng.IntN(100); {
	case r < 95:
		return "final"
	case r < 99:
		return "preliminary"
	default:
		return "corrected"
	}
}

func flagOf(t labTest, v float64) string {
	switch {
	case t.low == t.low && v < t.low*0.5:
		return "LL"
	case t.low == t.low && v < t.low:
		return "L"
	case t.high == t.high && v > t.high*2:
		return "HH"
	case t.high == t.high && v > t.high:
		return "H"
	}
	return "N"
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}
