package firestoreemu

import (
	"fmt"
	"maps"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "cloud.google.com/go/firestore/apiv1/firestorepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	maxDocumentSize = 1 << 20 // bytes, Firestore's limit
	maxFields       = 20000
	// versionRetention is how long old document versions are kept for reads
	// at a past read_time (Firestore allows one hour without PITR).
	versionRetention = time.Hour
	// maxVersionsPerDoc bounds one document's history when it is written
	// faster than the retention window ages versions out (or the clock
	// stands still); reads before the oldest kept version see no document.
	maxVersionsPerDoc = 100
)

// version is one state of a document; doc is nil for a deletion.
type version struct {
	at  time.Time
	doc *pb.Document
}

// docEntry holds a document's versions, oldest first. Stored *pb.Document
// values are never mutated after they are installed, so readers may hand
// them to gRPC without copying.
type docEntry struct {
	name     string
	collPath string
	versions []version
}

func (e *docEntry) latest() *pb.Document { return e.versions[len(e.versions)-1].doc }

// at returns the document as of t (zero t: latest).
func (e *docEntry) at(t time.Time) *pb.Document {
	if t.IsZero() {
		return e.latest()
	}
	for i := len(e.versions) - 1; i >= 0; i-- {
		if !e.versions[i].at.After(t) {
			return e.versions[i].doc
		}
	}
	return nil
}

// store is the in-memory database: every document of every project, keyed
// by full name, with an index of documents per collection.
type store struct {
	now func() time.Time

	mu         sync.RWMutex
	docs       map[string]*docEntry
	colls      map[string]map[string]*docEntry // collection full path -> doc name -> entry
	lastCommit time.Time
	changes    uint64      // incremented on every applied commit; used by persistence
	tombstones []tombstone // deletions in commit order, swept after the retention window

	// maxRead is the latest read time handed out (Unix microseconds). It is
	// advanced under the read lock, so it is atomic; commits (under the
	// write lock) take a commit time after it, so no snapshot ever sees a
	// commit made after the snapshot's read time was chosen.
	maxRead atomic.Int64
}

// tombstone records that entry e was deleted at commit time at.
type tombstone struct {
	e  *docEntry
	at time.Time
}

func newStore(now func() time.Time) *store {
	return &store{
		now:   now,
		docs:  make(map[string]*docEntry),
		colls: make(map[string]map[string]*docEntry),
	}
}

// readTimeLocked returns a read timestamp not before the last commit.
// Caller holds s.mu (read or write).
func (s *store) readTimeLocked() time.Time {
	t := s.now().UTC().Truncate(time.Microsecond)
	if t.Before(s.lastCommit) {
		t = s.lastCommit
	}
	us := t.UnixMicro()
	for {
		cur := s.maxRead.Load()
		if us <= cur || s.maxRead.CompareAndSwap(cur, us) {
			return t
		}
	}
}

// get returns the document named name as of t (zero: latest), or nil.
// Caller holds s.mu.
func (s *store) getLocked(name string, t time.Time) *pb.Document {
	e := s.docs[name]
	if e == nil {
		return nil
	}
	return e.at(t)
}

func (s *store) installLocked(name, collPath string, doc *pb.Document, at time.Time) {
	e := s.docs[name]
	if e == nil {
		if doc == nil {
			return
		}
		e = &docEntry{name: name, collPath: collPath}
		s.docs[name] = e
		c := s.colls[collPath]
		if c == nil {
			c = make(map[string]*docEntry)
			s.colls[collPath] = c
		}
		c[name] = e
	}
	e.versions = append(e.versions, version{at: at, doc: doc})
	// Prune versions nobody can read any more: keep the newest version at
	// or before the retention horizon and everything after it, at most
	// maxVersionsPerDoc. Versions are in time order, so the scan stops at
	// the first one after the horizon.
	horizon := at.Add(-versionRetention)
	drop := 0
	for drop+1 < len(e.versions) && !e.versions[drop+1].at.After(horizon) {
		drop++
	}
	drop = max(drop, len(e.versions)-maxVersionsPerDoc)
	if drop > 0 {
		clear(e.versions[:drop]) // release the documents
		e.versions = e.versions[drop:]
	}
	if len(e.versions) == 1 && e.versions[0].doc == nil {
		s.removeLocked(e)
		return
	}
	if doc == nil {
		s.tombstones = append(s.tombstones, tombstone{e: e, at: at})
	}
}

