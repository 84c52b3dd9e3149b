package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"cloud.google.com/go/civil"
	"cloud.google.com/go/storage"

	"github.com/labplatform/platform/contracts/names"
)

// maxHeader bounds the header line of a database.
const maxHeader = 1 << 20

type dbFile struct{ key, name string }

// dbFiles lists the live databases of a robot: the *.csv files of its db
// folder (rotated generations, *.csv.1 and so on, are read only to finish
// a series).
func (s *Shipper) dbFiles(robot string) []dbFile {
	dir := filepath.Join(s.root, robot, DBDir)
	entries, err := s.fs.ReadDir(dir)
	if err != nil {
		s.fail(robot, robot+"/"+DBDir, "list databases", fmt.Errorf("list %s: %w", dir, err))
		return nil
	}
	var out []dbFile
	for _, e := range entries {
		if e.Regular && strings.HasSuffix(e.Name, ".csv") && !strings.HasPrefix(e.Name, ".") {
			out = append(out, dbFile{key: robot + "/" + DBDir + "/" + e.Name, name: e.Name})
		}
	}
	return out
}

func seriesName(gen int, id FileID) string { return fmt.Sprintf("g%d-%x", gen, id.Ino) }

// rotatedMissingError says a database was rotated and its old generation
// cannot be found: the lines after the last shipped chunk are lost.
type rotatedMissingError struct {
	Path   string
	Offset int64
}

func (e *rotatedMissingError) Error() string {
	return fmt.Sprintf("database %s rotated; old generation not found, unshipped bytes after offset %d lost", e.Path, e.Offset)
}

// shipDB ships the new complete lines of one database (see README,
// "Append-only databases") and returns the number of chunks confirmed.
func (s *Shipper) shipDB(ctx context.Context, robot, name string) (int, error) {
	key := robot + "/" + DBDir + "/" + name
	dir := filepath.Join(s.root, robot, DBDir)
	path := filepath.Join(dir, name)
	st, ok, err := s.ckpt.DB(key)
	if err != nil {
		return 0, ckptErr(err)
	}
	live, err := s.fs.Stat(path)
	liveExists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	n := 0
	if ok && st.Pending != nil {
		uploaded, err := s.resumeChunk(ctx, robot, key, dir, name, &st)
		if err != nil {
			return 0, err
		}
		if uploaded {
			n++
		}
	}
	if !ok {
		if !liveExists {
			return 0, nil
		}
		st = DBRecord{Gen: 1, Series: seriesName(1, live.ID), ID: live.ID}
		if err := s.ckpt.PutDB(key, st); err != nil {
			return 0, ckptErr(err)
		}
		s.m.Series.WithLabelValues(robot, "new").Inc()
	}
	reason := ""
	switch {
	case !liveExists || live.ID != st.ID:
		// Rotated: finish the old generation while it is readable.
		old, found, err := s.findGeneration(dir, name, st.ID)
		if err != nil {
			return n, err
		}
		if found {
			c, err := s.shipRange(ctx, robot, key, &st, old, true)
			n += c
			if err != nil {
				return n, err
			}
		} else {
			s.m.Errors.WithLabelValues(robot, "rotated_missing").Inc()
			s.log.Error("ship database", "robot", robot, "key", key, "err", &rotatedMissingError{Path: path, Offset: st.Offset})
		}
		if !liveExists {
			return n, nil
		}
		reason = "rotated"
	case live.Size < st.Offset:
		reason = "truncated"
	default:
		same, err := s.tailMatches(path, st)
		if err != nil {
			return n, err
		}
		if !same {
			reason = "truncated"
		}
	}
	if reason != "" {
		s.log.Info("new database series", "robot", robot, "key", key, "reason", reason, "previous", st.Series, "shipped_to", st.Offset)
		st = DBRecord{Gen: st.Gen + 1, Series: seriesName(st.Gen+1, live.ID), ID: live.ID}
		if err := s.ckpt.PutDB(key, st); err != nil {
			return n, ckptErr(err)
		}
		s.m.Series.WithLabelValues(robot, reason).Inc()
	}
	c, err := s.shipRange(ctx, robot, key, &st, path, false)
	return n + c, err
}

// findGeneration finds the file of database name (live, or rotated to
// name.<suffix>) whose identity is id.
func (s *Shipper) findGeneration(dir, name string, id FileID) (string, bool, error) {
	entries, err := s.fs.ReadDir(dir)
	if err != nil {
		return "", false, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.Regular && e.ID == id && (e.Name == name || strings.HasPrefix(e.Name, name+".")) {
			return filepath.Join(dir, e.Name), true, nil
		}
	}
	return "", false, nil
}

