package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"cloud.google.com/go/civil"
	"cloud.google.com/go/storage"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/robotcsv"
)

// Convention is how a robot says that an export file is complete.
type Convention string

const (
	// Stability: size and mtime unchanged for the stability window.
	Stability Convention = "stability"
	// Rename: the robot writes .<name>.tmp and renames it when done; any
	// other name is complete as soon as it is seen.
	Rename Convention = "rename"
	// DoneMarker: <name>.done appears when <name> is complete.
	DoneMarker Convention = "done"
)

// DBDir is the folder of a robot's append-only databases.
const DBDir = "db"

// Options are the shipper's optional settings; zero values take defaults.
type Options struct {
	// Stability is the window of the Stability convention; default 90s.
	Stability time.Duration
	// Convention is the default convention; default Stability.
	Convention Convention
	// Robots overrides Convention per robot id.
	Robots map[string]Convention
	// Concurrency bounds the files uploaded at once; default 4.
	Concurrency int
	// BytesPerSecond bounds the upload bandwidth; 0 is unlimited.
	BytesPerSecond int64
	// ArchiveDir, when set, receives each source after its upload was
	// verified, as <ArchiveDir>/<robot>/<name> (on the same file system).
	ArchiveDir string
	// ChunkMin and ChunkMax bound database chunks; defaults 64 and 128 MiB.
	ChunkMin, ChunkMax int64
	// ChunkMaxWait ships fewer than ChunkMin new bytes once they have
	// waited this long; default 1m.
	ChunkMaxWait time.Duration
	// UploadTimeout bounds one object upload; default 10m.
	UploadTimeout time.Duration
	// RetryMin and RetryMax bound the backoff before a failed file or
	// database is tried again; defaults 1s and 5m.
	RetryMin, RetryMax time.Duration
	Clock              Clock
	Logger             *slog.Logger
	Metrics            *Metrics
}

