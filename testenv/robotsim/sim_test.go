package robotsim

import (
	"bytes"
	"context"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/labtests"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/robotcsv"
)

// allFaults switches every fault on at a low rate.
var allFaults = Faults{
	Malformed: 0.01, TruncatedLastLine: 0.2, SlowWrite: 0.2, SlowWriteDuration: 40 * time.Second,
	TempRename: 0.5, DoneMarker: 0.5, Reexport: 0.2, Empty: 0.1, Large: 0.05, LargeRows: 3000,
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	run := func(seed uint64) (map[string]string, Manifest) {
		s := newTestSim(t, Options{
			Robots: 4, Seed: seed, Tick: 10 * time.Second, FilesPerHour: 60, RowsPerFile: 200,
			Faults: allFaults, DB: DB{Enabled: true, Rotate: 0.05, Truncate: 0.02},
		})
		steps(t, s, 180)
		return tree(t, s.opts.Root), s.Manifest()
	}
	a, ma := run(7)
	b, mb := run(7)
	c, _ := run(8)
	if len(a) < 20 || len(ma.Files) < 20 || len(ma.DB) < 4 {
		t.Fatalf("only %d paths, %d files, %d database series: the test proves little", len(a), len(ma.Files), len(ma.DB))
	}
	if !maps.Equal(a, b) {
		t.Errorf("same seed, different trees:\n%v\n%v", a, b)
	}
	if !reflect.DeepEqual(ma, mb) {
		t.Errorf("same seed, different manifests")
	}
	same := 0
	for p, h := range a {
		if c[p] == h {
			same++
		}
	}
	if same > 0 {
		t.Errorf("seeds 7 and 8 wrote %d identical files", same)
	}
}

func TestContentWithoutFaults(t *testing.T) {
	t.Parallel()
	s := newTestSim(t, Options{
		Robots: 6, Seed: 3, Tick: time.Minute, FilesPerHour: 12, RowsPerFile: 400, AlternateUnitRobots: 0.5,
	})
	steps(t, s, 90)
	m := s.Manifest()
	if len(m.Files) < 60 {
		t.Fatalf("%d files in 1.5 hours of 6 robots at 12 an hour", len(m.Files))
	}
	type key struct{ sample, code string }
	samplePatient := map[string]string{}
	seen := map[key]bool{}
	var total, inRange, abnormal, critical, critTests int
	versions := map[string]int{}
	altUnits := 0
	for _, f := range m.Files {
		if !names.ValidRobot(f.Robot) || !strings.HasPrefix(f.Name, f.Robot+"_") || len(f.Faults) > 0 {
			t.Errorf("file %+v", f)
		}
		if want := f.Robot + "_" + f.Started.Format("20060102T150405"); !strings.HasPrefix(f.Name, want) {
			t.Errorf("%s: want a name starting %s", f.Name, want)
		}
		b := readManifestFile(t, s.opts.Root, f)
		c := checkExport(t, b, f.Started)
		if c.version != f.Version {
			t.Errorf("%s: Detect says %s, manifest %s", f.Path, c.version, f.Version)
		}
		versions[c.version]++
		if len(c.bad) > 0 || f.Malformed > 0 || c.lines != 400 || f.Valid != 400 {
			t.Errorf("%s: %d lines, bad %v, manifest %+v", f.Path, c.lines, c.bad, f.Stats)
		}
		for _, x := range c.rows {
			if p, ok := samplePatient[x.sample]; ok && p != x.patient {
				t.Errorf("%s line %d: sample %s belongs to %s and %s", f.Path, x.line, x.sample, p, x.patient)
			}
			samplePatient[x.sample] = x.patient
			if !strings.HasPrefix(x.sample, f.Robot) {
				t.Errorf("sample %s of %s", x.sample, f.Robot)
			}
			k := key{x.sample, x.test.Code}
			if x.status != robotcsv.StatusCorrected {
				if seen[k] {
					t.Errorf("%s line %d: test %s of sample %s reported twice", f.Path, x.line, x.test.Code, x.sample)
				}
				seen[k] = true
			}
			if labtests.NormalizeUnit(x.unit) != x.test.Unit {
				altUnits++
			}
			total++
			flag := x.test.FlagFor(x.value, x.test.Reference)
			switch flag {
			case labtests.FlagNormal:
				inRange++
			case labtests.FlagCriticalHigh, labtests.FlagCriticalLow:
				critical++
			default:
				abnormal++
			}
			if x.test.CriticalLow != nil || x.test.CriticalHigh != nil {
				critTests++
			}
		}
	}
	if len(versions) != 3 {
		t.Errorf("versions %v, want v1, v2 and v3", versions)
	}
	if altUnits == 0 || altUnits > total*3/4 {
		t.Errorf("%d of %d results in an alternate unit", altUnits, total)
	}
	share := func(n int) float64 { return float64(n) / float64(total) }
	t.Logf("%d results: %.3f in range, %.3f abnormal, %.4f critical", total, share(inRange), share(abnormal), share(critical))
	if share(inRange) < 0.8 {
		t.Errorf("%.3f of results in the reference range, want most", share(inRange))
	}
	if a := share(abnormal); a < 0.04 || a > 0.2 {
		t.Errorf("%.3f of results abnormal, want some", a)
	}
	if c := float64(critical) / float64(critTests); critical == 0 || c > 0.01 {
		t.Errorf("%d critical of %d results with critical limits, want rare but present", critical, critTests)
	}
}

