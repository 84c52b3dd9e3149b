package robotsim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/labplatform/platform/contracts/robotcsv"
)

// Clock is the simulator's time: Now for the start of the simulation and
// for pacing Run, Sleep for waiting between ticks. Tests pass a fake whose
// Sleep only advances Now.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Defaults of Options.
const (
	defaultRobots        = 100
	defaultFilesPerHour  = 4
	defaultRowsPerFile   = 1000
	defaultPatients      = 10000
	defaultTick          = time.Second
	defaultAltUnits      = 0.25
	defaultSlowWrite     = 30 * time.Second
	defaultLargeRows     = 200_000
	defaultDBVisits      = 120
	maxRobots            = 999
	dbDir                = "db"
	dbFile               = "results.db.csv"
	nameTimeLayout       = "20060102T150405"
	maxSample            = 1_000_000_000
	rotatedSuffix        = ".1"
	doneSuffix           = ".done"
	tempPrefix, tempSufx = ".", ".tmp"
)

// Options configures a Simulator. Root is required; every other zero value
// takes the default given per field.
type Options struct {
	// Root is the directory the robots' export folders are made in:
	// <Root>/<robot>/.
	Root string
	// Robots is the number of robots, R001 upwards (default 100, at most 999).
	Robots int
	// Seed makes the output reproducible: the same seed and options write
	// byte-identical files.
	Seed uint64
	// Start is the simulated time of the first tick (default Clock.Now(),
	// truncated to the second).
	Start time.Time
	// Tick is how far one Step advances simulated time (default 1 s).
	Tick time.Duration
	// FilesPerHour is each robot's mean export rate; exports arrive as a
	// Poisson process, so in bursts (default 4; negative: no files).
	FilesPerHour float64
	// RowsPerFile is the number of data lines per export (default 1000).
	// TargetBytes, when set, overrides it with the row count that gives
	// files of about that size for each robot's version.
	RowsPerFile int
	TargetBytes int64
	// Versions is the firmware mix: robot i runs Versions[i % len] (default
	// v1, v2, v3; repeat a version to weight it).
	Versions []string
	// Patients is the size of the patient population (default 10000).
	Patients int
	// AlternateUnitRobots is the share of robots reporting in alternate units
	// (0: 25%, negative: none).
	AlternateUnitRobots float64
	// Abnormal and Critical are the shares of results drawn outside the
	// reference interval and beyond a critical limit (0: 6% and 0.3%,
	// negative: none).
	Abnormal, Critical float64
	// Corrected is the share of v3 results re-sent later with status
	// corrected (0: 5%, negative: none). v1 and v2 robots have no status
	// column and re-send nothing.
	Corrected float64
	// SampleBase is where each robot's sample numbering starts: the first
	// sample of a stream is number SampleBase+1. A simulator restarted into
	// the same platform takes a base above every number the previous one
	// used, so no sample id is reused with other content (0 to 999,999,999
	// minus the samples it will write; ids have nine digits).
	SampleBase uint64
	Faults     Faults
	DB         DB
	// Clock defaults to the system clock.
	Clock Clock
	// Progress, when set, is called by Run after every tick.
	Progress func(Written)
}

// Faults switches on the ways real robots misbehave. All are off by
// default. Probabilities are per file unless said otherwise.
type Faults struct {
	// Malformed is the probability that a data row (files and database) is
	// malformed, of a kind drawn from MalformedKinds (nil: every kind).
	Malformed      float64
	MalformedKinds []MalformedKind
	// TruncatedLastLine cuts a file's last line short (no line end).
	TruncatedLastLine float64
	// SlowWrite writes a file in place over SlowWriteDuration (default 30 s),
	// a part every tick.
	SlowWrite         float64
	SlowWriteDuration time.Duration
	// TempRename is the share of robots that write .<name>.tmp and rename it.
	TempRename float64
	// DoneMarker is the share of robots that write <name>.done after a file.
	DoneMarker float64
	// Reexport writes a finished file again, byte for byte, under the next name.
	Reexport float64
	// Empty writes a file of zero bytes.
	Empty float64
	// Large writes a file of LargeRows rows (default 200000) at once.
	Large     float64
	LargeRows int
}

