package stack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/testenv/audit"
	"github.com/labplatform/platform/testenv/issuer"
)

// DemoOptions shape a demo run: a stack whose robots write for a while,
// then stop; the run ends when everything they wrote is in BigQuery.
type DemoOptions struct {
	// Stack configures the services. Zero fields take the demo's defaults:
	// robots for 40 s, 10 robots at 360 files an hour each, 250 rows a file,
	// 200 patients, 1% malformed rows, 3% truncated last lines, 3% files
	// exported twice.
	Stack Options
	// Timeout bounds the whole run (default 3 minutes).
	Timeout time.Duration
	// Poll is how often the demo looks at the platform (default 500 ms).
	Poll time.Duration
}

// ErrInvariant is returned by Demo when the platform broke one of its
// invariants; the report says which.
var ErrInvariant = errors.New("an invariant does not hold")

func (o *DemoOptions) defaults() {
	s := &o.Stack
	if s.RobotsFor == 0 {
		s.RobotsFor = 40 * time.Second
	}
	if s.FilesPerHour == 0 {
		s.FilesPerHour = 360
	}
	if s.Rows == 0 {
		s.Rows = 250
	}
	if s.Patients == 0 {
		s.Patients = 200
	}
	if s.RobotArgs == nil {
		s.RobotArgs = []string{"-malformed=0.01", "-truncate-last-line=0.03", "-reexport=0.03"}
	}
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Minute
	}
	if o.Poll == 0 {
		o.Poll = 500 * time.Millisecond
	}
}