func TestLegacyUnitsResolve(t *testing.T) {
	t.Parallel()
	c, err := loadCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	legacy := 0
	for _, alt := range []bool{false, true} {
		for _, p := range newUnitPlans(c, robotcsv.V1, alt) {
			if _, ok := labtests.ByMnemonic(p.code); !ok {
				t.Errorf("mnemonic %s unknown", p.code)
			}
			if !strings.ContainsAny(p.unit, "µl") {
				continue
			}
			legacy++
			found := false
			for _, m := range c.models {
				if m.t.Mnemonic == p.code {
					_, err := m.t.ToCanonical(1, p.unit)
					found = err == nil
				}
			}
			if !found {
				t.Errorf("%s: legacy unit %q not accepted", p.code, p.unit)
			}
		}
	}
	if legacy == 0 {
		t.Error("no legacy unit spellings on v1")
	}
}

func TestCorrectionsReferToEarlierResults(t *testing.T) {
	t.Parallel()
	// Slow writes overlap files: a correction must still come in a file
	// completed after its original's.
	s := newTestSim(t, Options{Robots: 3, Seed: 11, Tick: time.Minute, FilesPerHour: 10, RowsPerFile: 300,
		Faults: Faults{SlowWrite: 0.5, SlowWriteDuration: 20 * time.Minute}})
	steps(t, s, 240)
	type key struct{ sample, code string }
	final := map[key]bool{}
	corrected, results := 0, 0
	for _, f := range s.Manifest().Files {
		c := checkExport(t, readManifestFile(t, s.opts.Root, f), f.Started)
		n := 0
		for _, x := range c.rows {
			k := key{x.sample, x.test.Code}
			if x.status == robotcsv.StatusCorrected {
				n++
				if !final[k] {
					t.Errorf("%s line %d: corrects %v, which no earlier line reported", f.Path, x.line, k)
				}
				continue
			}
			final[k] = true
		}
		if n != f.Corrected {
			t.Errorf("%s: %d corrected rows, manifest says %d", f.Path, n, f.Corrected)
		}
		if f.Version != "v3" && n > 0 {
			t.Errorf("%s: a %s robot sent corrections", f.Path, f.Version)
		}
		if f.Version == "v3" {
			corrected += n
			results += len(c.rows) - n
		}
	}
	if r := float64(corrected) / float64(results); r < 0.03 || r > 0.07 {
		t.Errorf("%d corrections for %d v3 results (%.3f), want about 5%%", corrected, results, r)
	}
}

func TestMalformedRows(t *testing.T) {
	t.Parallel()
	for _, kind := range MalformedKinds() {
		t.Run(string(kind), func(t *testing.T) {
			s := newTestSim(t, Options{
				Robots: 3, Seed: 5, Tick: time.Minute, FilesPerHour: 12, RowsPerFile: 400,
				Faults: Faults{Malformed: 0.05, MalformedKinds: []MalformedKind{kind}},
			})
			steps(t, s, 30)
			bad := map[string]int{}
			for _, f := range s.Manifest().Files {
				c := checkExport(t, readManifestFile(t, s.opts.Root, f), f.Started)
				checkAgainstManifest(t, f, c)
				for _, r := range c.bad {
					bad[r]++
				}
				bad[f.Version] += len(c.bad)
			}
			if bad[string(kind)] == 0 || len(bad) != 4 {
				t.Errorf("bad lines per reason and version %v, want only %s on v1, v2 and v3", bad, kind)
			}
		})
	}
}

