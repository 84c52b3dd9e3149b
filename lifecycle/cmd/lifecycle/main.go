// Command lifecycle applies the platform's storage lifecycle policies
// (lifecycle/policies.json) to its buckets, enforces them on objects where
// GCS cannot, and reports storage cost. See the module README.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/lifecycle/apply"
	"github.com/labplatform/platform/lifecycle/cost"
	"github.com/labplatform/platform/lifecycle/policy"
	"github.com/labplatform/platform/lifecycle/runner"
)

const usage = `lifecycle applies the storage lifecycle policies and reports storage cost.

  lifecycle validate [--policies F]          check a policy file; no cloud access
  lifecycle plan     [flags]                 compare each bucket's lifecycle with the policies
                                             (the default command: it changes nothing)
  lifecycle apply    [flags] [--dry-run]     write the policies to the buckets that differ
  lifecycle enforce  [flags] [--dry-run] [--all-rules] [--now T]
                                             carry out the rules on objects: the data-aware
                                             ones always, the native ones with --all-rules
                                             (default where the storage emulator is used)
  lifecycle cost     [flags] [--prices F] [--months 12] [--format text|json|svg]
                     [--out F] [--growth role=GiB ...] [--record] [--now T]
                                             inventory, monthly estimate, 12-month projection
                                             with and without the policies

Flags common to every command: --policies F (default: the shipped policies.json),
--json (plan, apply, enforce: machine-readable output), and the platform flags
(--project / LAB_PROJECT, --prefix, emulator endpoints). --now T (RFC 3339) judges
ages at another instant. Run "lifecycle <command> -h" for the flags.

Exit codes: 0 ok; 1 the operation failed (cloud error, an action failed, a
concurrent change); 2 usage or an invalid policy or price file.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lifecycle:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a mistake of the caller: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// options are the flags every command shares.
type options struct {
	platform config.Platform
	policies string
	asJSON   bool
	now      string
}

func (o *options) register(fs *flag.FlagSet, getenv func(string) string) {
	o.platform.RegisterFlags(fs, getenv)
	fs.StringVar(&o.policies, "policies", "", "policy file (default: the shipped policies.json)")
	fs.BoolVar(&o.asJSON, "json", false, "machine-readable output")
	fs.StringVar(&o.now, "now", "", "judge ages at this instant (RFC 3339; default: now)")
}

func (o *options) policyFile() (*policy.File, error) {
	if o.policies == "" {
		return policy.Default(), nil
	}
	f, err := policy.Load(o.policies)
	if err != nil {
		return nil, usageError{err}
	}
	return f, nil
}

func (o *options) instant() (time.Time, error) {
	if o.now == "" {
		return time.Now().UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, o.now)
	if err != nil {
		return time.Time{}, usageError{fmt.Errorf("--now %q: want RFC 3339", o.now)}
	}
	return t, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		// Plan is the default: it changes nothing.
		args = append([]string{"plan"}, args...)
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("lifecycle "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var (
		dryRun   = new(bool)
		allRules = new(string)
		prices   = new(string)
		months   = new(int)
		format   = new(string)
		out      = new(string)
		record   = new(bool)
		growth   growthFlag
	)
	switch cmd {
	case "validate":
		fs.StringVar(&o.policies, "policies", "", "policy file (default: the shipped policies.json)")
	case "plan":
		o.register(fs, getenv)
	case "apply":
		o.register(fs, getenv)
		fs.BoolVar(dryRun, "dry-run", false, "show the plan, write nothing")
	case "enforce":
		o.register(fs, getenv)
		fs.BoolVar(dryRun, "dry-run", false, "list what would be done, change nothing")
		fs.StringVar(allRules, "all-rules", "", "true: also carry out the rules GCS's native lifecycle runs (default: true when the storage emulator is used)")
	case "cost":
		o.register(fs, getenv)
		fs.StringVar(prices, "prices", "", "price table (default: the shipped prices.json)")
		fs.IntVar(months, "months", 12, "months of projection")
		fs.StringVar(format, "format", "text", "text, json or svg")
		fs.StringVar(out, "out", "", "write the report to this file (default: standard output)")
		fs.BoolVar(record, "record", false, "save today's storage snapshot and alert (log) on day-over-day growth above 20%")
		fs.Var(&growth, "growth", "role=GiB of new data a month, e.g. raw=28800 (repeatable)")
	default:
		return usageError{fmt.Errorf("unknown command %q\n\n%s", cmd, usage)}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	f, err := o.policyFile()
	if err != nil {
		return err
	}
	if cmd == "validate" {
		fmt.Fprintf(stdout, "%s: valid (%d bucket roles)\n", orDefault(o.policies), len(f.Buckets))
		return nil
	}
	if err := o.platform.Validate(); err != nil {
		return usageError{err}
	}
	now, err := o.instant()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	gcs, err := gcp.NewStorage(ctx, o.platform)
	if err != nil {
		return err
	}
	defer gcs.Close()
	fsClient, err := gcp.NewFirestore(ctx, o.platform)
	if err != nil {
		return err
	}
	defer fsClient.Close()
	cfg := runner.Config{Prefix: o.platform.Prefix, Policies: f, Logger: log}
	switch *allRules {
	case "":
		cfg.AllRules = o.platform.Emulators.Storage != ""
	default:
		b, err := strconv.ParseBool(*allRules)
		if err != nil {
			return usageError{fmt.Errorf("--all-rules %q: want true or false", *allRules)}
		}
		cfg.AllRules = b
	}
	if *prices != "" {
		p, err := cost.LoadPrices(*prices)
		if err != nil {
			return usageError{err}
		}
		cfg.Prices = &p
	}
	if cmd == "cost" {
		cfg.Months = *months
	}
	r, err := runner.New(gcs, fsClient, logAlerter{log}, cfg)
	if err != nil {
		return usageError{err}
	}
	switch cmd {
	case "plan", "apply":
		plans, err := r.Plan(ctx)
		if err != nil {
			return err
		}
		if err := writePlans(stdout, plans, o.asJSON); err != nil {
			return err
		}
		if cmd == "plan" || *dryRun {
			return nil
		}
		if err := apply.Apply(ctx, gcs, plans); err != nil {
			return err
		}
		if !o.asJSON {
			fmt.Fprintln(stdout, "applied")
		}
		return nil
	case "enforce":
		rep, err := r.EnforceReport(ctx, now, *dryRun)
		if rep != nil {
			if werr := writeEnforce(stdout, rep, o.asJSON); werr != nil {
				return errors.Join(err, werr)
			}
		}
		return err
	default: // cost
		return writeCost(ctx, r, stdout, now, *format, *out, *record, growth)
	}
}

func orDefault(path string) string {
	if path == "" {
		return "policies.json (shipped)"
	}
	return path
}

func writePlans(w io.Writer, plans []apply.BucketPlan, asJSON bool) error {
	if asJSON {
		type bucket struct {
			Bucket       string   `json:"bucket"`
			Role         string   `json:"role"`
			InSync       bool     `json:"in_sync"`
			Changes      []string `json:"changes"`
			EnforcerOnly int      `json:"enforcer_only_rules"`
		}
		out := make([]bucket, 0, len(plans))
		for _, p := range plans {
			out = append(out, bucket{Bucket: p.Bucket, Role: p.Role, InSync: p.InSync, Changes: p.Changes, EnforcerOnly: p.EnforcerOnly})
		}
		return writeJSON(w, out)
	}
	return apply.WriteText(w, plans)
}

func writeEnforce(w io.Writer, rep interface{ Summary() string }, asJSON bool) error {
	if asJSON {
		return writeJSON(w, rep)
	}
	_, err := fmt.Fprintln(w, rep.Summary())
	return err
}

func writeCost(ctx context.Context, r *runner.Runner, stdout io.Writer, now time.Time, format, out string, record bool, growth growthFlag) error {
	switch format {
	case "text", "json", "svg":
	default:
		return usageError{fmt.Errorf("--format %q: want text, json or svg", format)}
	}
	rep, inv, err := r.CostReport(ctx, now, cost.Options{GrowthPerMonth: growth.bytes()})
	if err != nil {
		return err
	}
	w := stdout
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	switch format {
	case "json":
		err = rep.WriteJSON(w)
	case "svg":
		err = rep.WriteSVG(w)
	default:
		err = rep.WriteText(w)
	}
	if err != nil {
		return err
	}
	if record {
		if _, err := r.Watch(ctx, inv); err != nil {
			return err
		}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// growthFlag collects --growth role=GiB.
type growthFlag map[string]float64

func (g *growthFlag) String() string { return fmt.Sprint(map[string]float64(*g)) }

func (g *growthFlag) Set(v string) error {
	role, gib, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want role=GiB, got %q", v)
	}
	n, err := strconv.ParseFloat(gib, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("growth %q: want a number of GiB", v)
	}
	if *g == nil {
		*g = growthFlag{}
	}
	(*g)[role] = n
	return nil
}

func (g growthFlag) bytes() map[string]int64 {
	if len(g) == 0 {
		return nil
	}
	out := make(map[string]int64, len(g))
	for role, gib := range g {
		out[role] = int64(gib * (1 << 30))
	}
	return out
}

// logAlerter logs storage growth alerts (the CLI has no notifier; the
// orchestrate lifecycle DAG sends them through its own).
type logAlerter struct{ log *slog.Logger }

func (a logAlerter) Alert(_ context.Context, kind, message string) error {
	a.log.Warn("alert", "kind", kind, "message", message)
	return nil
}
