package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labplatform/platform/testenv/stack"
)

// reliability runs `labstack reliability`: the multi-worker scale
// measurement and the chaos run on the local platform, and writes what was
// tried and what held to a Markdown report (RELIABILITY.md).
// reliabilityFlags are the flags of `labstack reliability` beside the
// shared ones.
type reliabilityFlags struct {
	out     string
	rounds  int
	workers []int
	load    loadFlags
}

// parseReliability reads the flags of `labstack reliability`.
func parseReliability(args []string, stderr io.Writer) (c settings, r reliabilityFlags, err error) {
	fs := flag.NewFlagSet("labstack reliability", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.register(fs, ".labstack-reliability")
	fs.StringVar(&r.out, "out", "RELIABILITY.md", "the report to write")
	fs.IntVar(&r.rounds, "rounds", 50, "processes killed in the chaos run")
	workers := fs.String("scale-workers", "1,2,4", "worker counts of the scale measurement, comma-separated")
	r.load.register(fs, 2*time.Minute)
	if err := fs.Parse(args); err != nil {
		return c, r, err
	}
	if fs.NArg() > 0 {
		return c, r, fmt.Errorf("reliability: unexpected argument %q", fs.Arg(0))
	}
	for _, f := range strings.Split(*workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return c, r, fmt.Errorf("reliability: -scale-workers %q: want counts like 1,2,4", *workers)
		}
		r.workers = append(r.workers, n)
	}
	if c.opts.DataDir == "" || r.rounds < 1 || r.load.multiple <= 0 || r.load.dur < 0 {
		return c, r, errors.New("reliability: -data-dir, a positive -rounds and -multiple, and a -for not negative are required")
	}
	return c, r, nil
}

func reliability(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, r, err := parseReliability(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.RemoveAll(c.opts.DataDir); err != nil {
		return fmt.Errorf("reliability: %w", err)
	}
	env, iss, stop, err := startLocal(ctx, &c, stderr)
	if err != nil {
		return err
	}
	defer stop()
	c.stack.Dir = c.opts.DataDir

	began := time.Now()
	var log1, log2 bytes.Buffer
	scaleOpts := stack.ScaleOptions{Stack: c.stack, Workers: r.workers}
	scaleOpts.Stack.Dir = c.opts.DataDir + "/scale"
	steps, scaleErr := stack.Scale(ctx, env.NewPlatform, iss, scaleOpts, io.MultiWriter(stdout, &log1))
	if scaleErr != nil && !errors.Is(scaleErr, stack.ErrInvariant) {
		return scaleErr
	}
	chaosOpts := stack.ChaosOptions{Stack: c.stack, Rounds: r.rounds, Seed: uint64(time.Now().UnixNano())}
	chaosOpts.Stack.Dir = c.opts.DataDir + "/chaos"
	p, err := env.NewPlatform(ctx, "chaos")
	if err != nil {
		return err
	}
	chaos, chaosErr := stack.Chaos(ctx, p, iss, chaosOpts, io.MultiWriter(stdout, &log2))
	if chaosErr != nil && !errors.Is(chaosErr, stack.ErrInvariant) {
		return chaosErr
	}
	var log3 bytes.Buffer
	outOpts := stack.OutageOptions{Stack: c.stack}
	outOpts.Stack.Dir = c.opts.DataDir + "/outage"
	if p, err = env.NewPlatform(ctx, "outage"); err != nil {
		return err
	}
	outage, outageErr := stack.Outage(ctx, p, iss, env, outOpts, io.MultiWriter(stdout, &log3))
	if outageErr != nil && !errors.Is(outageErr, stack.ErrInvariant) {
		return outageErr
	}
	var log4 bytes.Buffer
	var load *stack.BreakResult
	var loadErr error
	loadBegan := time.Now()
	if r.load.dur > 0 {
		lc := c
		lc.stack.Robots = stack.CaseRobots
		lc.stack.Dir = c.opts.DataDir + "/load"
		load, loadErr = runLoad(ctx, env, iss, lc, r.load, io.MultiWriter(stdout, &log4))
		if loadErr != nil && !errors.Is(loadErr, stack.ErrInvariant) {
			return loadErr
		}
	}
	var md bytes.Buffer
	writeReport(&md, began, r.rounds, steps, scaleErr, chaos, chaosErr, log1.String(), log2.String())
	writeOutages(&md, outage, outageErr, log3.String())
	fmt.Fprintf(&md, "## Load\n\n")
	if load != nil {
		writeLoad(&md, loadBegan, r.load, load, loadErr, log4.String())
	} else {
		fmt.Fprintf(&md, "Not run (`-for 0`). `labstack load` runs it alone.\n\n")
	}
	writeNotYet(&md)
	if err := os.WriteFile(r.out, md.Bytes(), 0o644); err != nil {
		return fmt.Errorf("reliability: %w", err)
	}
	fmt.Fprintf(stdout, "\nwrote %s\n", r.out)
	return errors.Join(scaleErr, chaosErr, outageErr, loadErr)
}

func writeReport(w io.Writer, began time.Time, rounds int, steps []stack.ScaleStep, scaleErr error, chaos *stack.ChaosResult, chaosErr error, scaleLog, chaosLog string) {
	held := func(err error) string {
		if err == nil {
			return "**held**"
		}
		return "**failed**: " + err.Error()
	}
	fmt.Fprintf(w, "# Reliability\n\n")
	fmt.Fprintf(w, "Written by `make reliability` (`bin/labstack reliability`) on %s, %d CPUs (GOMAXPROCS %d), %s/%s, %s; the run took %s.\n",
		began.UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), time.Since(began).Round(time.Second))
	fmt.Fprintf(w, "Every service is its real command in its own process (package `testenv/stack`), on the in-process emulators; ")
	fmt.Fprintf(w, "the invariants are package `testenv/audit`'s: every source line curated, quarantined or superseded exactly once, lineage counts equal to the files, BigQuery rows per day equal to the distinct curated results, every Firestore summary equal to a recomputation from BigQuery.\n\n")
	fmt.Fprintf(w, "`make test` runs a shortened version of each run in `testenv/stack`, so CI exercises every kind of fault: `TestChaos` (8 kills), `TestScale` (1 and 2 workers), `TestOutage` (6 s outages) and `TestLoad` (a 20-second load).\n\n")

	fmt.Fprintf(w, "## Multi-worker scale\n\n")
	fmt.Fprintf(w, "The same backlog (robots with the same seed) drained by N `process worker` processes on the one `process-raw` subscription; the time is from the workers' start to the last lineage document done. Invariants: %s.\n\n", held(scaleErr))
	fmt.Fprintf(w, "| workers | files | rows | drain | files/s | rows/s | violations |\n|---|---|---|---|---|---|---|\n")
	for _, s := range steps {
		fmt.Fprintf(w, "| %d | %d | %d | %.1f s | %.2f | %.0f | %d |\n", s.Workers, s.Files, s.Rows, s.Took.Seconds(), s.FilesPerS, s.RowsPerS, s.Violations)
	}
	fmt.Fprintf(w, "\n<details><summary>log</summary>\n\n```\n%s```\n</details>\n\n", scaleLog)

	fmt.Fprintf(w, "## Chaos: SIGKILL while the robots write\n\n")
	if chaos != nil {
		fmt.Fprintf(w, "%d kills (asked: %d) of ingest, the process workers and the scheduler at random points while the robots wrote; each restarted by its supervisor. Kills: %s. Dead letters at the end: %d. Invariants: %s.\n\n",
			chaos.Rounds(), rounds, fmtKills(chaos), chaos.DeadLetters, held(chaosErr))
	}
	fmt.Fprintf(w, "<details><summary>log and audit</summary>\n\n```\n%s```\n</details>\n\n", chaosLog)
}

