package ingest

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/names"
)

// Commands of the ingest CLI.
const (
	CmdRun    = "run"
	CmdOnce   = "once"
	CmdStatus = "status"
)

// Environment variables of ingest's own settings (the platform's are in
// contracts/config).
const (
	EnvRoot            = "INGEST_ROOT"
	EnvCheckpoint      = "INGEST_CHECKPOINT"
	EnvInterval        = "INGEST_INTERVAL"
	EnvStability       = "INGEST_STABILITY"
	EnvConvention      = "INGEST_CONVENTION"
	EnvRobotConvention = "INGEST_ROBOT_CONVENTIONS"
	EnvConcurrency     = "INGEST_CONCURRENCY"
	EnvBandwidth       = "INGEST_BANDWIDTH"
	EnvArchiveDir      = "INGEST_ARCHIVE_DIR"
	EnvChunkMin        = "INGEST_CHUNK_MIN"
	EnvChunkMax        = "INGEST_CHUNK_MAX"
	EnvChunkMaxWait    = "INGEST_CHUNK_MAX_WAIT"
	EnvUploadTimeout   = "INGEST_UPLOAD_TIMEOUT"
	EnvListen          = "INGEST_LISTEN"
	EnvLogLevel        = "INGEST_LOG_LEVEL"
)

// Config is the configuration of one ingest command.
type Config struct {
	Command    string
	Platform   config.Platform
	Root       string
	Checkpoint string
	Interval   time.Duration
	Listen     string
	LogLevel   slog.Level
	// JSON selects JSON output of status.
	JSON bool
	// Shipper settings (Clock, Logger and Metrics are set by the caller).
	Shipper Options
}

// Usage describes the command line.
const Usage = `usage: ingest <command> [flags]

commands:
  run     poll the export root every -interval and ship complete files (daemon)
  once    one pass, then exit (cron, tests); non-zero exit if anything failed
  status  per robot: last file, lag, backlog (from the checkpoint and a scan)

run "ingest <command> -h" for the flags.`