// DB configures each robot's append-only "plain file database",
// <Root>/<robot>/db/results.db.csv.
type DB struct {
	Enabled bool
	// VisitsPerHour is the mean rate of appends, one visit's rows each
	// (default 120).
	VisitsPerHour float64
	// Rotate is the probability, per append, that the file is first renamed
	// to results.db.csv.1 (replacing the previous one) and a new file begun.
	Rotate float64
	// Truncate is the probability, per append, that the file is first
	// truncated to nothing and begun again.
	Truncate float64
}

// File is one export in the manifest.
type File struct {
	Robot string `json:"robot"`
	Name  string `json:"name"`
	// Path is relative to Root, with slashes: <robot>/<name>.
	Path    string    `json:"path"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	// Completed is the simulated time the file got its final name and size.
	Completed time.Time `json:"completed"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	Stats
	// Faults lists the file-level faults: slow_write, temp_rename,
	// done_marker, reexport, empty, large, truncated_last_line.
	Faults []string `json:"faults,omitempty"`
	// TempName is the name the file was written under before the rename.
	TempName string `json:"temp_name,omitempty"`
	// DoneMarker is the marker's path, relative to Root.
	DoneMarker string `json:"done_marker,omitempty"`
	// DuplicateOf is the path of the file this one re-exports.
	DuplicateOf string `json:"duplicate_of,omitempty"`
}

// DBSeries is one life of a robot's database file: from the header a new
// file starts with to the rotation or truncation that ends it.
type DBSeries struct {
	Robot  string `json:"robot"`
	Series int    `json:"series"`
	// Path is where the series' bytes are now, relative to Root.
	Path    string    `json:"path"`
	Started time.Time `json:"started"`
	// Ended says how the series ended: "" (still growing), "rotated" or
	// "truncated"; Gone says its bytes no longer exist (truncated, or its
	// rotated file replaced by a later rotation).
	Ended   string    `json:"ended,omitempty"`
	EndedAt time.Time `json:"ended_at,omitzero"`
	Gone    bool      `json:"gone,omitempty"`
	// Appends counts the visits appended; Stats counts their lines (Rows)
	// and the bytes, header included. SHA256 is of every byte of the series.
	Appends int    `json:"appends"`
	SHA256  string `json:"sha256"`
	Stats
}

// Manifest is everything the simulator has written.
type Manifest struct {
	// Files are the complete exports, in the order they were completed.
	Files []File `json:"files"`
	// DB are the database series, in the order they were started.
	DB []DBSeries `json:"db,omitempty"`
	// InFlight are files still being written slowly, relative to Root.
	InFlight []string `json:"in_flight,omitempty"`
}

// Written is what one Step (or Once) did.
type Written struct {
	// At is the simulated time reached.
	At time.Time
	// Files completed in this step.
	Files []File
	// Started counts files begun (slow ones may still be in flight).
	Started  int
	InFlight int
	// DBLines counts database lines appended; DBRotations and DBTruncations
	// the series ended.
	DBLines       int
	DBRotations   int
	DBTruncations int
}

// Simulator writes the exports of a fleet of robots.
type Simulator struct {
	opts     Options
	clock    Clock
	tick     time.Duration
	mu       sync.Mutex
	now      time.Time
	robots   []*robot
	manifest Manifest
}

type robot struct {
	id         string
	dir        string
	version    robotcsv.Version
	sched      *rand.Rand
	gen        *gen
	dbgen      *gen
	rows       int
	tempRename bool
	doneMarker bool
	seq        int
	nextFile   time.Time
	nextDB     time.Time
	inflight   []*pending
	db         *dbSeries
}

type pending struct {
	file    File
	content []byte
	written int
	target  string // absolute path being written
	end     time.Time
	// reexport: write a copy under the next name once complete.
	reexport bool
	// corrections of this file's rows, due once it is complete.
	corrections []correction
}

type dbSeries struct {
	index int // into Manifest.DB
	hash  hash.Hash
}