func writeOutages(w io.Writer, res *stack.OutageResult, err error, log string) {
	fmt.Fprintf(w, "## Outages: emulators stopped and restarted mid-run\n\n")
	fmt.Fprintf(w, "While the robots wrote, each emulator in turn refused connections (and dropped open ones) for a while, then listened again on the same address with its data (`testenv.Env.Stop`, `Restart`). The services retried; their `/readyz` was polled throughout. ")
	if err == nil {
		fmt.Fprintf(w, "Result: **held**.\n\n")
	} else {
		fmt.Fprintf(w, "Result: **failed**: %s.\n\n", err)
	}
	if res != nil {
		fmt.Fprintf(w, "| emulator | down | not ready meanwhile | expected | ready again after restart |\n|---|---|---|---|---|\n")
		for _, s := range res.Steps {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.1f s |\n", s.Service, s.Down, strings.Join(s.Unready, ", "), strings.Join(s.Expected, ", "), s.Recovered.Seconds())
		}
		fmt.Fprintf(w, "\nDead letters at the end: %d.\n\n", res.DeadLetters)
	}
	fmt.Fprintf(w, "<details><summary>log and audit</summary>\n\n```\n%s```\n</details>\n\n", log)
}

func writeNotYet(w io.Writer) {
	fmt.Fprintf(w, "## Not yet run here\n\n")
	fmt.Fprintf(w, "The full load test (100 robots at 10x the case's rate for 10 minutes) and its breaking-point search run with `labstack load` (`-steps` for the search), on a quiet machine; the load above is a short one. The security suite (authorization matrix, token attacks, log hygiene, fuzzing of the API, tokens and page tokens, govulncheck over every module) runs with `make security`; `make test` scans the deployables' binaries with govulncheck on every run.\n")
}

// fmtKills lists the kills of every service that could be killed.
func fmtKills(c *stack.ChaosResult) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c.Starts)) {
		if k == stack.Robots || k == stack.MobileAPI {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %d", k, c.Kills[k]))
	}
	return strings.Join(parts, ", ")
}
