package stack

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/labtests"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/robotcsv"
	"github.com/labplatform/platform/testenv/audit"
	"github.com/labplatform/platform/testenv/issuer"
)

// The case study's load (ARCHITECTURE.md): 100 robots, each exporting 4
// files of 100 MB an hour.
const (
	CaseRobots       = 100
	CaseFilesPerHour = 4.0
	CaseFileBytes    = 100_000_000
)

// CaseBytesPerSecond is the case's byte rate: 100 x 4 x 100 MB an hour,
// about 11.1 MB/s.
const CaseBytesPerSecond = CaseRobots * CaseFilesPerHour * CaseFileBytes / 3600.0

// LoadOptions shape a load run: robots export files at a multiple of the
// case's per-robot rate for a while, and every file's end-to-end latency is
// measured, from the moment the robot completed it to the moment its
// results are visible through mobile-api.
type LoadOptions struct {
	// Stack configures the services (Bin and Dir are required). Robots
	// defaults to the case's 100; FilesPerHour, Rows, RobotArgs and
	// RobotsFor are set by the load run. Patients defaults to 100,000.
	Stack Options
	// Multiple is how many times the case's per-robot rate each robot
	// exports at: 4 x Multiple files an hour (default 10).
	Multiple float64
	// FileSize is each export's size in bytes (default 1 MB; the case has
	// 100 MB). The run reports its load both as a multiple of the case's
	// file rate and of its byte rate.
	FileSize int64
	// For is how long the robots write (default 10 minutes).
	For time.Duration
	// Drain bounds the wait, after the robots stopped, for every file to
	// become visible (default For, at least 2 minutes).
	Drain time.Duration
	// AuditTimeout bounds the settling (ingest, lineage, BigQuery loads)
	// and the audit after the drain (default 3 x For, at least 10
	// minutes): the BigQuery emulator loads about 1,000 rows/s.
	AuditTimeout time.Duration
	// LatencyBound is the p95 latency beyond which the run is not
	// sustained (default 60 s: the case wants results visible within a
	// minute of a file landing).
	LatencyBound time.Duration
	// Poll is how often the robots' folders are listed and pending files
	// probed through the API (default 1 s).
	Poll time.Duration
	// Probes is how many rows of each file are probed (default 3): the
	// file is visible when all of them are.
	Probes int
	// MaxRequests bounds the API requests of one poll (default 60), oldest
	// files first, so probing a large backlog does not become load itself.
	MaxRequests int
	// Report is how often a progress line is written (default 30 s).
	Report time.Duration
	// MinFreeDisk and MinFreeMemory are what the run leaves free: it
	// refuses to start when the estimated data does not fit on the disk
	// of Stack.Dir, and stops the robots early when free disk or available
	// memory falls below them (defaults 5 GB and 2 GB).
	MinFreeDisk, MinFreeMemory int64
	// KeepSources keeps the robots' files after their results are
	// visible. By default the run deletes each one then, as a share's
	// retention would: ingest leaves shipped files in place.
	KeepSources bool
	// Discard, after the run, deletes the robots' folder and the
	// platform's objects (raw, curated, quarantine), so successive runs of
	// a breaking-point search do not fill the disk.
	Discard bool
}

func (o *LoadOptions) defaults() {
	if o.Stack.Robots == 0 {
		o.Stack.Robots = CaseRobots
	}
	if o.Multiple == 0 {
		o.Multiple = 10
	}
	if o.FileSize == 0 {
		o.FileSize = 1_000_000
	}
	if o.For == 0 {
		o.For = 10 * time.Minute
	}
	if o.Drain == 0 {
		o.Drain = max(o.For, 2*time.Minute)
	}
	if o.AuditTimeout == 0 {
		o.AuditTimeout = max(10*time.Minute, 3*o.For)
	}
	if o.LatencyBound == 0 {
		o.LatencyBound = time.Minute
	}
	if o.Poll == 0 {
		o.Poll = time.Second
	}
	if o.Probes == 0 {
		o.Probes = 3
	}
	if o.MaxRequests == 0 {
		o.MaxRequests = 60
	}
	if o.Report == 0 {
		o.Report = 30 * time.Second
	}
	if o.MinFreeDisk == 0 {
		o.MinFreeDisk = 5_000_000_000
	}
	if o.MinFreeMemory == 0 {
		o.MinFreeMemory = 2_000_000_000
	}
}

