// Package stack runs the whole lab platform on one machine: the robot
// simulator, ingest, process workers, the orchestrate scheduler and
// mobile-api, each the real command in its own process, against the local
// Google Cloud of package testenv and the local token issuer. It is what
// `make run` and `make demo` start (command labstack).
//
// Start seeds what the platform does not produce itself (patient profiles,
// a clinician's care team, the demo scoring model), launches the services
// and supervises them: a service that exits unexpectedly is restarted with
// a backoff. Stop ends them in order (robots first, the API last). State
// lives under Options.Dir, so a stack started again on the same directory
// continues where it stopped: the robots keep their export folders and
// sample numbering, ingest its checkpoint, the emulators their data.
//
// Demo runs a bounded stack and checks the platform's invariants with
// package audit.
package stack

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/testenv/issuer"
	"github.com/labplatform/platform/testenv/robotsim"
)

// The services, by name. Process workers are named process-1, process-2, ...
const (
	Robots      = "robotsim"
	Ingest      = "ingest"
	Process     = "process"
	Orchestrate = "orchestrate"
	MobileAPI   = "mobile-api"
)

// Commands are the binaries Options.Bin must hold.
var Commands = []string{Robots, Ingest, Process, Orchestrate, MobileAPI}

// Options configure a stack. Bin and Dir are required.
type Options struct {
	// Bin is the directory holding the commands (Commands), built by
	// `make run` into ./bin.
	Bin string
	// Dir holds the stack's state: the robots' export folders, ingest's
	// checkpoint, the services' logs and the API's secrets.
	Dir string
	// Robots, FilesPerHour, Rows and Patients size the robot simulator
	// (defaults 10 robots, 60 files per robot and hour, 200 rows per file,
	// 20,000 patients). The most frequent patient gets about
	// 1/sqrt(Patients) of the visits, and profiles are seeded for the
	// 1,000 most frequent.
	Robots       int
	FilesPerHour float64
	Rows         int
	Patients     int
	// Seed is the simulator's seed (default 1): it fixes the patients.
	Seed uint64
	// RobotArgs are more robotsim flags (faults, e.g. "-malformed=0.01").
	RobotArgs []string
	// RobotsFor, when set, stops the robots after that long (the demo).
	RobotsFor time.Duration
	// Workers is the number of process workers (default 2; -1: none at
	// start, StartWorkers adds them).
	Workers int
	// APIAddr is where mobile-api listens (default 127.0.0.1:8080).
	APIAddr string
	// MetricsPort, when set, is the first port of the services' /metrics
	// and /healthz listeners: ingest on it, orchestrate on the next, the
	// process workers from the tenth on. Zero: free ports.
	MetricsPort int
	// Grace is how long a service may take to stop (default 20 s).
	Grace time.Duration
	// Logger receives the supervisor's own messages (default: discarded).
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.Bin == "" || o.Dir == "" {
		return errors.New("stack: Bin and Dir are required")
	}
	if o.Robots == 0 {
		o.Robots = 10
	}
	if o.FilesPerHour == 0 {
		o.FilesPerHour = 60
	}
	if o.Rows == 0 {
		o.Rows = 200
	}
	if o.Patients == 0 {
		o.Patients = 20000
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.APIAddr == "" {
		o.APIAddr = "127.0.0.1:8080"
	}
	if o.Grace == 0 {
		o.Grace = 20 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if o.Robots < 1 || o.Robots > 999 {
		errs = append(errs, fmt.Errorf("robots %d: want 1 to 999", o.Robots))
	}
	if o.Workers < -1 {
		errs = append(errs, fmt.Errorf("workers %d: want at least 1, or -1 for none", o.Workers))
	}
	if o.Patients < 1 || o.Rows < 1 || o.FilesPerHour < 0 {
		errs = append(errs, errors.New("patients and rows must be positive, files per hour not negative"))
	}
	for _, c := range Commands {
		if _, err := os.Stat(filepath.Join(o.Bin, c)); err != nil {
			errs = append(errs, fmt.Errorf("command %s: %w (build it with make run, or go build -o %s ./<module>/cmd/%s)", c, err, o.Bin, c))
		}
	}
	return errors.Join(errs...)
}

// Stack is a running platform.
type Stack struct {
	opts     Options
	platform config.Platform
	issuer   *issuer.Issuer
	services []*service // in start order
	byName   map[string]*service
	metrics  map[string]string // service -> host:port of /metrics
	patients []string

	storage   *storage.Client
	firestore *firestore.Client
	bigquery  *bigquery.Client
	closers   []func() error
}

// The files under Options.Dir.
const (
	robotsDir      = "robots"
	logsDir        = "logs"
	secretsDir     = "secrets"
	sampleBaseFile = "robotsim-sample-base"
	manifestFile   = "robots-manifest.json"
)

// sampleStride is how many sample numbers one run of the simulator may use
// per robot stream: each start takes the next stride.
const sampleStride = 1_000_000

// Start seeds the platform p (already provisioned, e.g. by testenv.Start)
// and starts every service against it. On error nothing is left running.
func Start(ctx context.Context, p config.Platform, iss *issuer.Issuer, opts Options) (_ *Stack, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	s := &Stack{
		opts: opts, platform: p, issuer: iss, byName: map[string]*service{}, metrics: map[string]string{},
		patients: robotsim.Patients(opts.Seed, opts.Patients),
	}
	for _, d := range []string{robotsDir, logsDir, secretsDir, "ingest", "process-tmp"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("stack: %w", err)
		}
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Stop())
		}
	}()
	if s.storage, err = gcp.NewStorage(ctx, p); err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	s.closers = append(s.closers, s.storage.Close)
	if s.firestore, err = gcp.NewFirestore(ctx, p); err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	s.closers = append(s.closers, s.firestore.Close)
	if s.bigquery, err = gcp.NewBigQuery(ctx, p); err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	s.closers = append(s.closers, s.bigquery.Close)
	if err := s.seed(ctx); err != nil {
		return nil, err
	}
	if n, err := s.replayUnfinished(ctx); err != nil {
		return nil, err
	} else if n > 0 {
		opts.Logger.Info("published the notifications of raw objects left unprocessed at the last stop again", "objects", n)
	}
	specs, err := s.specs()
	if err != nil {
		return nil, err
	}
	for _, sv := range specs {
		if err := sv.supervise(ctx); err != nil {
			return nil, err
		}
		s.services = append(s.services, sv)
		s.byName[sv.name] = sv
	}
	return s, nil
}

