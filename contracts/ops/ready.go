package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Check is one dependency a service needs to do its work, for /readyz.
type Check struct {
	// Name names the dependency in /readyz and in the dependency label of
	// lab_dependency_up: "storage", "pubsub", "firestore", "bigquery".
	Name string
	// Probe asks the dependency something cheap and returns nil when it
	// answered. It must return when ctx ends.
	Probe func(ctx context.Context) error
}

// Readiness defaults.
const (
	// DefaultProbeTimeout bounds each probe.
	DefaultProbeTimeout = 2 * time.Second
	// DefaultReadyTTL is how long an answer is served again: probes,
	// scrapes and anyone else who finds the port cannot turn into a stream
	// of calls to the dependencies.
	DefaultReadyTTL = time.Second
)

// Status values of a Report.
const (
	StatusReady   = "ready"
	StatusUnready = "unready"
)

// checkOK is a passing check's entry in Report.Checks.
const checkOK = "ok"

// maxErrorText bounds a failing check's error text in a Report.
const maxErrorText = 512

// ReadinessOptions are the optional settings of NewReadiness.
type ReadinessOptions struct {
	// Timeout bounds each probe; default DefaultProbeTimeout.
	Timeout time.Duration
	// TTL is how long an answer is served again; default DefaultReadyTTL.
	TTL time.Duration
	// Now is the clock that ages answers; default time.Now.
	Now func() time.Time
}

// Report is one readiness answer, the body of /readyz:
//
//	{"status":"ready","checks":{"firestore":"ok","storage":"ok"}}
//	{"status":"unready","checks":{"firestore":"get readyz/probe: context deadline exceeded","storage":"ok"}}
type Report struct {
	// Status is StatusReady when every probe succeeded, else StatusUnready.
	Status string `json:"status"`
	// Checks maps each dependency to "ok" or to its probe's error text
	// (bucket, subscription, dataset names; never data).
	Checks map[string]string `json:"checks"`
}

// Ready reports whether every dependency answered.
func (r Report) Ready() bool { return r.Status == StatusReady }

// Readiness answers whether a service's dependencies answer: GET /readyz
// (it is an http.Handler) and the gauge lab_dependency_up{dependency} (it
// is a prometheus.Collector). Its probes run concurrently, each under a
// timeout, and an answer is reused for a TTL, whoever asks.
type Readiness struct {
	checks []Check
	opts   ReadinessOptions
	upDesc *prometheus.Desc

	mu   sync.Mutex // held while probing, so that concurrent askers share one round
	at   time.Time  // when last was made
	last *answer    // nil before the first round
}

// answer is one round of probes.
type answer struct {
	report Report
	up     []bool // by index of checks
}

// NewReadiness returns the readiness of a service that needs checks. A
// service without dependencies is always ready. Check names must be
// distinct and not empty, and every Probe set: NewReadiness panics
// otherwise, as a programming error.
func NewReadiness(checks []Check, opts ReadinessOptions) *Readiness {
	seen := map[string]bool{}
	for _, c := range checks {
		if c.Name == "" || c.Probe == nil || seen[c.Name] {
			panic(fmt.Sprintf("ops: readiness check %q: empty or duplicate name, or no probe", c.Name))
		}
		seen[c.Name] = true
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultProbeTimeout
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultReadyTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Readiness{
		checks: slices.Clone(checks),
		opts:   opts,
		upDesc: prometheus.NewDesc("lab_dependency_up",
			"1 while the dependency answered the service's last readiness probe, 0 while it did not (probed at most once per second, on /readyz and on scrapes).",
			[]string{"dependency"}, nil),
	}
}

// Check returns the current answer: the cached one while it is younger
// than the TTL, else a new round of probes. Probes run under their own
// timeout and do not end with ctx, so a caller that gives up does not
// leave a failed answer behind for the others.
func (r *Readiness) Check(ctx context.Context) Report {
	a := r.current(ctx)
	return Report{Status: a.report.Status, Checks: maps.Clone(a.report.Checks)}
}

func (r *Readiness) current(ctx context.Context) *answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.opts.Now(); r.last == nil || now.Sub(r.at) >= r.opts.TTL || now.Before(r.at) {
		r.last = r.probe(ctx)
		// Aged from the end of the round: a round that took the whole
		// timeout is still served for a full TTL.
		r.at = r.opts.Now()
	}
	return r.last
}

// probeGrace is how long after the timeout a probe's own answer (its
// deadline error) is awaited before it counts as not answering.
const probeGrace = 100 * time.Millisecond

// probe runs every probe at once and waits for them, or for the timeout.
func (r *Readiness) probe(ctx context.Context) *answer {
	ctx = context.WithoutCancel(ctx)
	wait, cancelWait := context.WithTimeout(ctx, r.opts.Timeout+probeGrace)
	defer cancelWait()
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(r.checks))
	for i, c := range r.checks {
		go func() { results <- result{i: i, err: c.Probe(ctx)} }()
	}
	errs := make([]error, len(r.checks))
	done := make([]bool, len(r.checks))
	for pending := len(r.checks); pending > 0; {
		select {
		case res := <-results:
			errs[res.i], done[res.i] = res.err, true
			pending--
		case <-wait.Done():
			// A probe that ignores its context: answer without it.
			for i := range done {
				if !done[i] {
					errs[i] = fmt.Errorf("no answer within %s", r.opts.Timeout)
				}
			}
			pending = 0
		}
	}
	a := &answer{report: Report{Status: StatusReady, Checks: make(map[string]string, len(r.checks))}, up: make([]bool, len(r.checks))}
	for i, c := range r.checks {
		if errs[i] != nil {
			a.report.Status = StatusUnready
			a.report.Checks[c.Name] = truncate(errs[i].Error(), maxErrorText)
			continue
		}
		a.up[i] = true
		a.report.Checks[c.Name] = checkOK
	}
	return a
}

// ServeHTTP answers 200 with a ready Report, 503 with an unready one.
func (r *Readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rep := r.current(req.Context()).report
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	// Error texts quote URLs with &; and a map of strings always encodes.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rep); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rep.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write(body.Bytes())
}

// Describe implements prometheus.Collector.
func (r *Readiness) Describe(ch chan<- *prometheus.Desc) { ch <- r.upDesc }

// Collect implements prometheus.Collector: lab_dependency_up per check,
// from the current answer (a scrape may start a round of probes, bounded
// by the probe timeout).
func (r *Readiness) Collect(ch chan<- prometheus.Metric) {
	a := r.current(context.Background())
	for i, c := range r.checks {
		v := 0.0
		if a.up[i] {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(r.upDesc, prometheus.GaugeValue, v, c.Name)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