// shipRange ships the lines of the generation at path after st.Offset in
// chunks. With final (a rotated generation) an unterminated last line is
// shipped too; otherwise only complete lines are.
func (s *Shipper) shipRange(ctx context.Context, robot, key string, st *DBRecord, path string, final bool) (int, error) {
	f, err := s.fs.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	if fi.ID != st.ID {
		return 0, &ChangedError{Path: path, Reason: "identity changed"}
	}
	size := fi.Size
	if st.Header == nil {
		h, err := readHeader(f, size)
		if err != nil {
			return 0, fmt.Errorf("read header of %s: %w", path, err)
		}
		if h == nil {
			return 0, nil // no complete header line yet
		}
		st.Header, st.Offset = h, int64(len(h))
		st.Tail = tailOf(h)
		if err := s.ckpt.PutDB(key, *st); err != nil {
			return 0, ckptErr(err)
		}
	}
	n := 0
	for st.Offset < size {
		end, err := cutPoint(f, st.Offset, size, s.opts.ChunkMax, final)
		if err != nil {
			return n, fmt.Errorf("read %s at %d: %w", path, st.Offset, err)
		}
		if end <= st.Offset {
			break
		}
		if !final && end-st.Offset < s.opts.ChunkMin && !s.waitedEnough(key) {
			break
		}
		s.clearWait(key)
		object, err := names.ChunkObject{
			Robot: robot, Date: civil.DateOf(s.opts.Clock.Now().UTC()), File: filepath.Base(key),
			Series: st.Series, Start: st.Offset, End: end,
		}.Name()
		if err != nil {
			return n, err
		}
		st.Pending = &ChunkIntent{Object: object, Start: st.Offset, End: end}
		if err := s.ckpt.PutDB(key, *st); err != nil {
			return n, ckptErr(err)
		}
		if err := s.shipChunk(ctx, robot, key, st, f, path, fi); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (s *Shipper) waitedEnough(key string) bool {
	now := s.opts.Clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	since, ok := s.waiting[key]
	if !ok {
		s.waiting[key] = now
		since = now
	}
	return now.Sub(since) >= s.opts.ChunkMaxWait
}

func (s *Shipper) clearWait(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.waiting, key)
}

// resumeChunk finishes the chunk a crash or failure left pending, under
// its recorded name and range, so it cannot land twice.
func (s *Shipper) resumeChunk(ctx context.Context, robot, key, dir, name string, st *DBRecord) (bool, error) {
	p := *st.Pending
	path, found, err := s.findGeneration(dir, name, st.ID)
	if err != nil {
		return false, err
	}
	if found {
		f, err := s.fs.Open(path)
		if err != nil {
			return false, fmt.Errorf("open %s: %w", path, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return false, fmt.Errorf("stat %s: %w", path, err)
		}
		if fi.ID == st.ID && fi.Size >= p.End {
			return true, s.shipChunk(ctx, robot, key, st, f, path, fi)
		}
	}
	// The bytes are gone (truncated, or rotated away): the chunk stands if
	// it landed before; otherwise those lines are lost with the file.
	attrs, err := s.bucket.Object(p.Object).Attrs(ctx)
	switch {
	case err == nil:
		st.Offset, st.LastObject = p.End, p.Object
		s.log.Info("pending chunk had landed", "robot", robot, "key", key, "object", p.Object, "generation", attrs.Generation)
	case errors.Is(err, storage.ErrObjectNotExist):
		s.m.Errors.WithLabelValues(robot, "rotated_missing").Inc()
		s.log.Error("pending chunk source gone", "robot", robot, "key", key, "object", p.Object, "start", p.Start, "end", p.End)
	default:
		return false, gcsErr(fmt.Errorf("attributes of %s: %w", p.Object, err))
	}
	st.Pending = nil
	if err := s.ckpt.PutDB(key, *st); err != nil {
		return false, ckptErr(err)
	}
	return false, nil
}

// shipChunk uploads st.Pending from f and records it.
func (s *Shipper) shipChunk(ctx context.Context, robot, key string, st *DBRecord, f File, path string, fi FileInfo) error {
	p := *st.Pending
	body := func() io.Reader {
		return io.MultiReader(bytes.NewReader(st.Header), io.NewSectionReader(f, p.Start, p.End-p.Start))
	}
	d, err := digestOf(body())
	if err != nil {
		return fmt.Errorf("read %s [%d,%d): %w", path, p.Start, p.End, err)
	}
	if want := int64(len(st.Header)) + p.End - p.Start; d.size != want {
		return &ChangedError{Path: path, Reason: fmt.Sprintf("read %d bytes of chunk, want %d", d.size, want)}
	}
	check := func() error {
		now, err := f.Stat()
		if err != nil {
			return fmt.Errorf("stat %s: %w", path, err)
		}
		if now.ID != st.ID || now.Size < p.End {
			return &ChangedError{Path: path, Reason: "truncated or replaced during the upload"}
		}
		return nil
	}
	meta := map[string]string{
		"robot_id":     robot,
		"source_path":  path,
		"source_mtime": fi.ModTime.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"),
		"sha256":       d.sha256,
		"db_file":      filepath.Base(key),
		"chunk_series": st.Series,
		"chunk_start":  strconv.FormatInt(p.Start, 10),
		"chunk_end":    strconv.FormatInt(p.End, 10),
	}
	if hint := schemaHint(st.Header); hint != "" {
		meta["schema_hint"] = hint
	}
	gen, err := s.upload(ctx, p.Object, d, meta, body(), check)
	if err != nil {
		return gcsErr(err)
	}
	tail := make([]byte, min(tailBytes, p.End-p.Start))
	if _, err := f.ReadAt(tail, p.End-int64(len(tail))); err != nil {
		return fmt.Errorf("read %s at %d: %w", path, p.End-int64(len(tail)), err)
	}
	if err := check(); err != nil {
		return err // the object stands; the next pass re-reads the range
	}
	st.Tail = tail
	now := s.opts.Clock.Now()
	st.Offset, st.Pending, st.LastObject, st.ShippedAt, st.ModTime = p.End, nil, p.Object, now, fi.ModTime
	if err := s.ckpt.PutDB(key, *st); err != nil {
		return ckptErr(err)
	}
	s.m.FilesShipped.WithLabelValues(robot, "chunk").Inc()
	s.m.BytesShipped.WithLabelValues(robot, "chunk").Add(float64(d.size))
	s.m.Lag.WithLabelValues("chunk").Observe(now.Sub(fi.ModTime).Seconds())
	s.log.Info("shipped chunk", "robot", robot, "key", key, "object", p.Object, "generation", gen, "bytes", d.size)
	return nil
}

const tailBytes = 4096

func tailOf(b []byte) []byte { return append([]byte(nil), b[max(0, len(b)-tailBytes):]...) }

// tailMatches reports whether the bytes before st.Offset are still those
// shipped.
func (s *Shipper) tailMatches(path string, st DBRecord) (bool, error) {
	if len(st.Tail) == 0 {
		return true, nil
	}
	f, err := s.fs.Open(path)
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, len(st.Tail))
	if _, err := f.ReadAt(buf, st.Offset-int64(len(buf))); err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, fmt.Errorf("read %s at %d: %w", path, st.Offset-int64(len(buf)), err)
	}
	return bytes.Equal(buf, st.Tail), nil
}