// Estimates used to bound a run before it starts.
const (
	// diskPerCSVByte is the disk a CSV byte takes: the robot's file (until
	// its results are visible), the raw object, the Parquet, quarantine
	// and BigQuery copies, with room to spare.
	diskPerCSVByte = 3
	// loadPatients is the default population of a load run: a large
	// lab's, so that the simulator's most frequent patient (about
	// 1/sqrt(patients) of the visits) does not turn every file's summary
	// batch into a contest for one document.
	loadPatients = 100_000
)

// Latency summarises the files' end-to-end latencies.
type Latency struct {
	P50  time.Duration `json:"p50_ns"`
	P95  time.Duration `json:"p95_ns"`
	P99  time.Duration `json:"p99_ns"`
	Max  time.Duration `json:"max_ns"`
	Mean time.Duration `json:"mean_ns"`
	// Censored counts files never seen visible: their latency is counted as
	// the time from their completion to the end of the drain, a lower bound.
	Censored int `json:"censored"`
}

// BacklogSample is the state of the run at one moment.
type BacklogSample struct {
	At time.Duration `json:"at_ns"`
	// Written are the complete files seen so far, Visible those whose
	// results the API shows, Backlog the difference.
	Written int `json:"written"`
	Visible int `json:"visible"`
	Backlog int `json:"backlog"`
}

// LoadResult is what a load run measured.
type LoadResult struct {
	Robots   int           `json:"robots"`
	Multiple float64       `json:"multiple"`
	FileSize int64         `json:"file_size"`
	For      time.Duration `json:"for_ns"`
	Workers  int           `json:"workers"`
	Patients int           `json:"patients"`
	// FileMultiple and ByteMultiple are the offered load as multiples of the
	// case's file rate (400 files an hour) and byte rate (11.1 MB/s).
	FileMultiple float64 `json:"file_multiple"`
	ByteMultiple float64 `json:"byte_multiple"`
	// Files, Rows and Bytes are what the robots wrote (their manifest).
	Files int   `json:"files"`
	Rows  int64 `json:"rows"`
	Bytes int64 `json:"bytes"`
	// Visible counts the files whose probe rows the API showed; Unprobed
	// the files no probe row could be read from.
	Visible  int     `json:"visible"`
	Unprobed int     `json:"unprobed"`
	Latency  Latency `json:"latency"`
	// OfferedMBPerS is what the robots wrote per second of For; FilesPerS,
	// RowsPerS and MBPerS what became visible, per second from the first
	// file's completion to the last file's visibility.
	OfferedMBPerS float64 `json:"offered_mb_per_s"`
	FilesPerS     float64 `json:"files_per_s"`
	RowsPerS      float64 `json:"rows_per_s"`
	MBPerS        float64 `json:"mb_per_s"`
	// Backlog is sampled about 30 times over the run; BacklogGrowing says
	// it still grew over the second half of the writing.
	Backlog        []BacklogSample `json:"backlog"`
	BacklogGrowing bool            `json:"backlog_growing"`
	// APIErrors counts probe requests answered neither 200 nor 404.
	APIErrors int `json:"api_errors"`
	// Usage is the CPU time and peak memory of each service and of the
	// emulators' process.
	Usage []ProcUsage `json:"usage"`
	// Aborted says why the robots were stopped before For (a resource
	// bound); empty when they ran the whole time.
	Aborted string `json:"aborted,omitempty"`
	// Audit is the invariants' report once everything settled; nil when
	// the platform did not settle within AuditTimeout.
	Audit *audit.Report `json:"audit"`
	// LatencyBound is the bound p95 was held to; Reasons say why the run
	// was not sustained (empty: sustained).
	LatencyBound time.Duration `json:"latency_bound_ns"`
	Reasons      []string      `json:"reasons"`
	Took         time.Duration `json:"took_ns"`
}

// Sustained reports whether the platform kept up with the load.
func (r *LoadResult) Sustained() bool { return len(r.Reasons) == 0 }