// specs describes every service's command line.
func (s *Stack) specs() ([]*service, error) {
	o := s.opts
	pageSecret, err := secretFile(filepath.Join(o.Dir, secretsDir, "page-token"))
	if err != nil {
		return nil, err
	}
	auditKey, err := secretFile(filepath.Join(o.Dir, secretsDir, "audit-key"))
	if err != nil {
		return nil, err
	}
	port := func(name string, offset int) (string, error) {
		addr := "127.0.0.1:" + strconv.Itoa(o.MetricsPort+offset)
		if o.MetricsPort == 0 {
			var err error
			if addr, err = freeAddr(); err != nil {
				return "", err
			}
		}
		s.metrics[name] = addr
		return addr, nil
	}
	robots := filepath.Join(o.Dir, robotsDir)
	env := append(baseEnv(), s.platform.Environ()...)
	svc := func(name, command string, args ...string) *service {
		return &service{
			name: name, path: filepath.Join(o.Bin, command), args: func() ([]string, error) { return args, nil }, env: env,
			logPath: filepath.Join(o.Dir, logsDir, name+".log"), log: o.Logger,
		}
	}
	var out []*service

	robotsSvc := svc(Robots, Robots)
	robotsSvc.once = o.RobotsFor > 0
	// Every start of the simulator, a restart after a crash included,
	// numbers its samples after the previous one's.
	robotsSvc.args = func() ([]string, error) {
		base, err := nextSampleBase(filepath.Join(o.Dir, sampleBaseFile))
		if err != nil {
			return nil, err
		}
		args := []string{
			"-root", robots, "-robots", strconv.Itoa(o.Robots), "-seed", strconv.FormatUint(o.Seed, 10),
			"-files-per-hour", strconv.FormatFloat(o.FilesPerHour, 'g', -1, 64), "-rows", strconv.Itoa(o.Rows),
			"-patients", strconv.Itoa(o.Patients), "-sample-base", strconv.FormatUint(base, 10),
			"-report", "1m", "-manifest", filepath.Join(o.Dir, manifestFile),
		}
		if o.RobotsFor > 0 {
			args = append(args, "-duration", o.RobotsFor.String())
		}
		return append(args, o.RobotArgs...), nil
	}
	out = append(out, robotsSvc)

	addr, err := port(Ingest, 0)
	if err != nil {
		return nil, err
	}
	out = append(out, svc(Ingest, Ingest, "run", "-root", robots, "-checkpoint", filepath.Join(o.Dir, "ingest", "checkpoint.db"),
		"-interval", "1s", "-stability", "3s", "-listen", addr))

	for i := 1; i <= o.Workers; i++ {
		w, err := s.worker(i)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}

	if addr, err = port(Orchestrate, 1); err != nil {
		return nil, err
	}
	// The scheduler's owner name is its host and pid (the default), so a
	// restarted scheduler is a new owner and takes over expired leases.
	// Its running tasks get half the stack's grace to finish on SIGTERM,
	// so it exits before the stack's grace runs out and it is killed.
	out = append(out, svc(Orchestrate, Orchestrate, "scheduler", "--state", "firestore", "--demo",
		"--metrics-addr", addr, "--grace", max(time.Second, o.Grace/2).String()))

	out = append(out, svc(MobileAPI, MobileAPI, "-addr", o.APIAddr, "-issuer", s.issuer.URL(), "-jwks-url", s.issuer.JWKSURL(),
		"-page-token-secret-file", pageSecret, "-audit-key-file", auditKey, "-model-poll", "5s"))
	s.metrics[MobileAPI] = o.APIAddr
	return out, nil
}