// Demo runs a bounded stack on p and writes its report to w: what the
// robots wrote, what was ingested, cleaned, quarantined and loaded, a
// sample API response and score, and the invariants of package audit. It
// returns an error wrapping ErrInvariant when one fails, and any error that
// kept the run from finishing within the timeout.
func Demo(ctx context.Context, p config.Platform, iss *issuer.Issuer, opts DemoOptions, w io.Writer) (err error) {
	opts.defaults()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(w, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	o := opts.Stack
	if err := o.defaults(); err != nil {
		return err
	}
	say("starting %d robots for %v, ingest, %d process workers, the scheduler (demo mode) and mobile-api",
		o.Robots, o.RobotsFor, o.Workers)
	s, err := Start(ctx, p, iss, o)
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the services")
		err = errors.Join(err, s.Stop())
	}()
	d := &demo{s: s, p: p, poll: opts.Poll, say: say}
	if err := d.waitRobots(ctx); err != nil {
		return d.explain(err)
	}
	rep, err := d.settleAndAudit(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	if err := rep.Write(w); err != nil {
		return err
	}
	apiErr := d.sampleAPI(ctx, w)
	if !rep.OK() {
		return errors.Join(fmt.Errorf("%w: %d violations (see the report)", ErrInvariant, len(rep.Violations)), apiErr)
	}
	return apiErr
}

// settleAndAudit waits until everything the robots wrote is shipped,
// cleaned and loaded, then checks the invariants.
func (d *demo) settleAndAudit(ctx context.Context) (*audit.Report, error) {
	if err := d.waitIngest(ctx); err != nil {
		return nil, d.explain(err)
	}
	if err := d.waitLineage(ctx); err != nil {
		return nil, d.explain(err)
	}
	if err := d.loadDays(ctx); err != nil {
		return nil, d.explain(err)
	}
	d.say("checking the invariants")
	s := d.s
	return audit.Check(ctx, audit.Clients{Storage: s.storage, BigQuery: s.bigquery, Firestore: s.firestore}, d.p.Prefix, audit.Options{})
}

type demo struct {
	s    *Stack
	p    config.Platform
	poll time.Duration
	say  func(format string, args ...any)
}

// until polls cond until it is true, ctx ends or cond fails.
func (d *demo) until(ctx context.Context, what string, cond func() (bool, error)) error {
	t := time.NewTicker(d.poll)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// explain adds where to look to an error that stopped the demo.
func (d *demo) explain(err error) error {
	return fmt.Errorf("%w (the services' logs are in %s)", err, d.s.LogDir())
}

func (d *demo) waitRobots(ctx context.Context) error {
	d.say("robots are writing export files into %s", filepath.Join(d.s.opts.Dir, robotsDir))
	err := d.until(ctx, "wait for the robots", func() (bool, error) {
		_, ended := d.s.Starts(Robots)
		return ended, nil
	})
	if err != nil {
		return err
	}
	m, err := readManifest(d.s.ManifestPath())
	if err != nil {
		return err
	}
	d.say("robots done: %d files, %d rows (%d malformed on purpose)", m.files, m.rows, m.malformed)
	return nil
}

// waitIngest waits until ingest has shipped everything: two polling passes
// ended after the robots stopped, the last with no backlog.
func (d *demo) waitIngest(ctx context.Context) error {
	passes := -1.0
	err := d.until(ctx, "wait for ingest", func() (bool, error) {
		m, err := scrape(ctx, d.s.MetricsAddr(Ingest))
		if err != nil {
			return false, nil // not up yet, or restarting
		}
		if passes < 0 {
			passes = m.sum("ingest_passes_total", "")
		}
		return m.sum("ingest_passes_total", "") >= passes+2 && m.sum("ingest_backlog_files", "") == 0, nil
	})
	if err != nil {
		return err
	}
	m, err := scrape(ctx, d.s.MetricsAddr(Ingest))
	if err != nil {
		return err
	}
	d.say("ingest shipped every complete file to gs://%s (its current process: %.0f files, %.0f re-exports recognised and skipped)",
		names.RawBucket(d.p.Prefix), m.sum("ingest_objects_shipped_total", `kind="file"`), m.sum("ingest_files_deduplicated_total", ""))
	return nil
}

// waitLineage waits until every raw object has a finished lineage document.
func (d *demo) waitLineage(ctx context.Context) error {
	var pending []string
	err := d.until(ctx, "wait for the process workers", func() (bool, error) {
		var err error
		pending, err = d.unfinished(ctx)
		return len(pending) == 0, err
	})
	if err != nil {
		if len(pending) > 0 {
			err = fmt.Errorf("%w; %d raw objects unfinished: %s", err, len(pending), strings.Join(pending[:min(len(pending), 5)], "; "))
		}
		// A notification given up on is on the dead-letter hold, not lost:
		// say how many, since those raw objects will never finish alone.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if n, derr := countDeadLetters(dctx, d.p); derr != nil {
			err = errors.Join(err, derr)
		} else {
			err = fmt.Errorf("%w; %d notifications dead-lettered", err, n)
		}
		return err
	}
	pr, err := d.s.Progress(ctx)
	if err != nil {
		return err
	}
	d.say("process workers finished: %s", pr)
	return nil
}

// unfinished lists the raw objects (their current generation) without a
// finished lineage document, with what their lineage says.
func (d *demo) unfinished(ctx context.Context) ([]string, error) {
	var out []string
	bucket := names.RawBucket(d.p.Prefix)
	it := d.s.storage.Bucket(bucket).Objects(ctx, nil)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list gs://%s: %w", bucket, err)
		}
		id, err := names.RawID(a.Name, a.Generation)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: not a raw object name: %v", a.Name, err))
			continue
		}
		snap, err := d.s.firestore.Collection(names.CollectionIngestions).Doc(id).Get(ctx)
		if notFound(err) {
			out = append(out, a.Name+"#"+strconv.FormatInt(a.Generation, 10)+": no lineage")
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lineage of %s: %w", a.Name, err)
		}
		var ing lineage.Ingestion
		if err := snap.DataTo(&ing); err != nil {
			return nil, fmt.Errorf("lineage of %s: %w", a.Name, err)
		}
		if !lineage.Finished(ing.Status) {
			out = append(out, fmt.Sprintf("%s#%d: %s, attempt %d", a.Name, a.Generation, ing.Status, ing.Attempt))
		}
	}
}

func (d *demo) countRaw(ctx context.Context) (int, error) {
	n := 0
	it := d.s.storage.Bucket(names.RawBucket(d.p.Prefix)).Objects(ctx, nil)
	for {
		_, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("list gs://%s: %w", names.RawBucket(d.p.Prefix), err)
		}
		n++
	}
}