func TestTruncatedLastLine(t *testing.T) {
	t.Parallel()
	s := newTestSim(t, Options{Robots: 3, Seed: 2, Tick: time.Minute, FilesPerHour: 12, RowsPerFile: 50,
		Faults: Faults{TruncatedLastLine: 1}})
	steps(t, s, 30)
	m := s.Manifest()
	if len(m.Files) == 0 {
		t.Fatal("no files")
	}
	for _, f := range m.Files {
		b := readManifestFile(t, s.opts.Root, f)
		c := checkExport(t, b, f.Started)
		checkAgainstManifest(t, f, c)
		if b[len(b)-1] == '\n' || len(c.bad) != 1 || c.bad[51] == "" || !slices.Contains(f.Faults, "truncated_last_line") {
			t.Errorf("%s: ends %q, bad lines %v, faults %v", f.Path, b[len(b)-10:], c.bad, f.Faults)
		}
	}
}

// TestWriteConventions watches one robot's slow file while it is written.
func TestWriteConventions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults Faults
		// growing is the name the file has while it is written.
		growing func(name string) string
		done    bool
	}{
		{name: "slow in place", faults: Faults{SlowWrite: 1}, growing: func(n string) string { return n }},
		{name: "slow temp rename", faults: Faults{SlowWrite: 1, TempRename: 1}, growing: func(n string) string { return "." + n + ".tmp" }},
		{name: "slow done marker", faults: Faults{SlowWrite: 1, DoneMarker: 1}, growing: func(n string) string { return n }, done: true},
		{name: "temp rename and done marker", faults: Faults{TempRename: 1, DoneMarker: 1, SlowWrite: 1, SlowWriteDuration: 5 * time.Second},
			growing: func(n string) string { return "." + n + ".tmp" }, done: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.faults.SlowWriteDuration == 0 {
				tt.faults.SlowWriteDuration = 30 * time.Second
			}
			s := newTestSim(t, Options{Robots: 1, Seed: 4, Tick: time.Second, FilesPerHour: 30, RowsPerFile: 300, Faults: tt.faults})
			dir := filepath.Join(s.opts.Root, "R001")
			// Step to the first file's start.
			var name string
			for range 3600 {
				steps(t, s, 1)
				if m := s.Manifest(); len(m.InFlight) > 0 {
					name = strings.TrimPrefix(m.InFlight[0], "R001/")
					break
				}
			}
			if name == "" {
				t.Fatal("no file started within an hour")
			}
			var sizes []int64
			for i := 0; len(s.Manifest().InFlight) > 0; i++ {
				if i > 60 {
					t.Fatal("the file never completed")
				}
				entries, _ := os.ReadDir(dir)
				var got []string
				for _, e := range entries {
					got = append(got, e.Name())
				}
				if !slices.Equal(got, []string{tt.growing(name)}) {
					t.Fatalf("while writing: folder holds %v, want only %s", got, tt.growing(name))
				}
				fi, err := os.Stat(filepath.Join(dir, tt.growing(name)))
				if err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, fi.Size())
				steps(t, s, 1)
			}
			if len(sizes) < int(tt.faults.SlowWriteDuration/time.Second)-1 || !slices.IsSorted(sizes) || sizes[0] == sizes[len(sizes)-1] {
				t.Errorf("sizes while writing %v: want growth over about %v", sizes, tt.faults.SlowWriteDuration)
			}
			f := s.Manifest().Files[0]
			b := readManifestFile(t, s.opts.Root, f)
			if int64(len(b)) <= sizes[len(sizes)-1] {
				t.Errorf("final size %d, last seen %d", len(b), sizes[len(sizes)-1])
			}
			want := []string{name}
			if tt.done {
				want = append(want, name+".done")
				if f.DoneMarker != "R001/"+name+".done" {
					t.Errorf("manifest done marker %q", f.DoneMarker)
				}
			}
			entries, _ := os.ReadDir(dir)
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
			}
			if !slices.Equal(got, want) {
				t.Errorf("after writing: folder holds %v, want %v", got, want)
			}
			if (f.TempName != "") != (tt.faults.TempRename == 1) || !slices.Contains(f.Faults, "slow_write") {
				t.Errorf("manifest %+v", f)
			}
			if !f.Completed.Equal(f.Started.Add(tt.faults.SlowWriteDuration)) {
				t.Errorf("started %v, completed %v", f.Started, f.Completed)
			}
		})
	}
}

