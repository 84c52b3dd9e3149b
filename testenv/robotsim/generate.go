package robotsim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/robotcsv"
)

// defaultFileTime is when Generate's robot writes, unless told.
var defaultFileTime = time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)

// GenerateOptions describes one export file for Generate. Zero values take
// the defaults given per field.
type GenerateOptions struct {
	// Version is v1, v2 or v3 (default v2).
	Version string
	// Rows is the number of data lines after the header.
	Rows int
	Seed uint64
	// Robot is the robot id in sample ids (default R001).
	Robot string
	// Time is when the robot writes the file: collection times lie before it
	// (default 2026-01-05T12:00:00Z).
	Time time.Time
	// AlternateUnits reports tests in their first labtests alternate unit.
	AlternateUnits bool
	// Patients is the size of the patient population (default 10000).
	Patients int
	// Corrected is the share of v3 results re-sent later in the file with
	// status corrected (0: 5%, negative: none). v1 and v2 send none.
	Corrected float64
	// Malformed is the probability that a row is malformed, of a kind drawn
	// from MalformedKinds (nil: every kind).
	Malformed      float64
	MalformedKinds []MalformedKind
	// TruncatedLastLine cuts the last line short.
	TruncatedLastLine bool
}

// Generate streams one robot export to w: the version's header and
// opts.Rows data lines, deterministic for the options. It holds at most
// 64 KiB of the file in memory, so it can write files of any size.
func Generate(w io.Writer, opts GenerateOptions) (Stats, error) {
	if opts.Version == "" {
		opts.Version = "v2"
	}
	if opts.Robot == "" {
		opts.Robot = "R001"
	}
	if opts.Time.IsZero() {
		opts.Time = defaultFileTime
	}
	if opts.Patients == 0 {
		opts.Patients = defaultPatients
	}
	var errs []error
	v, ok := robotcsv.ByName(opts.Version)
	if !ok {
		errs = append(errs, fmt.Errorf("unknown version %q", opts.Version))
	}
	if opts.Rows < 0 {
		errs = append(errs, fmt.Errorf("rows %d is negative", opts.Rows))
	}
	if !names.ValidRobot(opts.Robot) {
		errs = append(errs, fmt.Errorf("robot %q is not R followed by three digits", opts.Robot))
	}
	if opts.Patients < 1 {
		errs = append(errs, fmt.Errorf("patients %d: want at least 1", opts.Patients))
	}
	errs = append(errs, checkProbability("malformed", opts.Malformed), checkKinds(opts.MalformedKinds))
	if err := errors.Join(errs...); err != nil {
		return Stats{}, fmt.Errorf("robotsim: generate: %w", err)
	}
	c, err := loadCatalogue()
	if err != nil {
		return Stats{}, err
	}
	rt := rates{
		abnormal: defaultAbnormal, critical: defaultCritical, corrected: orDefault(opts.Corrected, defaultCorrected),
		malformed: opts.Malformed, kinds: opts.MalformedKinds,
	}
	r := rand.New(rand.NewPCG(opts.Seed, 0x6a09e667f3bcc908))
	g, err := newGen(c, v, r, newPopulation(opts.Seed, opts.Patients), opts.AlternateUnits, rt, opts.Robot+"G", firmware(v, r))
	if err != nil {
		return Stats{}, err
	}
	g.sameFile = true
	bw := bufio.NewWriterSize(w, flushAt)
	st, err := g.writeFile(bw, opts.Rows, opts.Time, opts.TruncatedLastLine && opts.Rows > 0)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return st, fmt.Errorf("robotsim: generate %s file: %w", v.Name, err)
	}
	return st, nil
}

// firmware draws an instrument firmware string whose major is the version.
func firmware(v robotcsv.Version, r *rand.Rand) string {
	return fmt.Sprintf("%s.%d.%d", v.Name[1:], r.IntN(5), r.IntN(20))
}

// orDefault maps 0 to def and a negative value to 0.
func orDefault(v, def float64) float64 {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

func checkProbability(name string, p float64) error {
	if !(p >= 0 && p <= 1) {
		return fmt.Errorf("%s %g is not a probability in [0, 1]", name, p)
	}
	return nil
}

func checkKinds(kinds []MalformedKind) error {
	var errs []error
	for _, k := range kinds {
		known := false
		for _, m := range MalformedKinds() {
			known = known || k == m
		}
		if !known {
			errs = append(errs, fmt.Errorf("unknown malformed kind %q", k))
		}
	}
	return errors.Join(errs...)
}