func (o *Options) defaults() {
	if o.Stability == 0 {
		o.Stability = 90 * time.Second
	}
	if o.Convention == "" {
		o.Convention = Stability
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.ChunkMin <= 0 {
		o.ChunkMin = 64 << 20
	}
	if o.ChunkMax <= 0 {
		o.ChunkMax = 128 << 20
	}
	if o.ChunkMax < o.ChunkMin {
		o.ChunkMax = o.ChunkMin
	}
	if o.ChunkMaxWait == 0 {
		o.ChunkMaxWait = time.Minute
	}
	if o.UploadTimeout == 0 {
		o.UploadTimeout = 10 * time.Minute
	}
	if o.RetryMin == 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax == 0 {
		o.RetryMax = 5 * time.Minute
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(prometheus.NewRegistry())
	}
}

// Shipper ships the export folders under one root to the raw bucket.
type Shipper struct {
	root    string
	fs      FS
	bucket  *storage.BucketHandle
	ckpt    *Checkpoint
	opts    Options
	log     *slog.Logger
	m       *Metrics
	limiter *rate.Limiter

	mu       sync.Mutex
	seen     map[string]observation // path -> last observation (Stability)
	failures map[string]failure     // key -> backoff
	waiting  map[string]time.Time   // db key -> since when fewer than ChunkMin bytes wait
	hashMu   keyedMutex             // one upload per content hash at a time
}

type observation struct {
	size  int64
	mtime time.Time
	since time.Time
}

type failure struct {
	attempts int
	next     time.Time
}

// NewShipper returns a shipper of the robot folders under root, reading
// through fsys, writing to bucket and recording in ckpt.
func NewShipper(root string, fsys FS, bucket *storage.BucketHandle, ckpt *Checkpoint, opts Options) *Shipper {
	opts.defaults()
	s := &Shipper{
		root: root, fs: fsys, bucket: bucket, ckpt: ckpt, opts: opts,
		log: opts.Logger, m: opts.Metrics,
		seen: map[string]observation{}, failures: map[string]failure{}, waiting: map[string]time.Time{},
	}
	if opts.BytesPerSecond > 0 {
		burst := int(min(opts.BytesPerSecond, 1<<20))
		s.limiter = rate.NewLimiter(rate.Limit(opts.BytesPerSecond), burst)
	}
	return s
}

// PassResult counts what one pass did.
type PassResult struct {
	Shipped      int // files uploaded and confirmed
	Deduplicated int // complete files whose content was already shipped
	Chunks       int // database chunks confirmed
	Failed       int // files or databases whose attempt failed (retried later)
	Waiting      int // files seen but not complete yet
}

// Pass polls every robot folder once and ships what is complete. Failures
// of single files or databases are logged, counted and retried in a later
// pass after a backoff; they do not fail the pass. The error is for the
// pass as a whole (root unreadable, context ended).
func (s *Shipper) Pass(ctx context.Context) (PassResult, error) {
	start := s.opts.Clock.Now()
	robots, err := s.fs.ReadDir(s.root)
	if err != nil {
		return PassResult{}, fmt.Errorf("list export root %s: %w", s.root, err)
	}
	var (
		res   PassResult
		resMu sync.Mutex
	)
	add := func(f func(*PassResult)) {
		resMu.Lock()
		defer resMu.Unlock()
		f(&res)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Concurrency)
	seen := map[string]bool{}
	// backlog per robot: files not confirmed at the end of the pass.
	type backlog struct{ files, bytes int64 }
	backlogs := map[string]*backlog{}
	shipped := func(robot string, size int64) {
		resMu.Lock()
		defer resMu.Unlock()
		backlogs[robot].files--
		backlogs[robot].bytes -= size
	}
	// failed records a failure, unless the pass is being cancelled.
	failed := func(robot, key, op string, err error) {
		if gctx.Err() != nil {
			return
		}
		s.fail(robot, key, op, err)
		add(func(r *PassResult) { r.Failed++ })
	}
	for _, r := range robots {
		if !r.Dir || !names.ValidRobot(r.Name) {
			continue
		}
		robot := r.Name
		dir := filepath.Join(s.root, robot)
		entries, err := s.fs.ReadDir(dir)
		if err != nil {
			s.fail(robot, robot, "list", err)
			add(func(r *PassResult) { r.Failed++ })
			continue
		}
		present := make(map[string]bool, len(entries))
		for _, e := range entries {
			present[e.Name] = true
		}
		bl := &backlog{}
		resMu.Lock()
		backlogs[robot] = bl
		resMu.Unlock()
		for _, e := range entries {
			if e.Dir && e.Name == DBDir {
				for _, db := range s.dbFiles(robot) {
					if !s.due(robot, db.key) {
						continue
					}
					g.Go(func() error {
						n, err := s.shipDB(gctx, robot, db.name)
						add(func(r *PassResult) { r.Chunks += n })
						if err != nil {
							failed(robot, db.key, "ship database", err)
						} else {
							s.succeed(db.key)
						}
						return nil
					})
				}
				continue
			}
			if !e.Regular || skipName(e.Name) {
				continue
			}
			path := filepath.Join(dir, e.Name)
			seen[path] = true
			key := robot + "/" + e.Name
			if rec, ok, err := s.ckpt.File(key); err == nil && ok && rec.Done && rec.Size == e.Size && rec.ModTime.Equal(e.ModTime) {
				continue
			}
			resMu.Lock()
			bl.files++
			bl.bytes += e.Size
			resMu.Unlock()
			if !s.complete(robot, path, e, present) {
				add(func(r *PassResult) { r.Waiting++ })
				continue
			}
			if !s.due(robot, key) {
				continue
			}
			info := e
			g.Go(func() error {
				dedup, err := s.shipFile(gctx, robot, path, info)
				switch {
				case err != nil:
					failed(robot, key, "ship file", err)
				case dedup:
					s.succeed(key)
					shipped(robot, info.Size)
					add(func(r *PassResult) { r.Deduplicated++ })
				default:
					s.succeed(key)
					shipped(robot, info.Size)
					add(func(r *PassResult) { r.Shipped++ })
				}
				return nil
			})
		}
	}
	_ = g.Wait() // jobs report through fail; they return nil
	for robot, bl := range backlogs {
		s.m.BacklogFiles.WithLabelValues(robot).Set(float64(bl.files))
		s.m.BacklogBytes.WithLabelValues(robot).Set(float64(bl.bytes + s.dbBacklog(robot)))
	}
	s.forget(seen)
	end := s.opts.Clock.Now()
	s.m.Passes.Inc()
	s.m.PassDuration.Observe(end.Sub(start).Seconds())
	s.m.LastPassEnded.Set(float64(end.Unix()))
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// skipName: temporary names of the Rename convention, done markers,
// hidden files.
func skipName(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".done") || strings.HasSuffix(name, ".tmp")
}

func (s *Shipper) convention(robot string) Convention {
	if c, ok := s.opts.Robots[robot]; ok {
		return c
	}
	return s.opts.Convention
}

// complete decides whether a file may be shipped now (see README,
// "Completeness").
func (s *Shipper) complete(robot, path string, info FileInfo, present map[string]bool) bool {
	switch s.convention(robot) {
	case Rename:
		return true
	case DoneMarker:
		return present[info.Name+".done"]
	}
	now := s.opts.Clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, ok := s.seen[path]
	if !ok || prev.size != info.Size || !prev.mtime.Equal(info.ModTime) {
		s.seen[path] = observation{size: info.Size, mtime: info.ModTime, since: now}
		if ok {
			return false // changed since the last poll
		}
		// First sight: only an old enough mtime vouches for it.
		return info.Size > 0 && now.Sub(info.ModTime) >= s.opts.Stability
	}
	return info.Size > 0 && (now.Sub(prev.since) >= s.opts.Stability || now.Sub(info.ModTime) >= s.opts.Stability)
}

// forget drops observations of files no longer present.
func (s *Shipper) forget(present map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.seen {
		if !present[p] {
			delete(s.seen, p)
		}
	}
}

// due reports whether key is outside its backoff, counting a retry when
// it failed before.
func (s *Shipper) due(robot, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.failures[key]
	if !ok {
		return true
	}
	if s.opts.Clock.Now().Before(f.next) {
		return false
	}
	s.m.Retries.WithLabelValues(robot).Inc()
	return true
}

func (s *Shipper) succeed(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.failures, key)
}