// sweepLocked removes documents deleted at or before horizon: no read
// within the retention window can see any of their versions. Caller holds
// s.mu for writing.
func (s *store) sweepLocked(horizon time.Time) {
	n := 0
	for ; n < len(s.tombstones) && !s.tombstones[n].at.After(horizon); n++ {
		ts := s.tombstones[n]
		if s.docs[ts.e.name] != ts.e {
			continue // already removed (reset, or pruned to the tombstone)
		}
		if last := ts.e.versions[len(ts.e.versions)-1]; last.doc == nil && last.at.Equal(ts.at) {
			s.removeLocked(ts.e)
		}
	}
	if n > 0 {
		clear(s.tombstones[:n])
		s.tombstones = s.tombstones[n:]
	}
}

// sweep removes documents deleted longer than the retention window ago;
// the server runs it periodically, so deletions are reclaimed even when no
// further commits happen.
func (s *store) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC()
	if now.Before(s.lastCommit) {
		now = s.lastCommit
	}
	s.sweepLocked(now.Add(-versionRetention))
}

func (s *store) removeLocked(e *docEntry) {
	delete(s.docs, e.name)
	if c := s.colls[e.collPath]; c != nil {
		delete(c, e.name)
		if len(c) == 0 {
			delete(s.colls, e.collPath)
		}
	}
}

// reset drops every document whose name starts with prefix ("" drops all).
func (s *store) reset(prefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if prefix == "" {
		s.docs = make(map[string]*docEntry)
		s.colls = make(map[string]map[string]*docEntry)
		s.tombstones = nil
	} else {
		for _, e := range s.docs {
			if strings.HasPrefix(e.name, prefix) {
				s.removeLocked(e)
			}
		}
	}
	s.changes++
}

// snapshot returns the latest version of every existing document.
func (s *store) snapshot() ([]*pb.Document, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*pb.Document, 0, len(s.docs))
	for _, e := range s.docs {
		if d := e.latest(); d != nil {
			out = append(out, d)
		}
	}
	return out, s.changes
}

// load installs documents read from a data file.
func (s *store) load(docs []*pb.Document) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range docs {
		n, err := parseDocName(d.GetName())
		if err != nil {
			return fmt.Errorf("load document: %w", err)
		}
		at := d.GetUpdateTime().AsTime()
		s.installLocked(n.full, n.collPath, d, at)
		if at.After(s.lastCommit) {
			s.lastCommit = at
		}
	}
	return nil
}

// commitResult is the outcome of applying a list of writes atomically.
type commitResult struct {
	results    []*pb.WriteResult
	commitTime time.Time
}

// applyWrites validates and applies writes atomically: either every write is
// installed at one commit time, or none is and the first error is returned.
// check, if set, runs first under the store lock and can veto the commit.
func (s *store) applyWrites(writes []*pb.Write, check func() error) (commitResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if check != nil {
		if err := check(); err != nil {
			return commitResult{}, err
		}
	}
	// A commit time is after every earlier commit and every read time
	// already handed out (a snapshot at that read time must not see it).
	commitTime := s.now().UTC().Truncate(time.Microsecond)
	floor := s.lastCommit
	if mr := time.UnixMicro(s.maxRead.Load()).UTC(); mr.After(floor) {
		floor = mr
	}
	if !commitTime.After(floor) {
		commitTime = floor.Add(time.Microsecond)
	}
	type staged struct {
		n   docName
		doc *pb.Document
	}
	stage := make(map[string]*staged, len(writes))
	order := make([]string, 0, len(writes))
	results := make([]*pb.WriteResult, len(writes))
	for i, w := range writes {
		name, err := writeName(w)
		if err != nil {
			return commitResult{}, err
		}
		n, err := parseDocName(name)
		if err != nil {
			return commitResult{}, status.Error(codes.InvalidArgument, err.Error())
		}
		st, ok := stage[name]
		if !ok {
			st = &staged{n: n, doc: s.getLocked(name, time.Time{})}
			stage[name] = st
			order = append(order, name)
		}
		doc, res, err := applyWrite(w, n, st.doc, commitTime)
		if err != nil {
			return commitResult{}, err
		}
		st.doc = doc
		results[i] = res
	}
	// Every write succeeded: take the commit time and install.
	s.lastCommit = commitTime
	for _, name := range order {
		st := stage[name]
		prev := s.getLocked(name, time.Time{})
		if prev == st.doc {
			continue // unchanged (e.g. a no-op write or delete of a missing doc)
		}
		s.installLocked(name, st.n.collPath, st.doc, commitTime)
	}
	s.sweepLocked(commitTime.Add(-versionRetention))
	s.changes++
	return commitResult{results: results, commitTime: commitTime}, nil
}

func writeName(w *pb.Write) (string, error) {
	switch op := w.GetOperation().(type) {
	case *pb.Write_Update:
		return op.Update.GetName(), nil
	case *pb.Write_Delete:
		return op.Delete, nil
	case *pb.Write_Transform:
		return op.Transform.GetDocument(), nil
	default:
		return "", status.Error(codes.InvalidArgument, "write has no operation")
	}
}