// Load parses args (the command, then its flags) with defaults from
// getenv. It reads nothing else.
func Load(args []string, getenv func(string) string) (Config, error) {
	if len(args) == 0 {
		return Config{}, errors.New("missing command: want run, once or status (ingest -h for help)")
	}
	cfg := Config{Command: args[0]}
	switch cfg.Command {
	case CmdRun, CmdOnce, CmdStatus:
	case "-h", "-help", "--help", "help":
		return Config{}, flag.ErrHelp
	default:
		return Config{}, fmt.Errorf("unknown command %q: want run, once or status (ingest -h for help)", cfg.Command)
	}
	fs := flag.NewFlagSet("ingest "+cfg.Command, flag.ContinueOnError)
	var help strings.Builder
	fs.SetOutput(&help)
	cfg.Platform.RegisterFlags(fs, getenv)
	var errs []error
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&cfg.Root, "root", getenv(EnvRoot), "export root: one folder per robot (env "+EnvRoot+")")
	fs.StringVar(&cfg.Checkpoint, "checkpoint", env(EnvCheckpoint, "ingest-checkpoint.db"), "checkpoint file (env "+EnvCheckpoint+")")
	interval := fs.String("interval", env(EnvInterval, "10s"), "poll interval (env "+EnvInterval+")")
	stability := fs.String("stability", env(EnvStability, "90s"), "stability window of the stability convention (env "+EnvStability+")")
	convention := fs.String("convention", env(EnvConvention, string(Stability)), "default completeness convention: stability, rename or done (env "+EnvConvention+")")
	robots := fs.String("robot-conventions", getenv(EnvRobotConvention), "per-robot conventions, e.g. R001=rename,R002=done (env "+EnvRobotConvention+")")
	concurrency := fs.String("concurrency", env(EnvConcurrency, "4"), "files uploaded at once (env "+EnvConcurrency+")")
	bandwidth := fs.String("bandwidth", env(EnvBandwidth, "0"), "upload limit in bytes/s, suffixes K, M, G (1024-based); 0: none (env "+EnvBandwidth+")")
	fs.StringVar(&cfg.Shipper.ArchiveDir, "archive-dir", getenv(EnvArchiveDir), "move verified sources here (same file system); empty: leave them (env "+EnvArchiveDir+")")
	chunkMin := fs.String("chunk-min", env(EnvChunkMin, "64M"), "smallest database chunk, bytes (env "+EnvChunkMin+")")
	chunkMax := fs.String("chunk-max", env(EnvChunkMax, "128M"), "largest database chunk, bytes (env "+EnvChunkMax+")")
	chunkWait := fs.String("chunk-max-wait", env(EnvChunkMaxWait, "1m"), "ship a smaller chunk once new lines waited this long (env "+EnvChunkMaxWait+")")
	uploadTimeout := fs.String("upload-timeout", env(EnvUploadTimeout, "10m"), "bound on one upload (env "+EnvUploadTimeout+")")
	fs.StringVar(&cfg.Listen, "listen", env(EnvListen, ":9464"), "address of /healthz and /metrics (run); empty: none (env "+EnvListen+")")
	logLevel := fs.String("log-level", env(EnvLogLevel, "info"), "debug, info, warn or error (env "+EnvLogLevel+")")
	fs.BoolVar(&cfg.JSON, "json", false, "status: print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return Config{}, fmt.Errorf("ingest %s: %w\n%s", cfg.Command, err, help.String())
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("ingest %s: unexpected argument %q", cfg.Command, fs.Arg(0))
	}
	if cfg.Command != CmdStatus {
		if err := cfg.Platform.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.Root == "" {
		errs = append(errs, fmt.Errorf("root: not set (flag -root or env %s)", EnvRoot))
	}
	if cfg.Checkpoint == "" {
		errs = append(errs, errors.New("checkpoint: empty"))
	}
	dur := func(name, v string, allowZero bool) time.Duration {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || (d == 0 && !allowZero) {
			errs = append(errs, fmt.Errorf("%s %q: want a positive duration like 30s", name, v))
		}
		return d
	}
	cfg.Interval = dur("interval", *interval, false)
	cfg.Shipper.Stability = dur("stability", *stability, false)
	cfg.Shipper.ChunkMaxWait = dur("chunk-max-wait", *chunkWait, false)
	cfg.Shipper.UploadTimeout = dur("upload-timeout", *uploadTimeout, false)
	size := func(name, v string, allowZero bool) int64 {
		n, err := ParseBytes(v)
		if err != nil || (n == 0 && !allowZero) {
			errs = append(errs, fmt.Errorf("%s %q: want a positive byte count like 64M", name, v))
		}
		return n
	}
	cfg.Shipper.BytesPerSecond = size("bandwidth", *bandwidth, true)
	cfg.Shipper.ChunkMin = size("chunk-min", *chunkMin, false)
	cfg.Shipper.ChunkMax = size("chunk-max", *chunkMax, false)
	if cfg.Shipper.ChunkMax < cfg.Shipper.ChunkMin {
		errs = append(errs, fmt.Errorf("chunk-max %d is below chunk-min %d", cfg.Shipper.ChunkMax, cfg.Shipper.ChunkMin))
	}
	if n, err := strconv.Atoi(*concurrency); err != nil || n < 1 {
		errs = append(errs, fmt.Errorf("concurrency %q: want a positive integer", *concurrency))
	} else {
		cfg.Shipper.Concurrency = n
	}
	c, err := parseConvention(*convention)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Shipper.Convention = c
	if *robots != "" {
		cfg.Shipper.Robots = map[string]Convention{}
		for _, pair := range strings.Split(*robots, ",") {
			robot, conv, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok || !names.ValidRobot(robot) {
				errs = append(errs, fmt.Errorf("robot-conventions %q: want R001=rename,R002=done", pair))
				continue
			}
			c, err := parseConvention(conv)
			if err != nil {
				errs = append(errs, fmt.Errorf("robot-conventions %s: %w", robot, err))
				continue
			}
			cfg.Shipper.Robots[robot] = c
		}
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", *logLevel))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func parseConvention(s string) (Convention, error) {
	switch c := Convention(s); c {
	case Stability, Rename, DoneMarker:
		return c, nil
	}
	return "", fmt.Errorf("convention %q: want stability, rename or done", s)
}

// ParseBytes parses a byte count with an optional K, M or G suffix
// (powers of 1024).
func ParseBytes(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("byte count %q: not a non-negative integer", s)
	}
	return n * mult, nil
}