// fail logs and counts a failed attempt and schedules the next one.
func (s *Shipper) fail(robot, key, op string, err error) {
	kind := errorKind(err)
	s.m.Errors.WithLabelValues(robot, kind).Inc()
	s.mu.Lock()
	f := s.failures[key]
	f.attempts++
	backoff := s.opts.RetryMin << min(f.attempts-1, 20)
	if backoff > s.opts.RetryMax || backoff <= 0 {
		backoff = s.opts.RetryMax
	}
	f.next = s.opts.Clock.Now().Add(backoff)
	s.failures[key] = f
	attempts := f.attempts
	s.mu.Unlock()
	// Errors name paths and objects, never file contents.
	s.log.Warn(op, "robot", robot, "key", key, "kind", kind, "attempt", attempts, "retry_in", backoff, "err", err)
}

// errorKind classifies an error for the errors metric.
func errorKind(err error) string {
	var (
		conflict *ConflictError
		changed  *ChangedError
		missing  *rotatedMissingError
	)
	switch {
	case errors.As(err, &conflict):
		return "conflict"
	case errors.As(err, &changed):
		return "changed"
	case errors.As(err, &missing):
		return "rotated_missing"
	case errors.Is(err, syscall.ESTALE):
		return "stale"
	case errors.Is(err, fs.ErrNotExist):
		return "not_found"
	case errors.Is(err, fs.ErrPermission):
		return "permission"
	case errors.Is(err, errCheckpoint):
		return "checkpoint"
	case errors.Is(err, errGCS), errors.Is(err, context.DeadlineExceeded):
		return "gcs"
	}
	return "io"
}

var (
	errCheckpoint = errors.New("checkpoint")
	errGCS        = errors.New("gcs")
)

// ckptErr marks a checkpoint failure for errorKind.
func ckptErr(err error) error { return fmt.Errorf("%w: %w", errCheckpoint, err) }

// gcsErr marks a Cloud Storage failure for errorKind.
func gcsErr(err error) error {
	var conflict *ConflictError
	var changed *ChangedError
	if errors.As(err, &conflict) || errors.As(err, &changed) {
		return err
	}
	return fmt.Errorf("%w: %w", errGCS, err)
}