func TestReexport(t *testing.T) {
	t.Parallel()
	s := newTestSim(t, Options{Robots: 2, Seed: 9, Tick: time.Minute, FilesPerHour: 12, RowsPerFile: 100, Faults: Faults{Reexport: 1}})
	steps(t, s, 30)
	m := s.Manifest()
	byPath := map[string]File{}
	dups := 0
	for _, f := range m.Files {
		readManifestFile(t, s.opts.Root, f)
		byPath[f.Path] = f
		if f.DuplicateOf == "" {
			continue
		}
		dups++
		orig, ok := byPath[f.DuplicateOf]
		if !ok || orig.SHA256 != f.SHA256 || orig.Name == f.Name || !slices.Equal(f.Faults, []string{"reexport"}) {
			t.Errorf("re-export %+v of %+v", f, orig)
		}
	}
	if dups == 0 || dups*2 != len(m.Files) {
		t.Errorf("%d re-exports among %d files, want half", dups, len(m.Files))
	}
}

func TestEmptyAndLargeFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults Faults
		check  func(t *testing.T, f File, b []byte)
	}{
		{name: "empty", faults: Faults{Empty: 1}, check: func(t *testing.T, f File, b []byte) {
			if len(b) != 0 || f.Rows != 0 || !slices.Equal(f.Faults, []string{"empty"}) {
				t.Errorf("%s: %d bytes, manifest %+v", f.Path, len(b), f)
			}
		}},
		{name: "large", faults: Faults{Large: 1, LargeRows: 2500}, check: func(t *testing.T, f File, b []byte) {
			c := checkExport(t, b, f.Started)
			if c.lines != 2500 || f.Valid != 2500 || len(c.bad) > 0 || !slices.Equal(f.Faults, []string{"large"}) {
				t.Errorf("%s: %d lines, %d bad, manifest %+v", f.Path, c.lines, len(c.bad), f.Stats)
			}
		}},
		{name: "large re-exported", faults: Faults{Large: 1, LargeRows: 1000, Reexport: 1}, check: func(t *testing.T, f File, b []byte) {
			want := []string{"large"}
			if f.DuplicateOf != "" {
				want = []string{"reexport", "large"}
			}
			if f.Rows != 1000 || !slices.Equal(f.Faults, want) {
				t.Errorf("%s: manifest %+v", f.Path, f)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSim(t, Options{Robots: 2, Seed: 1, Tick: 10 * time.Minute, FilesPerHour: 6, RowsPerFile: 100, Faults: tt.faults})
			steps(t, s, 6)
			m := s.Manifest()
			if len(m.Files) == 0 {
				t.Fatal("no files")
			}
			for _, f := range m.Files {
				tt.check(t, f, readManifestFile(t, s.opts.Root, f))
			}
		})
	}
}