// readHeader returns the first line of f, newline included, or nil when it
// has none yet.
func readHeader(f io.ReaderAt, size int64) ([]byte, error) {
	buf := make([]byte, min(size, maxHeader))
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
		return buf[:i+1], nil
	}
	if int64(n) >= maxHeader {
		return nil, fmt.Errorf("no newline in the first %d bytes", maxHeader)
	}
	return nil, nil
}

// cutPoint returns where the chunk starting at start ends: after the last
// newline within max bytes; after the first newline beyond, for a line
// longer than max; at size for a final generation with an unterminated
// last line; start when there is no complete line.
func cutPoint(f io.ReaderAt, start, size, maxLen int64, final bool) (int64, error) {
	const block = 64 << 10
	limit := min(size, start+maxLen)
	buf := make([]byte, block)
	// Backwards from limit for the last newline.
	for hi := limit; hi > start; {
		lo := max(start, hi-block)
		n, err := f.ReadAt(buf[:hi-lo], lo)
		if err != nil && !(errors.Is(err, io.EOF) && int64(n) == hi-lo) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return lo + int64(i) + 1, nil
		}
		hi = lo
	}
	// A line longer than max: forwards for its end.
	for lo := limit; lo < size; {
		hi := min(size, lo+block)
		n, err := f.ReadAt(buf[:hi-lo], lo)
		if err != nil && !(errors.Is(err, io.EOF) && int64(n) == hi-lo) {
			return 0, err
		}
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return lo + int64(i) + 1, nil
		}
		lo = hi
	}
	if final {
		return size, nil
	}
	return start, nil
}

// dbBacklog is the number of bytes of robot's databases not shipped yet.
func (s *Shipper) dbBacklog(robot string) int64 {
	dbs, err := s.ckpt.DBs(robot + "/")
	if err != nil {
		return 0
	}
	var total int64
	for key, st := range dbs {
		fi, err := s.fs.Stat(filepath.Join(s.root, key))
		if err == nil && fi.ID == st.ID && fi.Size > st.Offset {
			total += fi.Size - st.Offset
		}
	}
	return total
}