// loadDays makes sure every day with results was loaded into BigQuery
// after its last file finished. The scheduler loads today every minute in
// demo mode; other days (files of the hours before midnight) are late
// files, which an operator loads with a manual run: the demo does the same
// with `orchestrate trigger bq_load --param day=D`.
func (d *demo) loadDays(ctx context.Context) error {
	due, err := d.staleDays(ctx)
	if err != nil {
		return err
	}
	for i, day := range due {
		// A manual run's interval comes from --date: one distinct hour per
		// day, late in the day it loads.
		date := day + "T" + fmt.Sprintf("%02d", 23-i%24) + ":00:00Z"
		d.say("loading %s into BigQuery: orchestrate trigger bq_load --param day=%s", day, day)
		if err := d.orchestrate(ctx, "trigger", "bq_load", "--state", "firestore", "--date", date, "--param", "day="+day); err != nil {
			return err
		}
	}
	err = d.until(ctx, "wait for bq_load", func() (bool, error) {
		due, err := d.staleDays(ctx)
		return len(due) == 0, err
	})
	if err != nil {
		return err
	}
	d.say("every day is loaded into %s.%s", names.Dataset, names.ResultsTable)
	return nil
}

// staleDays lists the days whose latest bq_load read the curated files
// before their last ingestion finished (or that were never loaded).
func (d *demo) staleDays(ctx context.Context) ([]string, error) {
	last := map[string]time.Time{}
	it := d.s.firestore.Collection(names.CollectionIngestions).Select("status", "days", "finished_at").Documents(ctx)
	defer it.Stop()
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read lineage: %w", err)
		}
		var ing lineage.Ingestion
		if err := snap.DataTo(&ing); err != nil {
			return nil, fmt.Errorf("lineage %s: %w", snap.Ref.ID, err)
		}
		if ing.Status != lineage.StatusDone {
			continue
		}
		for _, day := range ing.Days {
			if ing.FinishedAt.After(last[day]) {
				last[day] = ing.FinishedAt
			}
		}
	}
	var stale []string
	for day, finished := range last {
		snap, err := d.s.firestore.Collection(names.CollectionDayLoads).Doc(day).Get(ctx)
		if notFound(err) {
			stale = append(stale, day)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read day load %s: %w", day, err)
		}
		var dl lineage.DayLoad
		if err := snap.DataTo(&dl); err != nil {
			return nil, fmt.Errorf("day load %s: %w", day, err)
		}
		if !dl.StagingStartedAt.After(finished) {
			stale = append(stale, day)
		}
	}
	slices.Sort(stale)
	return stale, nil
}

// orchestrate runs the orchestrate command against the stack's platform.
func (d *demo) orchestrate(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(d.s.opts.Bin, Orchestrate), args...)
	cmd.Env = append(baseEnv(), d.p.Environ()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("orchestrate %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// sampleAPI shows what the patient app gets: the demo patient's summary
// and score, through mobile-api with a freshly minted token.
func (d *demo) sampleAPI(ctx context.Context, w io.Writer) error {
	token, err := d.s.PatientToken(10 * time.Minute)
	if err != nil {
		return err
	}
	var errs []error
	for _, path := range []string{"/v1/me/summary", "/v1/me/score"} {
		body, err := get(ctx, d.s.APIURL()+path, token)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(w, "\nGET %s (the demo patient's token):\n", path)
		writeExcerpt(w, body, 24)
	}
	return errors.Join(errs...)
}

// get fetches url with a bearer token and returns the body of a 200.
func get(ctx context.Context, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// writeExcerpt pretty-prints a JSON body, at most lines lines.
func writeExcerpt(w io.Writer, body []byte, lines int) {
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, body, "  ", "  "); err != nil {
		pretty.Reset()
		pretty.Write(body)
	}
	sc := bufio.NewScanner(&pretty)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		if n == lines {
			fmt.Fprintln(w, "  ...")
			return
		}
		fmt.Fprintln(w, "  "+sc.Text())
		n++
	}
}

// metrics are the series of a Prometheus text exposition: series (name
// and labels, as printed) -> value.
type metrics map[string]float64

// sum adds the values of the metric's series whose labels contain label
// (e.g. `kind="file"`; empty: every series).
func (m metrics) sum(name, label string) float64 {
	var total float64
	for series, v := range m {
		n, labels, _ := strings.Cut(series, "{")
		if n == name && strings.Contains(labels, label) {
			total += v
		}
	}
	return total
}

// scrape reads a service's /metrics.
func scrape(ctx context.Context, addr string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", addr, resp.Status)
	}
	out := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	return out, nil
}