// Load runs the stack on p under a load and measures it: robots write for
// opts.For, every complete file's probe rows are polled through mobile-api
// until they show, then the platform settles and the invariants of package
// audit are checked. It writes progress and a report to w. The error wraps
// ErrInvariant when an invariant fails; a load the platform did not keep
// up with is not an error (see LoadResult.Reasons).
func Load(ctx context.Context, p config.Platform, iss *issuer.Issuer, opts LoadOptions, w io.Writer) (*LoadResult, error) {
	opts.defaults()
	o := opts.Stack
	o.FilesPerHour = CaseFilesPerHour * opts.Multiple
	o.RobotsFor = opts.For
	// Every robot writes .<name>.tmp and renames it when complete: the
	// final name appears with the last byte, so its mtime is the moment
	// the file was complete.
	o.RobotArgs = []string{"-temp-rename=1", "-file-size=" + strconv.FormatInt(opts.FileSize, 10)}
	csvBytes := float64(o.Robots) * o.FilesPerHour * opts.For.Hours() * float64(opts.FileSize)
	if o.Patients == 0 {
		o.Patients = loadPatients
	}
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if free, err := freeDisk(o.Dir); err != nil {
		return nil, err
	} else if need := int64(csvBytes * diskPerCSVByte); need > free-opts.MinFreeDisk {
		return nil, fmt.Errorf("load: the run would write about %.1f GB of CSV, needing about %.1f GB of disk under %s, which has %.1f GB free (%.1f GB kept free): lower the multiple, the file size or the duration",
			csvBytes/1e9, float64(need)/1e9, o.Dir, float64(free)/1e9, float64(opts.MinFreeDisk)/1e9)
	}
	r := &LoadResult{
		Robots: o.Robots, Multiple: opts.Multiple, FileSize: opts.FileSize, For: opts.For, Workers: o.Workers, Patients: o.Patients,
		FileMultiple: float64(o.Robots) * o.FilesPerHour / (CaseRobots * CaseFilesPerHour),
		ByteMultiple: float64(o.Robots) * o.FilesPerHour * float64(opts.FileSize) / 3600 / CaseBytesPerSecond,
		LatencyBound: opts.LatencyBound,
	}
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(w, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	say("load: %d robots x %g files/h of %s for %v (%.3gx the case's file rate, %.3gx its bytes: %.2f of %.1f MB/s); %d process workers; %d patients",
		o.Robots, o.FilesPerHour, FormatBytes(opts.FileSize), opts.For, r.FileMultiple, r.ByteMultiple, r.ByteMultiple*CaseBytesPerSecond/1e6, CaseBytesPerSecond/1e6, o.Workers, o.Patients)
	s, err := Start(ctx, p, iss, o)
	if err != nil {
		return nil, err
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		say("stopping the services")
		return s.Stop()
	}
	defer func() { _ = stop() }()

	l, err := newLoadRun(s, opts, start)
	if err != nil {
		return nil, err
	}
	if err := l.run(ctx, r, say); err != nil {
		return r, (&demo{s: s}).explain(err)
	}
	say("%d of %d files visible; settling and checking the invariants", r.Visible, r.Files)
	actx, cancel := context.WithTimeout(ctx, opts.AuditTimeout)
	rep, aerr := (&demo{s: s, p: p, poll: 500 * time.Millisecond, say: say}).settleAndAudit(actx)
	cancel()
	switch {
	case aerr == nil:
		r.Audit = rep
	case actx.Err() != nil && ctx.Err() == nil:
		say("the platform did not settle within %v: %v", opts.AuditTimeout, aerr)
	default:
		return r, aerr
	}
	r.Usage = l.meter.usage()
	r.Reasons = reasons(r)
	r.Took = time.Since(start)
	serr := stop()
	if opts.Discard {
		serr = errors.Join(serr, discard(ctx, p, filepath.Join(o.Dir, robotsDir)))
	}
	if err := r.Write(w); err != nil {
		return r, err
	}
	if r.Audit != nil && !r.Audit.OK() {
		if werr := r.Audit.Write(w); werr != nil {
			return r, werr
		}
		return r, errors.Join(fmt.Errorf("%w: %d violations after the load", ErrInvariant, len(r.Audit.Violations)), serr)
	}
	return r, serr
}

// reasons says why a run was not sustained.
func reasons(r *LoadResult) []string {
	var out []string
	if r.Aborted != "" {
		out = append(out, "robots stopped early: "+r.Aborted)
	}
	if r.Files == 0 {
		out = append(out, "no file was written")
	}
	if missing := r.Files - r.Visible; missing > 0 {
		out = append(out, fmt.Sprintf("%d of %d files not visible by the end of the drain", missing, r.Files))
	}
	if r.Unprobed > 0 {
		out = append(out, fmt.Sprintf("%d files without a row to probe", r.Unprobed))
	}
	if r.Latency.P95 > r.LatencyBound {
		out = append(out, fmt.Sprintf("p95 latency %.1fs over the %v bound", r.Latency.P95.Seconds(), r.LatencyBound))
	}
	if r.BacklogGrowing {
		out = append(out, "the backlog still grew over the second half of the writing")
	}
	if r.Audit == nil {
		out = append(out, "the platform did not settle: invariants not checked")
	} else if !r.Audit.OK() {
		out = append(out, fmt.Sprintf("%d invariant violations", len(r.Audit.Violations)))
	}
	return out
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// summarize computes the latency figures of the visible files' latencies
// and the censored ones (lower bounds of files never seen).
func summarize(visible, censored []time.Duration) Latency {
	all := slices.Concat(visible, censored)
	slices.Sort(all)
	l := Latency{Censored: len(censored)}
	if len(all) == 0 {
		return l
	}
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	l.P50, l.P95, l.P99, l.Max = percentile(all, 50), percentile(all, 95), percentile(all, 99), all[len(all)-1]
	l.Mean = sum / time.Duration(len(all))
	return l
}

// growing reports whether the backlog grew over the second half of the
// writing (samples up to writeEnd). The least-squares slope over that half
// times its length is the rise; the backlog grows when the rise is more than
// 5% of the files written meanwhile (the platform made fewer than 95% of
// them visible), more than 5 files and more than twice the square root of
// the mean backlog (a Poisson arrival's noise). Fewer than 30 files written
// in that half are too few to judge.
func growing(samples []BacklogSample, writeEnd time.Duration) bool {
	var xs, ys []float64
	var first, last int
	for _, s := range samples {
		if s.At < writeEnd/2 || s.At > writeEnd {
			continue
		}
		if len(xs) == 0 {
			first = s.Written
		}
		last = s.Written
		xs, ys = append(xs, s.At.Seconds()), append(ys, float64(s.Backlog))
	}
	written := float64(last - first)
	if len(xs) < 3 || written < 30 {
		return false
	}
	var mx, my float64
	for i := range xs {
		mx, my = mx+xs[i], my+ys[i]
	}
	mx, my = mx/float64(len(xs)), my/float64(len(xs))
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return false
	}
	rise := num / den * (xs[len(xs)-1] - xs[0])
	return rise > max(5, 2*math.Sqrt(my), 0.05*written)
}

// probe is one row of a file whose sample must show in its patient's
// summary: in the recent results of its test.
type probe struct {
	patient, code, sample string
	seen                  bool
}

// tracked is one complete file of the robots.
type tracked struct {
	path      string // robot/name
	completed time.Time
	size      int64
	probes    []probe
	visible   time.Time
}

// loadRun follows one load run: the files, their probes, the usage.
type loadRun struct {
	s      *Stack
	opts   LoadOptions
	start  time.Time
	root   string
	files  map[string]*tracked
	order  []*tracked // by completion
	tokens map[string]string
	// frequent are the most frequent patients, never probed when another
	// row will do: their many results could push a probe out of the
	// summary's recent results.
	frequent map[string]bool
	meter    *usageMeter
	client   *http.Client
	apiErrs  int
}

func newLoadRun(s *Stack, opts LoadOptions, start time.Time) (*loadRun, error) {
	m, err := newUsageMeter(s)
	if err != nil {
		return nil, err
	}
	l := &loadRun{
		s: s, opts: opts, start: start, root: filepath.Join(s.opts.Dir, robotsDir), files: map[string]*tracked{},
		tokens: map[string]string{}, frequent: map[string]bool{}, meter: m,
		client: &http.Client{Timeout: 15 * time.Second},
	}
	for _, id := range s.patients[:min(len(s.patients), max(10, len(s.patients)/20), ProfilesSeeded)] {
		l.frequent[id] = true
	}
	return l, nil
}

// run follows the robots until they stop and the files drain, and fills in
// r's measurements.
func (l *loadRun) run(ctx context.Context, r *LoadResult, say func(string, ...any)) error {
	t := time.NewTicker(l.opts.Poll)
	defer t.Stop()
	sampleEvery := max(l.opts.For/30, time.Second)
	var lastSample, lastReport time.Time
	var writeEnd time.Duration
	var robotsEnded time.Time
	expected := -1 // files in the manifest, once the robots ended
	for {
		now := time.Now()
		if err := l.scan(); err != nil {
			return err
		}
		if err := l.poll(ctx); err != nil {
			return err
		}
		l.meter.sample()
		visible := l.visible()
		if now.Sub(lastSample) >= sampleEvery {
			lastSample = now
			r.Backlog = append(r.Backlog, BacklogSample{At: now.Sub(l.start), Written: len(l.order), Visible: visible, Backlog: len(l.order) - visible})
		}
		if now.Sub(lastReport) >= l.opts.Report {
			lastReport = now
			say("files complete %d, visible %d, backlog %d", len(l.order), visible, len(l.order)-visible)
		}
		if robotsEnded.IsZero() {
			if why := l.resourcesLow(); why != "" && r.Aborted == "" {
				r.Aborted = why
				say("stopping the robots early: %s", why)
				if err := l.s.byName[Robots].stop(l.s.opts.Grace); err != nil {
					return err
				}
			}
			if starts, ended := l.s.Starts(Robots); ended || (r.Aborted != "" && starts > 0) {
				robotsEnded, writeEnd = now, now.Sub(l.start)
				m, err := readManifest(l.s.ManifestPath())
				if err != nil {
					return err
				}
				expected, r.Files, r.Rows = m.files, m.files, int64(m.rows)
				say("robots done: %d files, %d rows; waiting for every file to become visible (at most %v)", m.files, m.rows, l.opts.Drain)
			}
		} else if (len(l.order) >= expected && visible == len(l.order)) || now.Sub(robotsEnded) > l.opts.Drain {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("load: %w", context.Cause(ctx))
		case <-t.C:
		}
	}
	end := time.Now()
	r.Backlog = append(r.Backlog, BacklogSample{At: end.Sub(l.start), Written: len(l.order), Visible: l.visible(), Backlog: len(l.order) - l.visible()})
	r.BacklogGrowing = growing(r.Backlog, writeEnd)
	var lat, censored []time.Duration
	first, last := end, l.start
	for _, f := range l.order {
		first = minTime(first, f.completed)
		if len(f.probes) == 0 {
			r.Unprobed++
		}
		if f.visible.IsZero() {
			censored = append(censored, end.Sub(f.completed))
			continue
		}
		r.Visible++
		lat = append(lat, f.visible.Sub(f.completed))
		if f.visible.After(last) {
			last = f.visible
		}
	}
	r.Latency = summarize(lat, censored)
	r.APIErrors = l.apiErrs
	rowsOf, err := readManifestRows(l.s.ManifestPath())
	if err != nil {
		return err
	}
	var rows, bytes int64
	for _, f := range l.order {
		if !f.visible.IsZero() {
			rows += rowsOf[f.path]
			bytes += f.size
		}
	}
	if span := last.Sub(first).Seconds(); span > 0 {
		r.FilesPerS = float64(r.Visible) / span
		r.RowsPerS = float64(rows) / span
		r.MBPerS = float64(bytes) / 1e6 / span
	}
	for _, f := range l.order {
		r.Bytes += f.size
	}
	writing := l.opts.For
	if r.Aborted != "" {
		writing = writeEnd
	}
	r.OfferedMBPerS = float64(r.Bytes) / 1e6 / writing.Seconds()
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (l *loadRun) visible() int {
	n := 0
	for _, f := range l.order {
		if !f.visible.IsZero() {
			n++
		}
	}
	return n
}

// scan lists the robots' folders for files not seen before. With every
// robot renaming its files into place, a name without the temporary prefix
// is a complete file; its mtime is when it was complete.
func (l *loadRun) scan() error {
	robots, err := os.ReadDir(l.root)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	var found []*tracked
	for _, rd := range robots {
		if !rd.IsDir() || !names.ValidRobot(rd.Name()) {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(l.root, rd.Name()))
		if err != nil {
			return fmt.Errorf("load: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			rel := rd.Name() + "/" + name
			if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".csv") || l.files[rel] != nil {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue // removed meanwhile: seen at the next scan, or never complete
			}
			f := &tracked{path: rel, completed: info.ModTime(), size: info.Size()}
			f.probes, err = readProbes(filepath.Join(l.root, rd.Name(), name), info.Size(), l.opts.Probes, l.frequent)
			if err != nil {
				return err
			}
			l.files[rel] = f
			found = append(found, f)
		}
	}
	slices.SortFunc(found, func(a, b *tracked) int { return a.completed.Compare(b.completed) })
	l.order = append(l.order, found...)
	return nil
}

// readProbes reads up to n probe rows from the end of a complete export:
// the last rows with a known test, of distinct patients, preferring
// patients not in frequent.
func readProbes(path string, size int64, n int, frequent map[string]bool) ([]probe, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load: probe %s: %w", path, err)
	}
	defer fh.Close()
	header, err := bufio.NewReaderSize(fh, 64<<10).ReadString('\n')
	if err != nil {
		return nil, nil // no complete header line: nothing to probe
	}
	layout, err := robotcsv.Detect(header)
	if err != nil {
		return nil, nil
	}
	const tail = 64 << 10
	off := max(int64(len(header)), size-tail)
	buf := make([]byte, size-off)
	if _, err := fh.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("load: probe %s: %w", path, err)
	}
	lines := strings.Split(string(buf), "\n")
	if off > int64(len(header)) {
		lines = lines[1:] // the first is cut
	}
	var out, fallback []probe
	patients := map[string]bool{}
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		pr, ok := parseProbe(lines[i], layout)
		if !ok || patients[pr.patient] {
			continue
		}
		if frequent[pr.patient] {
			if len(fallback) < n {
				fallback = append(fallback, pr)
			}
			continue
		}
		patients[pr.patient] = true
		out = append(out, pr)
	}
	if len(out) == 0 {
		return fallback[:min(1, len(fallback))], nil
	}
	return out, nil
}