// applyWrite computes the new state of one document. base is the current
// state (nil if missing); the returned document is nil for a deletion.
func applyWrite(w *pb.Write, n docName, base *pb.Document, commitTime time.Time) (*pb.Document, *pb.WriteResult, error) {
	if err := checkPrecondition(w.GetCurrentDocument(), n.full, base); err != nil {
		return nil, nil, err
	}
	ts := timestamppb.New(commitTime)
	var fields map[string]*pb.Value
	var transforms []*pb.DocumentTransform_FieldTransform
	switch op := w.GetOperation().(type) {
	case *pb.Write_Delete:
		if len(w.GetUpdateTransforms()) > 0 || w.GetUpdateMask() != nil {
			return nil, nil, status.Error(codes.InvalidArgument, "a delete cannot have a mask or transforms")
		}
		return nil, &pb.WriteResult{UpdateTime: ts}, nil
	case *pb.Write_Transform:
		fields = maps.Clone(base.GetFields())
		transforms = op.Transform.GetFieldTransforms()
	case *pb.Write_Update:
		if err := validateFields(op.Update.GetFields(), 0); err != nil {
			return nil, nil, status.Errorf(codes.InvalidArgument, "document %q: %v", n.full, err)
		}
		if mask := w.GetUpdateMask(); mask != nil {
			fields = maps.Clone(base.GetFields())
			if fields == nil {
				fields = make(map[string]*pb.Value)
			}
			paths, err := parsePaths(mask.GetFieldPaths())
			if err != nil {
				return nil, nil, status.Errorf(codes.InvalidArgument, "update mask of %q: %v", n.full, err)
			}
			for _, p := range paths {
				if v := getField(op.Update.GetFields(), p); v != nil {
					setField(fields, p, v)
				} else {
					deleteField(fields, p)
				}
			}
		} else {
			fields = maps.Clone(op.Update.GetFields())
		}
		transforms = w.GetUpdateTransforms()
	}
	if fields == nil {
		fields = make(map[string]*pb.Value)
	}
	var transformResults []*pb.Value
	if len(transforms) > 0 {
		transformResults = make([]*pb.Value, 0, len(transforms))
		seen := make(map[string]bool, len(transforms))
		for _, ft := range transforms {
			if seen[ft.GetFieldPath()] {
				return nil, nil, status.Errorf(codes.InvalidArgument, "document %q: field %q transformed more than once", n.full, ft.GetFieldPath())
			}
			seen[ft.GetFieldPath()] = true
			path, err := parseFieldPath(ft.GetFieldPath())
			if err != nil {
				return nil, nil, status.Errorf(codes.InvalidArgument, "transform of %q: %v", n.full, err)
			}
			nv, res, err := applyTransform(ft, getField(fields, path), commitTime)
			if err != nil {
				return nil, nil, status.Errorf(codes.InvalidArgument, "transform of %q field %q: %v", n.full, ft.GetFieldPath(), err)
			}
			setField(fields, path, nv)
			transformResults = append(transformResults, res)
		}
	}
	if size := nameSize(n.full) + fieldsSize(fields) + 32; size > maxDocumentSize {
		return nil, nil, status.Errorf(codes.InvalidArgument,
			"Document %q cannot be written because its size (%d bytes) exceeds the maximum allowed size of 1,048,576 bytes.", n.full, size)
	}
	if c := countFields(fields); c > maxFields {
		return nil, nil, status.Errorf(codes.InvalidArgument,
			"Document %q cannot be written because it has %d fields, more than the maximum of 20000.", n.full, c)
	}
	doc := &pb.Document{Name: n.full, Fields: fields, CreateTime: ts, UpdateTime: ts}
	if base != nil {
		doc.CreateTime = base.GetCreateTime()
		if fieldsEqual(base.GetFields(), fields) {
			// Firestore keeps update_time for a write that changes nothing.
			return base, &pb.WriteResult{UpdateTime: base.GetUpdateTime(), TransformResults: transformResults}, nil
		}
	}
	return doc, &pb.WriteResult{UpdateTime: ts, TransformResults: transformResults}, nil
}

func fieldsEqual(a, b map[string]*pb.Value) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || !proto.Equal(va, vb) {
			return false
		}
	}
	return true
}

func parsePaths(ps []string) ([][]string, error) {
	out := make([][]string, 0, len(ps))
	for _, p := range ps {
		segs, err := parseFieldPath(p)
		if err != nil {
			return nil, err
		}
		out = append(out, segs)
	}
	return out, nil
}