// New checks opts, makes the robots' export folders and returns a simulator
// at opts.Start. Every problem with the options is reported at once.
func New(opts Options) (*Simulator, error) {
	o, err := withDefaults(opts)
	if err != nil {
		return nil, fmt.Errorf("robotsim: %w", err)
	}
	c, err := loadCatalogue()
	if err != nil {
		return nil, err
	}
	s := &Simulator{opts: o, clock: o.Clock, tick: o.Tick, now: o.Start}
	pop := newPopulation(o.Seed, o.Patients)
	for i := range o.Robots {
		id := fmt.Sprintf("R%03d", i+1)
		v, _ := robotcsv.ByName(o.Versions[i%len(o.Versions)])
		stream := func(n uint64) *rand.Rand { return rand.New(rand.NewPCG(o.Seed, uint64(i)<<4|n)) }
		conv := stream(0)
		alt := conv.Float64() < o.AlternateUnitRobots
		r := &robot{
			id: id, dir: filepath.Join(o.Root, id), version: v, sched: stream(1),
			tempRename: conv.Float64() < o.Faults.TempRename,
			doneMarker: conv.Float64() < o.Faults.DoneMarker,
		}
		fw := firmware(v, conv)
		rt := rates{abnormal: o.Abnormal, critical: o.Critical, corrected: o.Corrected, malformed: o.Faults.Malformed, kinds: o.Faults.MalformedKinds}
		if r.gen, err = newGen(c, v, stream(2), pop, alt, rt, id+"F", fw); err != nil {
			return nil, err
		}
		rt.corrected = 0
		if r.dbgen, err = newGen(c, v, stream(3), pop, alt, rt, id+"D", fw); err != nil {
			return nil, err
		}
		r.gen.visits, r.dbgen.visits = o.SampleBase, o.SampleBase
		r.rows = o.RowsPerFile
		if o.TargetBytes > 0 {
			r.rows = rowsForBytes(c, v, alt, o.TargetBytes)
		}
		if o.FilesPerHour > 0 {
			r.nextFile = s.now.Add(expInterval(r.sched, o.FilesPerHour))
		}
		if o.DB.Enabled {
			r.nextDB = s.now.Add(expInterval(r.dbgen.r, o.DB.VisitsPerHour))
		}
		if err := os.MkdirAll(r.dir, 0o755); err != nil {
			return nil, fmt.Errorf("robotsim: export folder of %s: %w", id, err)
		}
		s.robots = append(s.robots, r)
	}
	return s, nil
}