func TestDatabase(t *testing.T) {
	t.Parallel()
	s := newTestSim(t, Options{
		Robots: 2, Seed: 6, Tick: time.Minute, FilesPerHour: -1, Versions: []string{"v1", "v3"},
		DB:     DB{Enabled: true, VisitsPerHour: 120, Rotate: 0.03, Truncate: 0.02},
		Faults: Faults{Malformed: 0.02, MalformedKinds: []MalformedKind{BadNumber, FieldCount, UnknownUnit}},
	})
	path := filepath.Join(s.opts.Root, "R001", "db", "results.db.csv")
	var prev int64
	var lines, rotations, truncations int
	grew := 0
	for range 300 {
		w := steps(t, s, 1)[0]
		if len(w.Files) > 0 || w.Started > 0 {
			t.Fatalf("files with FilesPerHour -1: %+v", w)
		}
		lines += w.DBLines
		rotations += w.DBRotations
		truncations += w.DBTruncations
		fi, err := os.Stat(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		m := s.Manifest()
		cur := m.DB[slices.IndexFunc(m.DB, func(d DBSeries) bool { return d.Robot == "R001" && d.Ended == "" })]
		if cur.Series == 0 && fi.Size() < prev {
			t.Fatalf("the first series shrank from %d to %d bytes", prev, fi.Size())
		}
		if fi.Size() > prev {
			grew++
		}
		prev = fi.Size()
	}
	if grew < 50 || rotations == 0 || truncations == 0 {
		t.Fatalf("grew %d times, %d rotations, %d truncations: want all", grew, rotations, truncations)
	}
	m := s.Manifest()
	sum, malformed, ended := 0, 0, map[string]int{}
	for _, d := range m.DB {
		sum += d.Rows
		malformed += d.Malformed
		ended[d.Ended]++
		if d.Gone {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.opts.Root, filepath.FromSlash(d.Path)))
		if err != nil {
			t.Fatalf("series %+v: %v", d, err)
		}
		f := File{Path: d.Path, Size: d.Bytes, SHA256: d.SHA256, Stats: d.Stats}
		readManifestFile(t, s.opts.Root, f)
		c := checkExport(t, b, testStart.Add(24*time.Hour))
		checkAgainstManifest(t, f, c)
		if c.lines != d.Rows || d.Appends == 0 || bytes.Count(b, []byte("\n")) != d.Rows+1 {
			t.Errorf("series %+v: %d lines", d, c.lines)
		}
	}
	if sum != lines || malformed == 0 {
		t.Errorf("series hold %d lines (%d malformed), steps appended %d", sum, malformed, lines)
	}
	if ended["rotated"] != rotations || ended["truncated"] != truncations || ended[""] != 2 {
		t.Errorf("series ended %v; %d rotations, %d truncations", ended, rotations, truncations)
	}
	// The rotated file is the last rotated series, starting with a header.
	for _, robot := range []string{"R001", "R002"} {
		b, err := os.ReadFile(filepath.Join(s.opts.Root, robot, "db", "results.db.csv.1"))
		if err != nil {
			continue
		}
		first, _, _ := bytes.Cut(b, []byte("\n"))
		if _, err := robotcsv.Detect(string(first)); err != nil {
			t.Errorf("%s rotated file: %v", robot, err)
		}
		live := 0
		for _, d := range m.DB {
			if d.Robot == robot && d.Ended == "rotated" && !d.Gone {
				live++
			}
		}
		if live != 1 {
			t.Errorf("%s: %d rotated series still on disk, want 1", robot, live)
		}
	}
}

func TestDatabaseTruncationShrinks(t *testing.T) {
	t.Parallel()
	s := newTestSim(t, Options{Robots: 1, Seed: 6, Tick: time.Minute, FilesPerHour: -1,
		DB: DB{Enabled: true, VisitsPerHour: 60, Truncate: 0.1}})
	path := filepath.Join(s.opts.Root, "R001", "db", "results.db.csv")
	var prev int64
	shrank := 0
	for range 300 {
		w := steps(t, s, 1)[0]
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		m := s.Manifest()
		cur := m.DB[len(m.DB)-1]
		if fi.Size() != cur.Bytes {
			t.Fatalf("file has %d bytes, its series %d", fi.Size(), cur.Bytes)
		}
		if w.DBTruncations > 0 {
			if fi.Size() >= prev+cur.Bytes-int64(len(robotcsv.V1.Header())+1) {
				t.Errorf("truncated, but %d bytes after %d: the old lines are still there", fi.Size(), prev)
			}
			if fi.Size() < prev {
				shrank++
			}
		} else if fi.Size() < prev {
			t.Errorf("shrank from %d to %d bytes without a truncation", prev, fi.Size())
		}
		prev = fi.Size()
	}
	if shrank == 0 {
		t.Error("never shrank")
	}
}

func TestTargetBytes(t *testing.T) {
	t.Parallel()
	s := newTestSim(t, Options{Robots: 3, Seed: 1, Tick: 10 * time.Minute, FilesPerHour: 6, TargetBytes: 50_000})
	steps(t, s, 6)
	m := s.Manifest()
	if len(m.Files) == 0 {
		t.Fatal("no files")
	}
	for _, f := range m.Files {
		if math.Abs(float64(f.Size)/50_000-1) > 0.1 {
			t.Errorf("%s (%s): %d bytes, want about 50000", f.Path, f.Version, f.Size)
		}
	}
}