func checkPrecondition(pre *pb.Precondition, name string, base *pb.Document) error {
	switch c := pre.GetConditionType().(type) {
	case *pb.Precondition_Exists:
		if c.Exists && base == nil {
			return status.Errorf(codes.NotFound, "No document to update: %s", name)
		}
		if !c.Exists && base != nil {
			return status.Errorf(codes.AlreadyExists, "Document already exists: %s", name)
		}
	case *pb.Precondition_UpdateTime:
		if base == nil {
			return status.Errorf(codes.NotFound, "No document to update: %s", name)
		}
		if !proto.Equal(base.GetUpdateTime(), c.UpdateTime) {
			return status.Errorf(codes.FailedPrecondition,
				"the stored version (%s) does not match the required base version (%s) of %s",
				base.GetUpdateTime().AsTime().Format(time.RFC3339Nano), c.UpdateTime.AsTime().Format(time.RFC3339Nano), name)
		}
	}
	return nil
}

// applyTransform returns the new field value and the transform result.
func applyTransform(ft *pb.DocumentTransform_FieldTransform, cur *pb.Value, commitTime time.Time) (*pb.Value, *pb.Value, error) {
	switch t := ft.GetTransformType().(type) {
	case *pb.DocumentTransform_FieldTransform_SetToServerValue:
		if t.SetToServerValue != pb.DocumentTransform_FieldTransform_REQUEST_TIME {
			return nil, nil, fmt.Errorf("unsupported server value %v", t.SetToServerValue)
		}
		v := &pb.Value{ValueType: &pb.Value_TimestampValue{TimestampValue: timestamppb.New(commitTime)}}
		return v, v, nil
	case *pb.DocumentTransform_FieldTransform_Increment:
		if typeRank(t.Increment) != rankNumber {
			return nil, nil, fmt.Errorf("increment operand must be a number")
		}
		v := increment(cur, t.Increment)
		return v, v, nil
	case *pb.DocumentTransform_FieldTransform_Maximum:
		if typeRank(t.Maximum) != rankNumber {
			return nil, nil, fmt.Errorf("maximum operand must be a number")
		}
		v := extremum(cur, t.Maximum, 1)
		return v, v, nil
	case *pb.DocumentTransform_FieldTransform_Minimum:
		if typeRank(t.Minimum) != rankNumber {
			return nil, nil, fmt.Errorf("minimum operand must be a number")
		}
		v := extremum(cur, t.Minimum, -1)
		return v, v, nil
	case *pb.DocumentTransform_FieldTransform_AppendMissingElements:
		out := append([]*pb.Value(nil), cur.GetArrayValue().GetValues()...)
		for _, e := range t.AppendMissingElements.GetValues() {
			if !containsValue(out, e) {
				out = append(out, e)
			}
		}
		return &pb.Value{ValueType: &pb.Value_ArrayValue{ArrayValue: &pb.ArrayValue{Values: out}}}, nullValue(), nil
	case *pb.DocumentTransform_FieldTransform_RemoveAllFromArray:
		var out []*pb.Value
		for _, e := range cur.GetArrayValue().GetValues() {
			if !containsValue(t.RemoveAllFromArray.GetValues(), e) {
				out = append(out, e)
			}
		}
		return &pb.Value{ValueType: &pb.Value_ArrayValue{ArrayValue: &pb.ArrayValue{Values: out}}}, nullValue(), nil
	default:
		return nil, nil, fmt.Errorf("unsupported transform")
	}
}

func containsValue(vs []*pb.Value, v *pb.Value) bool {
	for _, x := range vs {
		if valuesEqual(x, v) {
			return true
		}
	}
	return false
}

// increment adds operand to cur; a non-numeric cur is replaced by operand.
// Integer overflow saturates like Firestore.
func increment(cur, operand *pb.Value) *pb.Value {
	if typeRank(cur) != rankNumber || cur == nil {
		return operand
	}
	ci, cInt := cur.GetValueType().(*pb.Value_IntegerValue)
	oi, oInt := operand.GetValueType().(*pb.Value_IntegerValue)
	if cInt && oInt {
		a, b := ci.IntegerValue, oi.IntegerValue
		sum := a + b
		switch {
		case a > 0 && b > 0 && sum < 0:
			sum = math.MaxInt64
		case a < 0 && b < 0 && sum >= 0:
			sum = math.MinInt64
		}
		return intValue(sum)
	}
	return doubleValue(toFloat(cur) + toFloat(operand))
}

// extremum implements maximum (sign 1) and minimum (sign -1).
func extremum(cur, operand *pb.Value, sign int) *pb.Value {
	if cur == nil || typeRank(cur) != rankNumber {
		return operand
	}
	if isNaNValue(cur) || isNaNValue(operand) {
		return doubleValue(math.NaN())
	}
	c := compareNumbers(operand, cur) * sign
	if c > 0 {
		return operand
	}
	return cur
}

func toFloat(v *pb.Value) float64 {
	if i, ok := v.GetValueType().(*pb.Value_IntegerValue); ok {
		return float64(i.IntegerValue)
	}
	return v.GetDoubleValue()
}