// worker describes process worker i.
func (s *Stack) worker(i int) (*service, error) {
	o := s.opts
	name := Process + "-" + strconv.Itoa(i)
	addr := "127.0.0.1:" + strconv.Itoa(o.MetricsPort+9+i)
	if o.MetricsPort == 0 {
		var err error
		if addr, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	s.metrics[name] = addr
	args := []string{"worker", "-id", name, "-listen", addr, "-tmp", filepath.Join(o.Dir, "process-tmp")}
	return &service{
		name: name, path: filepath.Join(o.Bin, Process), args: func() ([]string, error) { return args, nil },
		env: append(baseEnv(), s.platform.Environ()...), logPath: filepath.Join(o.Dir, logsDir, name+".log"), log: o.Logger,
	}, nil
}

// StartWorkers starts n more process workers.
func (s *Stack) StartWorkers(ctx context.Context, n int) error {
	have := 0
	for _, sv := range s.services {
		if strings.HasPrefix(sv.name, Process+"-") {
			have++
		}
	}
	for i := have + 1; i <= have+n; i++ {
		w, err := s.worker(i)
		if err != nil {
			return err
		}
		if err := w.supervise(ctx); err != nil {
			return err
		}
		s.services = append(s.services, w)
		s.byName[w.name] = w
	}
	return nil
}

// baseEnv is what the services inherit from labstack's environment: the
// emulator and platform variables are set from the stack's platform
// instead, never from the caller's shell.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasSuffix(k, "_EMULATOR_HOST"), strings.HasPrefix(k, "LAB_"), strings.HasPrefix(k, "MOBILE_API_"),
			strings.HasPrefix(k, "INGEST_"), strings.HasPrefix(k, "PROCESS_"), strings.HasPrefix(k, "ORCHESTRATE_"),
			k == "GOOGLE_CLOUD_PROJECT":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// nextSampleBase reads the sample base the last simulator run used, and
// records and returns the next one.
func nextSampleBase(path string) (uint64, error) {
	var base uint64
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		last, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil {
			return 0, fmt.Errorf("stack: %s: %w", path, perr)
		}
		base = last + sampleStride
	case errors.Is(err, os.ErrNotExist):
	default:
		return 0, fmt.Errorf("stack: %w", err)
	}
	if base >= 1_000_000_000 {
		return 0, fmt.Errorf("stack: %s: the robots' sample numbers are used up; start on a new data directory", path)
	}
	if err := writeFileAtomic(path, []byte(strconv.FormatUint(base, 10)+"\n"), 0o644); err != nil {
		return 0, err
	}
	return base, nil
}