func withDefaults(o Options) (Options, error) {
	var errs []error
	if o.Root == "" {
		errs = append(errs, errors.New("root directory is required"))
	}
	if o.Robots == 0 {
		o.Robots = defaultRobots
	}
	if o.Robots < 1 || o.Robots > maxRobots {
		errs = append(errs, fmt.Errorf("robots %d: want 1 to %d", o.Robots, maxRobots))
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Start.IsZero() {
		o.Start = o.Clock.Now().UTC().Truncate(time.Second)
	}
	if o.Tick == 0 {
		o.Tick = defaultTick
	}
	if o.Tick < 0 {
		errs = append(errs, fmt.Errorf("tick %v is negative", o.Tick))
	}
	if o.FilesPerHour == 0 {
		o.FilesPerHour = defaultFilesPerHour
	}
	if o.RowsPerFile == 0 {
		o.RowsPerFile = defaultRowsPerFile
	}
	if o.RowsPerFile < 0 || o.TargetBytes < 0 {
		errs = append(errs, fmt.Errorf("rows per file %d and target bytes %d must not be negative", o.RowsPerFile, o.TargetBytes))
	}
	if len(o.Versions) == 0 {
		o.Versions = []string{"v1", "v2", "v3"}
	}
	for _, v := range o.Versions {
		if _, ok := robotcsv.ByName(v); !ok {
			errs = append(errs, fmt.Errorf("unknown version %q", v))
		}
	}
	if o.Patients == 0 {
		o.Patients = defaultPatients
	}
	if o.SampleBase >= maxSample {
		errs = append(errs, fmt.Errorf("sample base %d: want less than %d (sample ids have nine digits)", o.SampleBase, maxSample))
	}
	if o.Patients < 1 {
		errs = append(errs, fmt.Errorf("patients %d: want at least 1", o.Patients))
	}
	o.AlternateUnitRobots = orDefault(o.AlternateUnitRobots, defaultAltUnits)
	o.Abnormal = orDefault(o.Abnormal, defaultAbnormal)
	o.Critical = orDefault(o.Critical, defaultCritical)
	o.Corrected = orDefault(o.Corrected, defaultCorrected)
	f := &o.Faults
	if f.SlowWriteDuration == 0 {
		f.SlowWriteDuration = defaultSlowWrite
	}
	if f.LargeRows == 0 {
		f.LargeRows = defaultLargeRows
	}
	if f.SlowWriteDuration < 0 || f.LargeRows < 0 {
		errs = append(errs, fmt.Errorf("slow write duration %v and large rows %d must not be negative", f.SlowWriteDuration, f.LargeRows))
	}
	if o.DB.VisitsPerHour == 0 {
		o.DB.VisitsPerHour = defaultDBVisits
	}
	if o.DB.VisitsPerHour < 0 {
		errs = append(errs, fmt.Errorf("database visits per hour %g is negative", o.DB.VisitsPerHour))
	}
	for _, p := range []struct {
		name string
		p    float64
	}{
		{name: "alternate unit robots", p: o.AlternateUnitRobots},
		{name: "abnormal", p: o.Abnormal},
		{name: "critical", p: o.Critical},
		{name: "corrected", p: o.Corrected},
		{name: "malformed", p: f.Malformed},
		{name: "truncated last line", p: f.TruncatedLastLine},
		{name: "slow write", p: f.SlowWrite},
		{name: "temp rename", p: f.TempRename},
		{name: "done marker", p: f.DoneMarker},
		{name: "reexport", p: f.Reexport},
		{name: "empty", p: f.Empty},
		{name: "large", p: f.Large},
		{name: "database rotate", p: o.DB.Rotate},
		{name: "database truncate", p: o.DB.Truncate},
	} {
		errs = append(errs, checkProbability(p.name, p.p))
	}
	if f.Empty+f.Large > 1 {
		errs = append(errs, fmt.Errorf("empty %g and large %g add up to more than 1", f.Empty, f.Large))
	}
	errs = append(errs, checkKinds(f.MalformedKinds))
	return o, errors.Join(errs...)
}

// rowsForBytes estimates the rows that make a file of about target bytes
// for a version, from a sample of its rows.
func rowsForBytes(c *catalogue, v robotcsv.Version, alt bool, target int64) int {
	const sample = 2000
	r := rand.New(rand.NewPCG(1, 2))
	g, err := newGen(c, v, r, newPopulation(1, 1000), alt, rates{}, "R000F", "0.0.0")
	if err != nil {
		return defaultRowsPerFile
	}
	st, _ := g.writeFile(io.Discard, sample, time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC), false)
	per := float64(st.Bytes-int64(len(g.header))) / sample
	return max(1, int(float64(target-int64(len(g.header)))/per+0.5))
}

// expInterval draws the gap to the next event of a Poisson process.
func expInterval(r *rand.Rand, perHour float64) time.Duration {
	return time.Duration(r.ExpFloat64() * float64(time.Hour) / perHour)
}

