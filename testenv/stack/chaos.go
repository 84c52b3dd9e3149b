package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/testenv/audit"
	"github.com/labplatform/platform/testenv/issuer"
)

// ChaosOptions shape a chaos run: a stack whose services are killed with
// SIGKILL at random moments while the robots write, restarted by their
// supervisors, and then held to the invariants.
type ChaosOptions struct {
	// Stack configures the services. Zero fields take the demo's defaults,
	// with the robots writing for Rounds × 1.5 s (at least 30 s).
	Stack Options
	// Rounds is how many processes are killed (default 50).
	Rounds int
	// Victims are the services killed (default: ingest, every process
	// worker and the scheduler). The robots are the outside world and the
	// API serves reads only; neither is killed.
	Victims []string
	// Seed fixes the kill schedule (default 1).
	Seed uint64
	// Timeout bounds the whole run (default 15 minutes: killed workers'
	// messages come back only after Pub/Sub's 60 s acknowledgement deadline).
	Timeout time.Duration
	// Poll is how often the run looks at the platform (default 500 ms).
	Poll time.Duration
}

// ChaosResult is what a chaos run did and found.
type ChaosResult struct {
	// Kills counts the processes killed, by service.
	Kills map[string]int `json:"kills"`
	// Starts counts each service's process starts (kills + 1 when every
	// restart came up).
	Starts map[string]int `json:"starts"`
	// DeadLetters is the number of messages on the dead-letter hold
	// subscription at the end: only poison messages belong there.
	DeadLetters int `json:"dead_letters"`
	// Report is the audit of the platform at the end.
	Report *audit.Report `json:"report"`
	// Took is the whole run's duration.
	Took time.Duration `json:"took_ns"`
}

// Rounds is the number of kills.
func (r *ChaosResult) Rounds() int {
	n := 0
	for _, k := range r.Kills {
		n += k
	}
	return n
}

// Chaos runs a stack on p, kills its services at random points while the
// robots write, lets the supervisors restart them, waits until everything
// written is shipped, cleaned and loaded, and checks the invariants and
// the dead letters. Progress goes to w. It returns an error wrapping
// ErrInvariant when an invariant fails or a message was dead-lettered.
func Chaos(ctx context.Context, p config.Platform, iss *issuer.Issuer, opts ChaosOptions, w io.Writer) (*ChaosResult, error) {
	if opts.Rounds == 0 {
		opts.Rounds = 50
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.Timeout == 0 {
		opts.Timeout = 15 * time.Minute
	}
	if opts.Stack.RobotsFor == 0 {
		opts.Stack.RobotsFor = max(30*time.Second, time.Duration(opts.Rounds)*1500*time.Millisecond)
	}
	demoOpts := DemoOptions{Stack: opts.Stack, Poll: opts.Poll}
	demoOpts.defaults()
	o := demoOpts.Stack
	if err := o.defaults(); err != nil {
		return nil, err
	}
	victims := opts.Victims
	if victims == nil {
		victims = []string{Ingest, Orchestrate}
		for i := 1; i <= o.Workers; i++ {
			victims = append(victims, fmt.Sprintf("%s-%d", Process, i))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(w, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	say("chaos: %d robots write for %v while %d kills hit %s (seed %d)", o.Robots, o.RobotsFor, opts.Rounds, strings.Join(victims, ", "), opts.Seed)
	s, err := Start(ctx, p, iss, o)
	if err != nil {
		return nil, err
	}
	res := &ChaosResult{Kills: map[string]int{}, Starts: map[string]int{}}
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
	for _, v := range victims {
		if _, ok := s.byName[v]; !ok {
			return nil, fmt.Errorf("chaos: no service %q (services: %s)", v, strings.Join(s.Services(), ", "))
		}
	}
	d := &demo{s: s, p: p, poll: demoOpts.Poll, say: say}

	// The kills, spread over the robots' run with ±50% jitter, each on a
	// victim drawn at random among the running ones killed least so far:
	// every kind of process dies about as often.
	rng := rand.New(rand.NewPCG(opts.Seed, 0x5eed))
	gap := o.RobotsFor / time.Duration(opts.Rounds+1)
	for res.Rounds() < opts.Rounds {
		wait := gap/2 + time.Duration(rng.Int64N(int64(gap)+1))
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("chaos: after %d kills: %w", res.Rounds(), context.Cause(ctx))
		case <-time.After(wait):
		}
		order := slices.Clone(victims)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		slices.SortStableFunc(order, func(a, b string) int { return res.Kills[a] - res.Kills[b] })
		for _, v := range order {
			killed, err := s.Kill(v)
			if err != nil {
				return res, err
			}
			if killed {
				res.Kills[v]++
				break
			}
		}
	}
	say("%d kills: %s", res.Rounds(), fmtCounts(res.Kills))
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
	for _, name := range s.Services() {
		res.Starts[name], _ = s.Starts(name)
	}
	if err := stop(); err != nil {
		return res, err
	}
	fmt.Fprintln(w)
	if err := rep.Write(w); err != nil {
		return res, err
	}
	fmt.Fprintf(w, "\nprocess starts: %s; dead letters: %d\n", fmtCounts(res.Starts), res.DeadLetters)
	var errs []error
	if !rep.OK() {
		errs = append(errs, fmt.Errorf("%w: %d violations after %d kills", ErrInvariant, len(rep.Violations), res.Rounds()))
	}
	if res.DeadLetters > rep.Failed {
		errs = append(errs, fmt.Errorf("%w: %d dead letters but %d failed ingestions: a message was given up without a poison file", ErrInvariant, res.DeadLetters, rep.Failed))
	}
	return res, errors.Join(errs...)
}

func fmtCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// countDeadLetters counts the messages waiting on the dead-letter hold
// subscription, without acknowledging them.
func countDeadLetters(ctx context.Context, p config.Platform) (int, error) {
	ps, err := gcp.NewPubSub(ctx, p)
	if err != nil {
		return 0, fmt.Errorf("dead letters: %w", err)
	}
	defer ps.Close()
	sub := ps.Subscriber("projects/" + p.Project + "/subscriptions/" + names.SubscriptionDeadLetters)
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var mu sync.Mutex
	seen := map[string]bool{}
	err = sub.Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		mu.Lock()
		seen[m.ID] = true
		mu.Unlock()
		m.Nack()
	})
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return 0, fmt.Errorf("dead letters: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return len(seen), nil
}