// shipFile ships one complete file. It reports whether the content was
// already shipped (deduplicated).
func (s *Shipper) shipFile(ctx context.Context, robot, path string, info FileInfo) (bool, error) {
	key := robot + "/" + info.Name
	f, err := s.fs.Open(path)
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	if before.Size != info.Size || !before.ModTime.Equal(info.ModTime) {
		return false, &ChangedError{Path: path, Reason: "size or mtime differ from the listing"}
	}
	d, err := digestOf(io.NewSectionReader(f, 0, before.Size))
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if d.size != before.Size {
		return false, &ChangedError{Path: path, Reason: fmt.Sprintf("read %d bytes of %d", d.size, before.Size)}
	}
	// unchanged is checked after reading and again before an upload is
	// finalized: a file that moved on is not complete.
	unchanged := func() error {
		after, err := s.fs.Stat(path)
		if err != nil {
			return fmt.Errorf("stat %s after reading: %w", path, err)
		}
		if after.Size != before.Size || !after.ModTime.Equal(before.ModTime) || after.ID != before.ID {
			return &ChangedError{Path: path, Reason: "size, mtime or identity changed"}
		}
		return nil
	}
	if err := unchanged(); err != nil {
		return false, err
	}

	unlock := s.hashMu.lock(d.sha256)
	defer unlock()
	rec := FileRecord{Size: before.Size, ModTime: before.ModTime, SHA256: d.sha256, CRC32C: d.crc32c}
	prev, havePrev, err := s.ckpt.File(key)
	if err != nil {
		return false, ckptErr(err)
	}
	// Content already shipped (for this or another file): record, done.
	if h, ok, err := s.ckpt.Hash(d.sha256); err != nil {
		return false, ckptErr(err)
	} else if ok && (h.Key != key || h.Done) {
		landed := h.Done
		if !landed {
			// Another file's upload of this content was interrupted:
			// it landed, or this file takes over the content.
			attrs, err := s.bucket.Object(h.Object).Attrs(ctx)
			switch {
			case err == nil:
				landed = attrs.Size == d.size && attrs.CRC32C == d.crc32c
			case !errors.Is(err, storage.ErrObjectNotExist):
				return false, gcsErr(fmt.Errorf("attributes of %s: %w", h.Object, err))
			}
		}
		if landed {
			rec.Object, rec.Deduplicated, rec.ShippedAt = h.Object, h.Key != key, s.opts.Clock.Now()
			if err := s.ckpt.Commit(key, rec); err != nil {
				return false, ckptErr(err)
			}
			if rec.Deduplicated {
				s.m.Deduplicated.WithLabelValues(robot).Inc()
				s.log.Info("deduplicated", "robot", robot, "path", path, "object", h.Object, "sha256", d.sha256)
			}
			s.archive(robot, path, info.Name, key, rec)
			return rec.Deduplicated, nil
		}
	}
	// The object name is chosen once: a retry after a crash reuses it.
	if havePrev && !prev.Done && prev.SHA256 == d.sha256 && prev.Object != "" {
		rec.Object = prev.Object
	} else {
		file := info.Name
		if havePrev && prev.Done && prev.SHA256 != d.sha256 {
			// Rewritten after it was shipped: a new version, under a name
			// of its own.
			file = versionedName(info.Name, d.sha256)
		}
		name, err := names.RawObject{Robot: robot, Date: civil.DateOf(s.opts.Clock.Now().UTC()), File: file}.Name()
		if err != nil {
			return false, err
		}
		rec.Object = name
	}
	if err := s.ckpt.Intend(key, rec); err != nil {
		return false, ckptErr(err)
	}
	meta := map[string]string{
		"robot_id":     robot,
		"source_path":  path,
		"source_size":  strconv.FormatInt(before.Size, 10),
		"source_mtime": before.ModTime.UTC().Format(time.RFC3339Nano),
		"sha256":       d.sha256,
	}
	if hint := schemaHint(d.head); hint != "" {
		meta["schema_hint"] = hint
	}
	gen, err := s.upload(ctx, rec.Object, d, meta, io.NewSectionReader(f, 0, before.Size), unchanged)
	if err != nil {
		return false, gcsErr(err)
	}
	rec.Generation, rec.ShippedAt = gen, s.opts.Clock.Now()
	if err := s.ckpt.Commit(key, rec); err != nil {
		return false, ckptErr(err)
	}
	s.m.FilesShipped.WithLabelValues(robot, "file").Inc()
	s.m.BytesShipped.WithLabelValues(robot, "file").Add(float64(d.size))
	s.m.Lag.WithLabelValues("file").Observe(rec.ShippedAt.Sub(before.ModTime).Seconds())
	s.log.Info("shipped", "robot", robot, "path", path, "object", rec.Object, "generation", gen, "bytes", d.size)
	s.archive(robot, path, info.Name, key, rec)
	return false, nil
}

// archive moves a verified source (and its done marker) out of the export
// folder, when configured. A failure leaves the source where it is.
func (s *Shipper) archive(robot, path, name, key string, rec FileRecord) {
	if s.opts.ArchiveDir == "" {
		return
	}
	to := filepath.Join(s.opts.ArchiveDir, robot, name)
	if err := s.fs.Rename(path, to); err != nil {
		s.m.Errors.WithLabelValues(robot, "archive").Inc()
		s.log.Warn("archive", "robot", robot, "path", path, "to", to, "err", err)
		return
	}
	if s.convention(robot) == DoneMarker {
		if err := s.fs.Rename(path+".done", to+".done"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("archive done marker", "robot", robot, "path", path+".done", "err", err)
		}
	}
	rec.Archived = true
	if err := s.ckpt.Commit(key, rec); err != nil {
		s.log.Warn("record archive", "robot", robot, "key", key, "err", err)
	}
}

// versionedName inserts the content hash before the extension:
// export.csv -> export.sha-0123456789ab.csv.
func versionedName(name, sha string) string {
	ext := filepath.Ext(name)
	return strings.TrimSuffix(name, ext) + ".sha-" + sha[:12] + ext
}

// schemaHint names the robot CSV version of the header in head, or "".
func schemaHint(head []byte) string {
	line, _, ok := strings.Cut(string(head), "\n")
	if !ok {
		return ""
	}
	l, err := robotcsv.Detect(line)
	if err != nil {
		return "unknown"
	}
	return l.Version.Name
}

// keyedMutex serializes work per key.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