// Now returns the simulated time reached.
func (s *Simulator) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Step advances simulated time by one tick and writes what falls in it:
// files begun, parts of slow files, files completed, database appends.
func (s *Simulator) Step(ctx context.Context) (Written, error) {
	if err := ctx.Err(); err != nil {
		return Written{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = s.now.Add(s.tick)
	w := Written{At: s.now}
	for _, r := range s.robots {
		if err := s.advance(r, &w, true); err != nil {
			return w, err
		}
	}
	w.InFlight = s.inflight()
	return w, nil
}

// Once makes every robot export one file (and append one visit to its
// database, when enabled) at the current simulated time, then ticks, paced
// by the clock, until no file is in flight. No scheduled exports happen
// meanwhile. It is the command's --once.
func (s *Simulator) Once(ctx context.Context) (Written, error) {
	s.mu.Lock()
	w := Written{At: s.now}
	for _, r := range s.robots {
		if err := s.startFile(r, s.now, &w); err != nil {
			s.mu.Unlock()
			return w, err
		}
		if s.opts.DB.Enabled {
			if err := s.appendDB(r, s.now, &w); err != nil {
				s.mu.Unlock()
				return w, err
			}
		}
		if err := s.progress(r, &w); err != nil {
			s.mu.Unlock()
			return w, err
		}
	}
	s.mu.Unlock()
	for {
		s.mu.Lock()
		w.InFlight = s.inflight()
		next := s.now.Add(s.tick)
		s.mu.Unlock()
		if w.InFlight == 0 {
			return w, nil
		}
		if err := s.clock.Sleep(ctx, next.Sub(s.clock.Now())); err != nil {
			return w, err
		}
		s.mu.Lock()
		s.now = next
		w.At = next
		for _, r := range s.robots {
			if err := s.advance(r, &w, false); err != nil {
				s.mu.Unlock()
				return w, err
			}
		}
		s.mu.Unlock()
	}
}

// Run steps the simulation in time with the clock until ctx is done, then
// returns nil; files in flight stay as they are, like a robot switched off.
func (s *Simulator) Run(ctx context.Context) error {
	for {
		next := s.Now().Add(s.tick)
		if err := s.clock.Sleep(ctx, next.Sub(s.clock.Now())); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		w, err := s.Step(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if s.opts.Progress != nil {
			s.opts.Progress(w)
		}
	}
}

// Manifest returns a copy of what has been written so far.
func (s *Simulator) Manifest() Manifest {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := Manifest{Files: slices.Clone(s.manifest.Files), DB: slices.Clone(s.manifest.DB)}
	for _, r := range s.robots {
		for _, p := range r.inflight {
			m.InFlight = append(m.InFlight, p.file.Path)
		}
	}
	return m
}

func (s *Simulator) inflight() int {
	n := 0
	for _, r := range s.robots {
		n += len(r.inflight)
	}
	return n
}

// advance writes robot r's events up to s.now, in time order per stream.
func (s *Simulator) advance(r *robot, w *Written, schedule bool) error {
	for schedule && s.opts.FilesPerHour > 0 && !r.nextFile.After(s.now) {
		t := r.nextFile
		r.nextFile = t.Add(expInterval(r.sched, s.opts.FilesPerHour))
		if err := s.startFile(r, t, w); err != nil {
			return err
		}
	}
	if err := s.progress(r, w); err != nil {
		return err
	}
	for schedule && s.opts.DB.Enabled && !r.nextDB.After(s.now) {
		t := r.nextDB
		r.nextDB = t.Add(expInterval(r.dbgen.r, s.opts.DB.VisitsPerHour))
		if err := s.appendDB(r, t, w); err != nil {
			return err
		}
	}
	return nil
}

func (r *robot) nextName(t time.Time) string {
	r.seq++
	return fmt.Sprintf("%s_%s_%06d.csv", r.id, t.UTC().Format(nameTimeLayout), r.seq)
}

func (r *robot) rel(name string) string { return r.id + "/" + name }

// startFile begins one export at t. Every decision is drawn whatever the
// probabilities, so switching one fault on leaves the others' draws alone.
func (s *Simulator) startFile(r *robot, t time.Time, w *Written) error {
	f := &s.opts.Faults
	t = t.Truncate(time.Second)
	name := r.nextName(t)
	u := r.sched.Float64()
	empty := u < f.Empty
	large := !empty && u < f.Empty+f.Large
	truncate := r.sched.Float64() < f.TruncatedLastLine && !empty && !large
	slow := r.sched.Float64() < f.SlowWrite && !empty && !large
	reexport := r.sched.Float64() < f.Reexport
	file := File{Robot: r.id, Name: name, Path: r.rel(name), Version: r.version.Name, Started: t}
	var faults []string
	add := func(on bool, fault string) {
		if on {
			faults = append(faults, fault)
		}
	}
	add(slow, "slow_write")
	add(r.tempRename, "temp_rename")
	add(r.doneMarker, "done_marker")
	add(empty, "empty")
	add(large, "large")
	add(truncate, "truncated_last_line")
	file.Faults = faults
	target := filepath.Join(r.dir, name)
	if r.tempRename {
		file.TempName = tempPrefix + name + tempSufx
		target = filepath.Join(r.dir, file.TempName)
	}
	p := &pending{file: file, target: target, end: t, reexport: reexport}
	w.Started++
	switch {
	case empty:
		sum := sha256.Sum256(nil)
		p.file.SHA256 = hex.EncodeToString(sum[:])
	case large:
		if err := s.writeLarge(r, p, t); err != nil {
			return err
		}
	default:
		var buf bytes.Buffer
		st, err := r.gen.writeFile(&buf, r.rows, t, truncate)
		if err != nil {
			return fmt.Errorf("robotsim: %s: generate %s: %w", r.id, name, err)
		}
		p.file.Stats, p.content = st, buf.Bytes()
		sum := sha256.Sum256(p.content)
		p.file.SHA256, p.file.Size = hex.EncodeToString(sum[:]), int64(len(p.content))
	}
	p.corrections = r.gen.takeFresh()
	if slow {
		p.end = t.Add(f.SlowWriteDuration)
	}
	r.inflight = append(r.inflight, p)
	return nil
}

// writeLarge streams a large file straight to disk.
func (s *Simulator) writeLarge(r *robot, p *pending, t time.Time) error {
	fh, err := os.Create(p.target)
	if err != nil {
		return fmt.Errorf("robotsim: %s: %w", r.id, err)
	}
	h := sha256.New()
	st, err := r.gen.writeFile(io.MultiWriter(fh, h), s.opts.Faults.LargeRows, t, false)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("robotsim: %s: write %s: %w", r.id, p.file.Name, err)
	}
	p.file.Stats, p.file.Size, p.file.SHA256 = st, st.Bytes, hex.EncodeToString(h.Sum(nil))
	p.written = -1 // already on disk
	return nil
}

// progress writes the part of each in-flight file due by s.now and
// finishes the files whose time is up.
func (s *Simulator) progress(r *robot, w *Written) error {
	keep := r.inflight[:0]
	for _, p := range r.inflight {
		if p.written >= 0 {
			due := len(p.content)
			if p.end.After(s.now) {
				span := p.end.Sub(p.file.Started)
				due = int(int64(len(p.content)) * int64(s.now.Sub(p.file.Started)) / int64(span))
			}
			if err := appendTo(p.target, p.content[p.written:due], p.written == 0); err != nil {
				return fmt.Errorf("robotsim: %s: write %s: %w", r.id, p.file.Name, err)
			}
			p.written = due
		}
		if p.end.After(s.now) {
			keep = append(keep, p)
			continue
		}
		if err := s.finish(r, p, p.end, w); err != nil {
			return err
		}
	}
	clear(r.inflight[len(keep):])
	r.inflight = keep
	return nil
}

// appendTo appends b to path, creating (or emptying) it when create is set.
func appendTo(path string, b []byte, create bool) error {
	flag := os.O_WRONLY | os.O_APPEND
	if create {
		flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	fh, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return err
	}
	_, err = fh.Write(b)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}

// finish renames, marks and records a complete file, and re-exports it
// when that fault was drawn.
func (s *Simulator) finish(r *robot, p *pending, t time.Time, w *Written) error {
	final := filepath.Join(r.dir, p.file.Name)
	if p.file.TempName != "" {
		if err := os.Rename(p.target, final); err != nil {
			return fmt.Errorf("robotsim: %s: rename %s: %w", r.id, p.file.TempName, err)
		}
	}
	if r.doneMarker {
		if err := os.WriteFile(final+doneSuffix, nil, 0o644); err != nil {
			return fmt.Errorf("robotsim: %s: done marker of %s: %w", r.id, p.file.Name, err)
		}
		p.file.DoneMarker = p.file.Path + doneSuffix
	}
	p.file.Completed = t
	r.gen.release(p.corrections)
	s.record(p.file, w)
	if !p.reexport {
		return nil
	}
	name := r.nextName(t)
	dup := p.file
	dup.Name, dup.Path, dup.Started, dup.Completed, dup.DuplicateOf = name, r.rel(name), t, t, p.file.Path
	dup.Faults = []string{"reexport"}
	for _, f := range p.file.Faults { // what the content has, it keeps
		if f == "empty" || f == "large" || f == "truncated_last_line" {
			dup.Faults = append(dup.Faults, f)
		}
	}
	dup.TempName, dup.DoneMarker = "", ""
	target := filepath.Join(r.dir, name)
	if r.tempRename {
		dup.TempName = tempPrefix + name + tempSufx
		dup.Faults = append(dup.Faults, "temp_rename")
		target = filepath.Join(r.dir, dup.TempName)
	}
	if err := copyExport(target, final, p); err != nil {
		return fmt.Errorf("robotsim: %s: re-export %s as %s: %w", r.id, p.file.Name, name, err)
	}
	if r.tempRename {
		if err := os.Rename(target, filepath.Join(r.dir, name)); err != nil {
			return fmt.Errorf("robotsim: %s: rename %s: %w", r.id, dup.TempName, err)
		}
	}
	if r.doneMarker {
		if err := os.WriteFile(filepath.Join(r.dir, name)+doneSuffix, nil, 0o644); err != nil {
			return fmt.Errorf("robotsim: %s: done marker of %s: %w", r.id, name, err)
		}
		dup.Faults = append(dup.Faults, "done_marker")
		dup.DoneMarker = dup.Path + doneSuffix
	}
	s.record(dup, w)
	return nil
}

// copyExport writes p's content to target: from memory, or streamed from
// the complete file src for a large file.
func copyExport(target, src string, p *pending) error {
	if p.written >= 0 {
		return os.WriteFile(target, p.content, 0o644)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(target)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Simulator) record(f File, w *Written) {
	f.Faults = slices.Clone(f.Faults)
	s.manifest.Files = append(s.manifest.Files, f)
	w.Files = append(w.Files, f)
}

// appendDB appends one visit to r's database at t, after rotating or
// truncating it when that is drawn.
func (s *Simulator) appendDB(r *robot, t time.Time, w *Written) error {
	dir := filepath.Join(r.dir, dbDir)
	path := filepath.Join(dir, dbFile)
	rotate := r.dbgen.r.Float64() < s.opts.DB.Rotate
	truncate := r.dbgen.r.Float64() < s.opts.DB.Truncate && !rotate
	if r.db != nil && (rotate || truncate) {
		cur := &s.manifest.DB[r.db.index]
		cur.EndedAt = t
		if rotate {
			if err := os.Rename(path, path+rotatedSuffix); err != nil {
				return fmt.Errorf("robotsim: %s: rotate database: %w", r.id, err)
			}
			for i := range s.manifest.DB { // the previous rotated file is replaced
				if d := &s.manifest.DB[i]; d.Robot == r.id && d.Ended == "rotated" {
					d.Gone = true
				}
			}
			cur.Ended, cur.Path = "rotated", r.rel(dbDir+"/"+dbFile+rotatedSuffix)
			w.DBRotations++
		} else {
			if err := os.Truncate(path, 0); err != nil {
				return fmt.Errorf("robotsim: %s: truncate database: %w", r.id, err)
			}
			cur.Ended, cur.Gone = "truncated", true
			w.DBTruncations++
		}
		r.db = nil
	}
	if r.db == nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("robotsim: %s: database folder: %w", r.id, err)
		}
		series := 0
		for _, d := range s.manifest.DB {
			if d.Robot == r.id {
				series++
			}
		}
		r.db = &dbSeries{index: len(s.manifest.DB), hash: sha256.New()}
		s.manifest.DB = append(s.manifest.DB, DBSeries{
			Robot: r.id, Series: series, Path: r.rel(dbDir + "/" + dbFile), Started: t.Truncate(time.Second),
		})
		if err := appendTo(path, []byte(r.dbgen.header), true); err != nil {
			return fmt.Errorf("robotsim: %s: start database: %w", r.id, err)
		}
		r.db.hash.Write([]byte(r.dbgen.header))
		s.manifest.DB[r.db.index].Bytes = int64(len(r.dbgen.header))
	}
	cur := &s.manifest.DB[r.db.index]
	var buf bytes.Buffer
	before := cur.Rows
	if err := r.dbgen.writeVisit(&buf, t, cur.Rows+2, &cur.Stats); err != nil {
		return err
	}
	if err := appendTo(path, buf.Bytes(), false); err != nil {
		return fmt.Errorf("robotsim: %s: append to database: %w", r.id, err)
	}
	r.db.hash.Write(buf.Bytes())
	cur.SHA256 = hex.EncodeToString(r.db.hash.Sum(nil))
	cur.Appends++
	w.DBLines += cur.Rows - before
	return nil
}