// secretFile makes sure path holds a 32-byte random secret (made once, kept
// across restarts so page tokens and audit hashes stay valid) and returns it.
func secretFile(path string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("stack: secret: %w", err)
	}
	hex := fmt.Appendf(nil, "%x\n", b)
	if err := writeFileAtomic(path, hex, 0o600); err != nil {
		return "", err
	}
	return path, nil
}

func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, perm); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("stack: free port: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// Stop ends the services in order: the robots and ingest first, so nothing
// new arrives, then the workers and the scheduler, the API last. Each gets
// Options.Grace to finish what it is doing.
func (s *Stack) Stop() error {
	var errs []error
	for _, sv := range s.services {
		if err := sv.stop(s.opts.Grace); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range s.closers {
		if err := c(); err != nil {
			errs = append(errs, fmt.Errorf("stack: close client: %w", err))
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}

// Kill ends a service's process with SIGKILL, as a crash would, and
// reports whether it was running (not waiting to be restarted); its
// supervisor restarts it.
func (s *Stack) Kill(name string) (bool, error) {
	sv, ok := s.byName[name]
	if !ok {
		return false, fmt.Errorf("stack: no service %q", name)
	}
	return sv.kill()
}

// Services lists the services' names in start order.
func (s *Stack) Services() []string {
	out := make([]string, len(s.services))
	for i, sv := range s.services {
		out[i] = sv.name
	}
	return out
}

// Starts reports how many times a service was started (1 when it never
// crashed) and whether it ended by itself.
func (s *Stack) Starts(name string) (starts int, ended bool) {
	sv, ok := s.byName[name]
	if !ok {
		return 0, false
	}
	starts, ended, _ = sv.state()
	return starts, ended
}

// Progress reads what the platform has done so far.
func (s *Stack) Progress(ctx context.Context) (Progress, error) {
	return readProgress(ctx, s.firestore, s.bigquery)
}

// APIURL is mobile-api's base URL.
func (s *Stack) APIURL() string { return "http://" + s.opts.APIAddr }

// MetricsAddr is the host:port of a service's /metrics.
func (s *Stack) MetricsAddr(name string) string { return s.metrics[name] }

// Patients are the simulated patients, the most frequent visitor first.
func (s *Stack) Patients() []string { return s.patients }

// DemoPatient is the patient the demo token is for: the most frequent
// visitor, so the page has the most to show.
func (s *Stack) DemoPatient() string { return s.patients[0] }

// LogDir holds one log file per service.
func (s *Stack) LogDir() string { return filepath.Join(s.opts.Dir, logsDir) }

// ManifestPath is where the robot simulator writes its manifest when it
// stops.
func (s *Stack) ManifestPath() string { return filepath.Join(s.opts.Dir, manifestFile) }

// PatientToken mints a token for the demo patient, valid for ttl.
func (s *Stack) PatientToken(ttl time.Duration) (string, error) {
	return s.issuer.Mint(issuer.Claims{
		Subject: s.DemoPatient(), Role: "patient", PatientID: s.DemoPatient(), ExpiresAt: time.Now().Add(ttl),
	})
}

// ClinicianToken mints a token for the demo clinician (DemoClinician),
// whose care team holds the first CareTeamSize patients.
func (s *Stack) ClinicianToken(ttl time.Duration) (string, error) {
	return s.issuer.Mint(issuer.Claims{Subject: DemoClinician, Role: "clinician", ExpiresAt: time.Now().Add(ttl)})
}
