package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labplatform/platform/contracts/config"
)

// Store kinds.
const (
	storeBolt      = "bolt"
	storeFirestore = "firestore"
)

// defaultStateFile is the bolt file used when neither --state-file nor
// ORCHESTRATE_STATE_FILE names one.
const defaultStateFile = ".orchestrate/state.db"

// common are the flags every command accepts.
type common struct {
	platform  config.Platform
	state     string
	stateFile string
	json      bool
	// demo runs the platform's DAGs on their demo schedules (dags.Demo):
	// --demo, or env ORCHESTRATE_DEMO.
	demo bool
	// demoEnv is ORCHESTRATE_DEMO when it is not a boolean; validate
	// rejects it.
	demoEnv string
	// runStates, when set before register, makes --state also accept run
	// states (runs list): the values of the two are disjoint.
	runStates *statesFlag
}

func (c *common) register(fs *flag.FlagSet, getenv func(string) string) {
	c.platform.RegisterFlags(fs, getenv)
	c.state = envOr(getenv, "ORCHESTRATE_STATE", storeBolt)
	usage := "state store: bolt or firestore (env ORCHESTRATE_STATE)"
	if c.runStates != nil {
		usage = "run states to list (queued, running, success, failed; comma-separated or repeated), or the state store (bolt or firestore; env ORCHESTRATE_STATE)"
	}
	fs.Var(stateFlag{c}, "state", usage)
	fs.StringVar(&c.stateFile, "state-file", envOr(getenv, "ORCHESTRATE_STATE_FILE", defaultStateFile), "bolt state file (env ORCHESTRATE_STATE_FILE)")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	c.demo, c.demoEnv = false, ""
	if v := getenv("ORCHESTRATE_DEMO"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			c.demoEnv = v
		}
		c.demo = b
	}
	fs.BoolVar(&c.demo, "demo", c.demo, "demo mode: the platform's DAGs on compressed schedules, an hour becomes a minute (env ORCHESTRATE_DEMO)")
}

// validate checks the common flags after parsing.
func (c *common) validate() error {
	var errs []error
	if err := c.platform.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch c.state {
	case storeBolt:
		if c.stateFile == "" {
			errs = append(errs, errors.New("--state-file: empty"))
		}
	case storeFirestore:
	default:
		errs = append(errs, fmt.Errorf("--state %q: want bolt or firestore", c.state))
	}
	if c.demoEnv != "" {
		errs = append(errs, fmt.Errorf("ORCHESTRATE_DEMO=%q: want true or false", c.demoEnv))
	}
	if len(errs) > 0 {
		return withCode(exitUsage, errors.Join(errs...))
	}
	return nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// leadingFlags splits args into the common flags before the command and
// the rest, which starts with the command words.
func (a *app) leadingFlags(args []string) (lead, rest []string, err error) {
	fs := flag.NewFlagSet("orchestrate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c common
	c.register(fs, a.getenv)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, errHelp
		}
		return nil, nil, usageErrorf("%v", err)
	}
	rest = fs.Args()
	lead = slices.Clone(args[:len(args)-len(rest)])
	if n := len(lead); n > 0 && lead[n-1] == "--" {
		lead = lead[:n-1]
	}
	return lead, rest, nil
}

// flagSet returns a flag set for the named command with the common flags
// registered in c.
func (a *app) flagSet(name string, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet("orchestrate "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.register(fs, a.getenv)
	return fs
}

// parse parses flags and positional arguments in any order, checks that
// between minArgs and maxArgs positional arguments were given, and
// validates the common flags. For -h it prints the flags and returns
// errHelp.
func (a *app) parse(fs *flag.FlagSet, c *common, args []string, synopsis string, minArgs, maxArgs int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(a.stdout, "Usage: %s %s\n\nFlags:\n", fs.Name(), synopsis)
				fs.SetOutput(a.stdout)
				fs.PrintDefaults()
				return nil, errHelp
			}
			return nil, usageErrorf("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < minArgs || len(pos) > maxArgs {
		return nil, usageErrorf("usage: %s %s", fs.Name(), synopsis)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return pos, nil
}

// paramsFlag collects repeated --param k=v flags.
type paramsFlag map[string]string

func (p paramsFlag) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, k+"="+p[k])
	}
	return strings.Join(parts, " ")
}

func (p paramsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("param %q: want name=value", s)
	}
	p[k] = v
	return nil
}

// poolsFlag collects repeated --pool name=slots flags.
type poolsFlag map[string]int

func (p poolsFlag) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, p[k]))
	}
	return strings.Join(parts, " ")
}

func (p poolsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	n, err := strconv.Atoi(v)
	if !ok || k == "" || err != nil || n <= 0 {
		return fmt.Errorf("pool %q: want name=slots with slots > 0", s)
	}
	p[k] = n
	return nil
}

// statesFlag collects run states given as a comma-separated list or
// repeated flags.
type statesFlag []string

func (s *statesFlag) String() string { return strings.Join(*s, ",") }

func (s *statesFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

// stateFlag is --state: the store kind, and in runs list also run states.
type stateFlag struct{ c *common }

func (f stateFlag) String() string {
	if f.c == nil {
		return ""
	}
	return f.c.state
}

func (f stateFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		switch part = strings.TrimSpace(part); {
		case part == storeBolt || part == storeFirestore:
			f.c.state = part
		case f.c.runStates != nil:
			if err := f.c.runStates.Set(part); err != nil {
				return err
			}
		default:
			f.c.state = part // rejected by validate, with the other problems
		}
	}
	return nil
}

// parseDate reads an RFC 3339 time, or a YYYY-MM-DD date meaning midnight
// in loc; dateOnly reports the second form.
func parseDate(flagName, s string, loc *time.Location) (t time.Time, dateOnly bool, err error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, false, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return t, true, nil
	}
	return time.Time{}, false, usageErrorf("--%s %q: want RFC 3339 (2026-03-01T06:00:00Z) or YYYY-MM-DD", flagName, s)
}