// parseProbe reads a data line's sample, patient and canonical test code;
// corrections are not probes.
func parseProbe(line string, layout *robotcsv.Layout) (probe, bool) {
	if line == "" {
		return probe{}, false
	}
	cr := csv.NewReader(strings.NewReader(line))
	cr.Comma = rune(layout.Version.Delimiter)
	cr.FieldsPerRecord = -1
	rec, err := cr.Read()
	if err != nil || len(rec) != layout.Width {
		return probe{}, false
	}
	get := func(f robotcsv.Field) string {
		if i := layout.Pos(f); i >= 0 {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	// A correction's sample is in the summary as soon as the result it
	// corrects is: it would show before its own file is processed.
	if get(robotcsv.Status) == robotcsv.StatusCorrected {
		return probe{}, false
	}
	test := get(robotcsv.Test)
	var t labtests.Test
	var ok bool
	if layout.Version.TestCoding == robotcsv.Mnemonic {
		t, ok = labtests.ByMnemonic(test)
	} else {
		t, ok = labtests.ByCode(test)
	}
	p := probe{patient: get(robotcsv.PatientID), sample: get(robotcsv.SampleID), code: t.Code}
	return p, ok && p.patient != "" && p.sample != ""
}

// poll asks the API, oldest pending files first and at most MaxRequests
// requests, whether their probes show yet.
func (l *loadRun) poll(ctx context.Context) error {
	type job struct {
		f *tracked
		i int
	}
	var jobs []job
	for _, f := range l.order {
		if !f.visible.IsZero() {
			continue
		}
		for i := range f.probes {
			if !f.probes[i].seen && len(jobs) < l.opts.MaxRequests {
				jobs = append(jobs, job{f, i})
			}
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	for _, j := range jobs {
		if _, ok := l.tokens[j.f.probes[j.i].patient]; ok {
			continue
		}
		id := j.f.probes[j.i].patient
		tok, err := l.s.issuer.Mint(issuer.Claims{Subject: id, Role: "patient", PatientID: id, ExpiresAt: time.Now().Add(l.opts.For + l.opts.Drain + 30*time.Minute)})
		if err != nil {
			return fmt.Errorf("load: mint a probe token: %w", err)
		}
		l.tokens[id] = tok
	}
	type answer struct {
		seen bool
		at   time.Time
		err  bool
	}
	answers := make([]answer, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for k, j := range jobs {
		pr := j.f.probes[j.i]
		tok := l.tokens[pr.patient]
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			seen, err := l.shows(ctx, pr, tok)
			answers[k] = answer{seen: seen, at: time.Now(), err: err != nil}
		})
	}
	wg.Wait()
	for k, j := range jobs {
		a := answers[k]
		if a.err {
			l.apiErrs++
		}
		if !a.seen {
			continue
		}
		j.f.probes[j.i].seen = true
		all := true
		for _, p := range j.f.probes {
			all = all && p.seen
		}
		if all && j.f.visible.IsZero() {
			j.f.visible = a.at
			if !l.opts.KeepSources {
				if err := os.Remove(filepath.Join(l.root, filepath.FromSlash(j.f.path))); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("load: %w", err)
				}
			}
		}
	}
	return nil
}

// shows asks mobile-api for the probe's patient's trend of its test (the
// summary's recent results) and reports whether the sample is there. A
// 404 (no summary, or no result of that test yet) is "not yet".
func (l *loadRun) shows(ctx context.Context, pr probe, token string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.s.APIURL()+"/v1/me/results/"+pr.code, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := l.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return false, nil
	default:
		_, _ = io.Copy(io.Discard, resp.Body)
		return false, fmt.Errorf("probe: %s", resp.Status)
	}
	var body struct {
		Recent []struct {
			SampleID string `json:"sample_id"`
		} `json:"recent"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return false, fmt.Errorf("probe: %w", err)
	}
	for _, rr := range body.Recent {
		if rr.SampleID == pr.sample {
			return true, nil
		}
	}
	return false, nil
}

// resourcesLow says why the run must stop writing: too little disk left
// under the data directory or too little memory available.
func (l *loadRun) resourcesLow() string {
	if free, err := freeDisk(l.s.opts.Dir); err == nil && free < l.opts.MinFreeDisk {
		return fmt.Sprintf("%.1f GB of disk left, below the %.1f GB kept free", float64(free)/1e9, float64(l.opts.MinFreeDisk)/1e9)
	}
	if avail, err := memAvailable(); err == nil && avail < l.opts.MinFreeMemory {
		return fmt.Sprintf("%.1f GB of memory available, below the %.1f GB kept free", float64(avail)/1e9, float64(l.opts.MinFreeMemory)/1e9)
	}
	return ""
}

func freeDisk(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("load: statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// memAvailable reads MemAvailable from /proc/meminfo.
func memAvailable() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("load: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("load: meminfo %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("load: no MemAvailable in /proc/meminfo")
}

// readManifestRows maps each file of the simulator's manifest (robot/name)
// to its rows.
func readManifestRows(path string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("robot manifest: %w", err)
	}
	var m struct {
		Files []struct {
			Path string `json:"path"`
			Rows int64  `json:"rows"`
		} `json:"files"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("robot manifest %s: %w", path, err)
	}
	out := make(map[string]int64, len(m.Files))
	for _, f := range m.Files {
		out[f.Path] = f.Rows
	}
	return out, nil
}

// discard deletes the robots' folder and every object of the platform's
// raw, curated and quarantine buckets.
func discard(ctx context.Context, p config.Platform, robots string) error {
	errs := []error{os.RemoveAll(robots)}
	gcs, err := gcp.NewStorage(ctx, p)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("load: discard: %w", err))...)
	}
	defer gcs.Close()
	for _, b := range []string{names.RawBucket(p.Prefix), names.CuratedBucket(p.Prefix), names.QuarantineBucket(p.Prefix)} {
		it := gcs.Bucket(b).Objects(ctx, nil)
		for {
			a, err := it.Next()
			if errors.Is(err, iterator.Done) {
				break
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("load: discard: list gs://%s: %w", b, err))
				break
			}
			if err := gcs.Bucket(b).Object(a.Name).Delete(ctx); err != nil {
				errs = append(errs, fmt.Errorf("load: discard gs://%s/%s: %w", b, a.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// FormatBytes writes a size in B, KB, MB or GB (powers of ten), three
// significant digits.
func FormatBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.3g GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.3g MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.3g KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// Write prints the run's figures.
func (r *LoadResult) Write(w io.Writer) error {
	ew := &loadWriter{w: w}
	ge := ""
	if r.Latency.Censored > 0 {
		ge = "≥" // censored files count with a lower bound
	}
	ew.printf("\nload: %d robots, %g files/h each of %s, for %v: %.3gx the case's file rate, %.3gx its bytes\n",
		r.Robots, CaseFilesPerHour*r.Multiple, FormatBytes(r.FileSize), r.For, r.FileMultiple, r.ByteMultiple)
	ew.printf("written   %d files, %d rows, %s (%.2f MB/s offered)\n", r.Files, r.Rows, FormatBytes(r.Bytes), r.OfferedMBPerS)
	ew.printf("visible   %d files (%d never seen, %d without a probe row); %d probe errors\n", r.Visible, r.Files-r.Visible, r.Unprobed, r.APIErrors)
	ew.printf("latency   p50 %.1fs  p95 %s%.1fs  p99 %s%.1fs  max %s%.1fs  mean %.1fs  (file complete -> summary visible through the API)\n",
		r.Latency.P50.Seconds(), ge, r.Latency.P95.Seconds(), ge, r.Latency.P99.Seconds(), ge, r.Latency.Max.Seconds(), r.Latency.Mean.Seconds())
	ew.printf("processed %.2f files/s, %.0f rows/s, %.2f MB/s\n", r.FilesPerS, r.RowsPerS, r.MBPerS)
	ew.printf("backlog   ")
	for _, b := range r.Backlog {
		ew.printf("%.0fs:%d ", b.At.Seconds(), b.Backlog)
	}
	ew.printf("(files complete and not yet visible)\n\n")
	ew.printf("%-14s %10s %10s %9s\n", "process", "cpu", "peak rss", "processes")
	for _, u := range r.Usage {
		ew.printf("%-14s %9.1fs %10s %9d\n", u.Name, u.CPUSeconds, FormatBytes(u.PeakRSS), u.Processes)
	}
	if r.Audit != nil {
		ew.printf("\naudit: %d files, %d rows in, %d violations\n", r.Audit.Files, r.Audit.RowsIn, len(r.Audit.Violations))
	}
	if r.Sustained() {
		ew.printf("sustained: p95 within %v, every file visible, the backlog flat, every invariant holds\n", r.LatencyBound)
	} else {
		ew.printf("not sustained: %s\n", strings.Join(r.Reasons, "; "))
	}
	return ew.err
}

type loadWriter struct {
	w   io.Writer
	err error
}

func (e *loadWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

// BreakOptions shape a breaking-point search: load runs of rising
// multiples, each on a fresh platform.
type BreakOptions struct {
	// Load configures every step; its Multiple is replaced by each of
	// Multiples, its Stack.Dir gets a folder per step and Discard is set.
	Load LoadOptions
	// Multiples are the steps' multiples of the case's per-robot rate, in
	// rising order (default 1, 2, 5, 10, 20, 50).
	Multiples []float64
}

// BreakResult is a breaking-point search's outcome.
type BreakResult struct {
	Steps []*LoadResult `json:"steps"`
	// LastSustained is the highest multiple sustained before the first
	// failing one (0: none); FirstFailing the first not sustained (0: every
	// step was).
	LastSustained float64 `json:"last_sustained"`
	FirstFailing  float64 `json:"first_failing"`
}

// breakingPoint finds, in steps of rising multiples, the last sustained
// before the first failing one.
func breakingPoint(steps []*LoadResult) (lastOK, firstFail float64) {
	for _, s := range steps {
		if !s.Sustained() {
			return lastOK, s.Multiple
		}
		lastOK = s.Multiple
	}
	return lastOK, 0
}

// BreakingPoint runs load steps of rising multiples, each on a fresh
// platform from newPlatform (testenv's Env.NewPlatform), and stops after
// the first step the platform did not sustain (LoadResult.Reasons). It
// writes each step's report and a summary table to w. The error wraps
// ErrInvariant when a step broke an invariant.
func BreakingPoint(ctx context.Context, newPlatform func(ctx context.Context, name string) (config.Platform, error), iss *issuer.Issuer, opts BreakOptions, w io.Writer) (*BreakResult, error) {
	if len(opts.Multiples) == 0 {
		opts.Multiples = []float64{1, 2, 5, 10, 20, 50}
	}
	if !slices.IsSorted(opts.Multiples) || opts.Multiples[0] <= 0 {
		return nil, fmt.Errorf("breaking point: multiples %v: want positive and rising", opts.Multiples)
	}
	res := &BreakResult{}
	dir := opts.Load.Stack.Dir
	var errs []error
	for _, m := range opts.Multiples {
		lo := opts.Load
		lo.Multiple, lo.Discard = m, true
		lo.Stack.Dir = filepath.Join(dir, "x"+strconv.FormatFloat(m, 'g', -1, 64))
		fmt.Fprintf(w, "\n== step: %gx the case's per-robot rate\n", m)
		p, err := newPlatform(ctx, "load-"+strconv.FormatFloat(m, 'g', -1, 64))
		if err != nil {
			return res, err
		}
		r, err := Load(ctx, p, iss, lo, w)
		if r != nil {
			res.Steps = append(res.Steps, r)
		}
		if err != nil && !errors.Is(err, ErrInvariant) {
			return res, err
		}
		errs = append(errs, err)
		if r == nil || !r.Sustained() {
			break
		}
	}
	res.LastSustained, res.FirstFailing = breakingPoint(res.Steps)
	fmt.Fprintf(w, "\nmultiple  files×case  bytes×case  files  p50     p95     p99     MB/s   sustained\n")
	for _, s := range res.Steps {
		fmt.Fprintf(w, "%8g  %10.3g  %10.3g  %5d  %5.1fs  %5.1fs  %5.1fs  %5.2f  %v\n", s.Multiple, s.FileMultiple, s.ByteMultiple, s.Files,
			s.Latency.P50.Seconds(), s.Latency.P95.Seconds(), s.Latency.P99.Seconds(), s.MBPerS, s.Sustained())
	}
	switch {
	case res.FirstFailing == 0:
		fmt.Fprintf(w, "every step was sustained, up to %gx: the breaking point is above it\n", res.LastSustained)
	case res.LastSustained == 0:
		fmt.Fprintf(w, "the first step, %gx, was not sustained: the breaking point is below it\n", res.FirstFailing)
	default:
		fmt.Fprintf(w, "breaking point: sustained at %gx, not at %gx\n", res.LastSustained, res.FirstFailing)
	}
	return res, errors.Join(errs...)
}