func TestOnce(t *testing.T) {
	t.Parallel()
	s := newTestSim(t, Options{Robots: 4, Seed: 1, RowsPerFile: 20, DB: DB{Enabled: true},
		Faults: Faults{SlowWrite: 0.5, SlowWriteDuration: 20 * time.Second}})
	w, err := s.Once(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	m := s.Manifest()
	if len(w.Files) != 4 || len(m.Files) != 4 || len(m.InFlight) != 0 || len(m.DB) != 4 || w.DBLines == 0 {
		t.Fatalf("written %+v, manifest %+v", w, m)
	}
	robots := map[string]bool{}
	for _, f := range m.Files {
		robots[f.Robot] = true
	}
	if len(robots) != 4 {
		t.Errorf("files of robots %v", robots)
	}
}

// TestSampleBaseAndPatients checks that a simulator started with a sample
// base numbers its samples after it (a restarted simulator reuses no id),
// and that Patients lists the population the files draw from, the most
// frequent visitor first.
func TestSampleBaseAndPatients(t *testing.T) {
	t.Parallel()
	const base = 7_000_000
	s := newTestSim(t, Options{Robots: 2, Seed: 5, Patients: 50, RowsPerFile: 300, SampleBase: base})
	if _, err := s.Once(t.Context()); err != nil {
		t.Fatal(err)
	}
	pop := Patients(5, 50)
	if len(pop) != 50 || len(Patients(5, 0)) != 0 {
		t.Fatalf("Patients(5, 50) has %d ids", len(pop))
	}
	index := map[string]int{}
	for i, id := range pop {
		index[id] = i
	}
	visits := map[string]int{}
	for _, f := range s.Manifest().Files {
		c := checkExport(t, readManifestFile(t, s.opts.Root, f), f.Started)
		for _, x := range c.rows {
			n, err := strconv.ParseUint(strings.TrimPrefix(x.sample, f.Robot+"F"), 10, 64)
			if err != nil || n <= base || n > base+1000 {
				t.Errorf("sample %s: want a number above the base %d", x.sample, base)
			}
			if _, ok := index[x.patient]; !ok {
				t.Errorf("patient %s is not in Patients(5, 50)", x.patient)
			}
			visits[x.patient]++
		}
	}
	if visits[pop[0]] <= visits[pop[len(pop)-1]] {
		t.Errorf("rows of the first patient %d, of the last %d: want the first to visit more often", visits[pop[0]], visits[pop[len(pop)-1]])
	}
}

func TestRunFollowsTheClock(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: testStart}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ticks := 0
	s := newTestSim(t, Options{Robots: 2, Seed: 1, Tick: time.Minute, FilesPerHour: 30, RowsPerFile: 20, Clock: clock,
		Progress: func(w Written) {
			ticks++
			if ticks == 120 {
				cancel()
			}
		}})
	if err := s.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := clock.Now(), testStart.Add(120*time.Minute); !got.Equal(want) || !s.Now().Equal(want) {
		t.Errorf("clock at %v, simulation at %v, want %v", got, s.Now(), want)
	}
	if n := len(s.Manifest().Files); n < 60 || n > 180 {
		t.Errorf("%d files in 2 h of 2 robots at 30 an hour", n)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{name: "no root", opts: Options{}, want: []string{"root"}},
		{name: "too many robots", opts: Options{Root: "x", Robots: 1000}, want: []string{"robots 1000"}},
		{name: "unknown version", opts: Options{Root: "x", Versions: []string{"v2", "v9"}}, want: []string{`"v9"`}},
		{name: "bad probabilities", opts: Options{Root: "x", Faults: Faults{Malformed: 2, Empty: -0.5}, DB: DB{Rotate: 1.5}},
			want: []string{"malformed 2", "empty -0.5", "database rotate 1.5"}},
		{name: "unknown kind", opts: Options{Root: "x", Faults: Faults{MalformedKinds: []MalformedKind{"typo"}}}, want: []string{`"typo"`}},
		{name: "sample base too large", opts: Options{Root: "x", SampleBase: 1_000_000_000}, want: []string{"sample base 1000000000"}},
		{name: "negative sizes", opts: Options{Root: "x", RowsPerFile: -1, Tick: -time.Second}, want: []string{"rows per file -1", "tick -1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
