package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/testenv"
	"github.com/labplatform/platform/testenv/audit"
	"github.com/labplatform/platform/testenv/issuer"
)

// Emulators stops and restarts the local GCP's emulators: *testenv.Env.
type Emulators interface {
	Stop(ctx context.Context, s testenv.Service) error
	Restart(ctx context.Context, s testenv.Service) error
}

// OutageOptions shape an outage run: while the robots write, each emulator
// in turn is stopped for a while and started again on the same address.
type OutageOptions struct {
	// Stack configures the services; zero fields take the demo's defaults,
	// with the robots writing through every outage.
	Stack Options
	// Services are the emulators taken down, one after the other (default
	// Cloud Storage, Pub/Sub, Firestore).
	Services []testenv.Service
	// Down is how long each stays down (default 15 s).
	Down time.Duration
	// Timeout bounds the whole run (default 15 minutes).
	Timeout time.Duration
	// Poll is how often readiness and the platform are read (default 500 ms).
	Poll time.Duration
}

// OutageStep is what one emulator's outage did to the services.
type OutageStep struct {
	Service testenv.Service `json:"service"`
	Down    time.Duration   `json:"down_ns"`
	// Unready lists the services whose /readyz answered 503 during the
	// outage; Expected those that depend on the emulator.
	Unready  []string `json:"unready"`
	Expected []string `json:"expected"`
	// Recovered is from the restart until every service is ready again.
	Recovered time.Duration `json:"recovered_ns"`
}

// OutageResult is what an outage run did and found.
type OutageResult struct {
	Steps       []OutageStep  `json:"steps"`
	DeadLetters int           `json:"dead_letters"`
	Report      *audit.Report `json:"report"`
	Took        time.Duration `json:"took_ns"`
}

// dependents are the services that depend on each emulator, and so must
// report not ready while it is down.
var dependents = map[testenv.Service][]string{
	testenv.Storage:   {Ingest, Process, Orchestrate},
	testenv.PubSub:    {Process},
	testenv.Firestore: {Process, Orchestrate, MobileAPI},
	testenv.BigQuery:  {Orchestrate, MobileAPI},
}

// Outage runs a stack on p, takes the emulators down one at a time while
// the robots write, and checks that the services that depend on each
// report not ready meanwhile, become ready again after the restart, and
// that once everything settled no result was lost or counted twice and
// nothing was dead-lettered. It returns an error wrapping ErrInvariant when
// one of those does not hold.
func Outage(ctx context.Context, p config.Platform, iss *issuer.Issuer, emu Emulators, opts OutageOptions, w io.Writer) (*OutageResult, error) {
	if opts.Services == nil {
		opts.Services = []testenv.Service{testenv.Storage, testenv.PubSub, testenv.Firestore}
	}
	if opts.Down == 0 {
		opts.Down = 15 * time.Second
	}
	if opts.Timeout == 0 {
		opts.Timeout = 15 * time.Minute
	}
	const lead = 8 * time.Second // between outages: the platform works normally
	if opts.Stack.RobotsFor == 0 {
		opts.Stack.RobotsFor = time.Duration(len(opts.Services))*(opts.Down+lead) + lead
	}
	demoOpts := DemoOptions{Stack: opts.Stack, Poll: opts.Poll}
	demoOpts.defaults()
	o := demoOpts.Stack
	if err := o.defaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(w, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	say("outages: %d robots write for %v while %s go down for %v each", o.Robots, o.RobotsFor, joinServices(opts.Services), opts.Down)
	s, err := Start(ctx, p, iss, o)
	if err != nil {
		return nil, err
	}
	res := &OutageResult{}
	defer func() { res.Took = time.Since(start) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		return s.Stop()
	}
	defer func() { _ = stop() }()
	d := &demo{s: s, p: p, poll: demoOpts.Poll, say: say}
	probes := s.readinessURLs()
	if err := d.until(ctx, "wait for every service to be ready", func() (bool, error) {
		return len(notReady(ctx, probes)) == 0, nil
	}); err != nil {
		return res, d.explain(err)
	}
	var errs []error
	for _, svc := range opts.Services {
		if err := sleep(ctx, lead); err != nil {
			return res, err
		}
		step := OutageStep{Service: svc, Down: opts.Down, Expected: dependents[svc]}
		say("stopping the %s emulator", svc)
		if err := emu.Stop(ctx, svc); err != nil {
			return res, err
		}
		seen := map[string]bool{}
		downUntil := time.Now().Add(opts.Down)
		for time.Now().Before(downUntil) {
			for _, name := range notReady(ctx, probes) {
				seen[name] = true
			}
			if err := sleep(ctx, d.poll); err != nil {
				_ = emu.Restart(context.WithoutCancel(ctx), svc)
				return res, err
			}
		}
		step.Unready = slices.Sorted(maps.Keys(seen))
		say("restarting the %s emulator; not ready meanwhile: %s", svc, strings.Join(step.Unready, ", "))
		if err := emu.Restart(ctx, svc); err != nil {
			return res, err
		}
		restarted := time.Now()
		if err := d.until(ctx, "wait for every service to be ready again", func() (bool, error) {
			return len(notReady(ctx, probes)) == 0, nil
		}); err != nil {
			return res, d.explain(err)
		}
		step.Recovered = time.Since(restarted)
		say("every service is ready again %.1fs after the restart", step.Recovered.Seconds())
		for _, name := range step.Expected {
			if !seen[name] {
				errs = append(errs, fmt.Errorf("%w: %s stayed ready while the %s emulator was down", ErrInvariant, name, svc))
			}
		}
		res.Steps = append(res.Steps, step)
	}
	if err := d.waitRobots(ctx); err != nil {
		return res, d.explain(err)
	}
	rep, err := d.settleAndAudit(ctx)
	if err != nil {
		return res, err
	}
	res.Report = rep
	if res.DeadLetters, err = countDeadLetters(ctx, p); err != nil {
		return res, err
	}
	if err := stop(); err != nil {
		return res, err
	}
	fmt.Fprintln(w)
	if err := rep.Write(w); err != nil {
		return res, err
	}
	fmt.Fprintf(w, "\ndead letters: %d\n", res.DeadLetters)
	if !rep.OK() {
		errs = append(errs, fmt.Errorf("%w: %d violations after the outages", ErrInvariant, len(rep.Violations)))
	}
	if res.DeadLetters > rep.Failed {
		errs = append(errs, fmt.Errorf("%w: %d dead letters but %d failed ingestions", ErrInvariant, res.DeadLetters, rep.Failed))
	}
	return res, errors.Join(errs...)
}

func joinServices(ss []testenv.Service) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return strings.Join(out, ", ")
}

// readinessURLs maps each long-running service to its /readyz.
func (s *Stack) readinessURLs() map[string]string {
	out := map[string]string{MobileAPI: s.APIURL() + "/readyz"}
	for _, name := range s.Services() {
		if name == Robots || name == MobileAPI {
			continue
		}
		out[name] = "http://" + s.MetricsAddr(name) + "/readyz"
	}
	return out
}

// notReady lists the services whose /readyz does not answer 200. A
// service that does not answer at all (restarting) is not ready either;
// process workers count as one service, "process".
func notReady(ctx context.Context, probes map[string]string) []string {
	var out []string
	for name, url := range probes {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
		ok := false
		if err == nil {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				ok = resp.StatusCode == http.StatusOK
				resp.Body.Close()
			}
		}
		cancel()
		if !ok {
			if strings.HasPrefix(name, Process+"-") {
				name = Process
			}
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(d):
		return nil
	}
}
