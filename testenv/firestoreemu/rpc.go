package firestoreemu

import (
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"time"

	pb "cloud.google.com/go/firestore/apiv1/firestorepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// service implements google.firestore.v1.Firestore over the store.
type service struct {
	pb.UnimplementedFirestoreServer
	store *store
	txns  *txnManager
}

// readCtx is the consistency of one read RPC.
type readCtx struct {
	t     *txn      // transaction in use (busy), or nil
	newID []byte    // set when the RPC began the transaction
	at    time.Time // snapshot time; zero reads the latest state
	lock  bool      // read-write transaction: lock what is read
	// entered: the RPC holds the read-write transaction's turn (txn.sem).
	entered bool
}

// openRead resolves a read RPC's consistency selector. A read-write
// transaction is entered (its RPCs run one at a time); call closeRead.
func (s *service) openRead(ctx context.Context, txID []byte, newTxn *pb.TransactionOptions, readTime *timestamppb.Timestamp) (readCtx, error) {
	var rc readCtx
	switch {
	case len(txID) > 0:
		t, err := s.txns.use(txID)
		if err != nil {
			return rc, err
		}
		if !t.readOnly {
			if err := s.txns.enter(ctx, t); err != nil {
				s.txns.release(t)
				return rc, err
			}
			rc.entered = true
		}
		rc.t = t
	case newTxn != nil:
		t, err := s.beginTxn(newTxn)
		if err != nil {
			return rc, err
		}
		rc.t, rc.newID, rc.entered = t, []byte(t.id), !t.readOnly
	case readTime != nil:
		if err := readTime.CheckValid(); err != nil {
			return rc, invalid("read_time: %v", err)
		}
		rc.at = readTime.AsTime()
		return rc, nil
	default:
		return rc, nil
	}
	if rc.t.readOnly {
		rc.at = rc.t.readTime
	} else {
		rc.lock = true
	}
	return rc, nil
}

func (s *service) closeRead(rc *readCtx) {
	s.yieldTurn(rc)
	if rc.t != nil {
		s.txns.release(rc.t)
	}
}

// yieldTurn lets the transaction's next RPC run once this one has read (and
// locked) what it returns: streaming the responses needs no turn, and a
// client may read from the stream and issue other reads in between.
func (s *service) yieldTurn(rc *readCtx) {
	if rc.entered {
		rc.entered = false
		s.txns.leave(rc.t)
	}
}

func (s *service) beginTxn(o *pb.TransactionOptions) (*txn, error) {
	if ro := o.GetReadOnly(); ro != nil {
		var at time.Time
		if rt := ro.GetReadTime(); rt != nil {
			if err := rt.CheckValid(); err != nil {
				return nil, invalid("read_time: %v", err)
			}
			at = rt.AsTime()
		} else {
			s.store.mu.RLock()
			at = s.store.readTimeLocked()
			s.store.mu.RUnlock()
		}
		return s.txns.begin(true, at), nil
	}
	return s.txns.begin(false, time.Time{}), nil
}

// closeBegun ends the use of a transaction begun by BeginTransaction.
func (s *service) closeBegun(t *txn) {
	if !t.readOnly {
		s.txns.leave(t)
	}
	s.txns.release(t)
}

func checkDatabase(db string) error {
	if _, err := parseDatabase(db); err != nil {
		return invalid("%v", err)
	}
	return nil
}

// readDocs reads names under rc, locking them first in a read-write
// transaction. It returns the documents (nil for missing) and the read time.
func (s *service) readDocs(ctx context.Context, rc readCtx, names []string) ([]*pb.Document, time.Time, error) {
	if rc.lock {
		sorted := slices.Clone(names)
		slices.Sort(sorted)
		if err := s.txns.lockAll(ctx, rc.t, slices.Compact(sorted)); err != nil {
			return nil, time.Time{}, err
		}
	}
	out := make([]*pb.Document, len(names))
	s.store.mu.RLock()
	for i, n := range names {
		out[i] = s.store.getLocked(n, rc.at)
	}
	rt := rc.at
	if rt.IsZero() {
		rt = s.store.readTimeLocked()
	}
	s.store.mu.RUnlock()
	return out, rt, nil
}

func maskDoc(d *pb.Document, mask *pb.DocumentMask) (*pb.Document, error) {
	if mask == nil || d == nil {
		return d, nil
	}
	paths, err := parsePaths(mask.GetFieldPaths())
	if err != nil {
		return nil, invalid("mask: %v", err)
	}
	return &pb.Document{Name: d.GetName(), Fields: project(d.GetFields(), paths), CreateTime: d.GetCreateTime(), UpdateTime: d.GetUpdateTime()}, nil
}

// GetDocument implements Firestore.GetDocument.
func (s *service) GetDocument(ctx context.Context, req *pb.GetDocumentRequest) (*pb.Document, error) {
	if _, err := parseDocName(req.GetName()); err != nil {
		return nil, invalid("%v", err)
	}
	rc, err := s.openRead(ctx, req.GetTransaction(), nil, req.GetReadTime())
	if err != nil {
		return nil, err
	}
	defer s.closeRead(&rc)
	docs, _, err := s.readDocs(ctx, rc, []string{req.GetName()})
	if err != nil {
		return nil, err
	}
	if docs[0] == nil {
		return nil, status.Errorf(codes.NotFound, "Document %q not found", req.GetName())
	}
	return maskDoc(docs[0], req.GetMask())
}

// BatchGetDocuments implements Firestore.BatchGetDocuments.
func (s *service) BatchGetDocuments(req *pb.BatchGetDocumentsRequest, stream pb.Firestore_BatchGetDocumentsServer) error {
	if err := checkDatabase(req.GetDatabase()); err != nil {
		return err
	}
	for _, n := range req.GetDocuments() {
		if _, err := parseDocName(n); err != nil {
			return invalid("%v", err)
		}
		if !strings.HasPrefix(n, req.GetDatabase()+"/documents/") {
			return invalid("document %q is not in database %q", n, req.GetDatabase())
		}
	}
	rc, err := s.openRead(stream.Context(), req.GetTransaction(), req.GetNewTransaction(), req.GetReadTime())
	if err != nil {
		return err
	}
	defer s.closeRead(&rc)
	docs, rt, err := s.readDocs(stream.Context(), rc, req.GetDocuments())
	if err != nil {
		return err
	}
	s.yieldTurn(&rc)
	rts := timestamppb.New(rt)
	for i, d := range docs {
		res := &pb.BatchGetDocumentsResponse{ReadTime: rts}
		if i == 0 {
			res.Transaction = rc.newID
		}
		if d == nil {
			res.Result = &pb.BatchGetDocumentsResponse_Missing{Missing: req.GetDocuments()[i]}
		} else {
			md, err := maskDoc(d, req.GetMask())
			if err != nil {
				return err
			}
			res.Result = &pb.BatchGetDocumentsResponse_Found{Found: md}
		}
		if err := stream.Send(res); err != nil {
			return err
		}
	}
	if len(docs) == 0 && rc.newID != nil {
		return stream.Send(&pb.BatchGetDocumentsResponse{Transaction: rc.newID, ReadTime: rts})
	}
	return nil
}

// runQuery plans and runs a query under rc, locking the results in a
// read-write transaction.
func (s *service) runQuery(ctx context.Context, rc readCtx, parent string, q *pb.StructuredQuery) (*plannedQuery, queryResult, time.Time, error) {
	p, err := planQuery(parent, q)
	if err != nil {
		return nil, queryResult{}, time.Time{}, err
	}
	s.store.mu.RLock()
	res := s.store.runQueryLocked(p, rc.at)
	rt := rc.at
	if rt.IsZero() {
		rt = s.store.readTimeLocked()
	}
	s.store.mu.RUnlock()
	// In a read-write transaction, lock the results and evaluate again
	// until every document of the result was already locked when it was
	// evaluated (a fixpoint): documents that replace ones that stopped
	// matching while the transaction waited are locked too. Locked
	// documents cannot change, so this is the answer the transaction sees.
	for rc.lock {
		missing := s.txns.notHeld(rc.t, res.docs)
		if len(missing) == 0 {
			s.txns.recordQuery(rc.t, newRecordedQuery(p, res))
			break
		}
		slices.Sort(missing)
		if err := s.txns.lockAll(ctx, rc.t, missing); err != nil {
			return nil, queryResult{}, time.Time{}, err
		}
		s.store.mu.RLock()
		res = s.store.runQueryLocked(p, time.Time{})
		rt = s.store.readTimeLocked()
		s.store.mu.RUnlock()
	}
	return p, res, rt, nil
}

// RunQuery implements Firestore.RunQuery.
func (s *service) RunQuery(req *pb.RunQueryRequest, stream pb.Firestore_RunQueryServer) error {
	if req.GetExplainOptions() != nil {
		return status.Error(codes.Unimplemented, "query explain is not supported by this emulator")
	}
	q := req.GetStructuredQuery()
	if q == nil {
		return invalid("structured_query is required")
	}
	if q.GetFindNearest() != nil {
		return status.Error(codes.Unimplemented, "vector search (find_nearest) is not supported by this emulator")
	}
	rc, err := s.openRead(stream.Context(), req.GetTransaction(), req.GetNewTransaction(), req.GetReadTime())
	if err != nil {
		return err
	}
	defer s.closeRead(&rc)
	p, res, rt, err := s.runQuery(stream.Context(), rc, req.GetParent(), q)
	if err != nil {
		return err
	}
	s.yieldTurn(&rc)
	rts := timestamppb.New(rt)
	for i, d := range res.docs {
		r := &pb.RunQueryResponse{Document: p.shape(d), ReadTime: rts}
		if i == 0 {
			r.Transaction = rc.newID
			r.SkippedResults = int32(res.skipped)
		}
		if err := stream.Send(r); err != nil {
			return err
		}
	}
	if len(res.docs) == 0 {
		return stream.Send(&pb.RunQueryResponse{Transaction: rc.newID, ReadTime: rts, SkippedResults: int32(res.skipped)})
	}
	return nil
}

// RunAggregationQuery implements Firestore.RunAggregationQuery.
func (s *service) RunAggregationQuery(req *pb.RunAggregationQueryRequest, stream pb.Firestore_RunAggregationQueryServer) error {
	if req.GetExplainOptions() != nil {
		return status.Error(codes.Unimplemented, "query explain is not supported by this emulator")
	}
	aq := req.GetStructuredAggregationQuery()
	if aq.GetStructuredQuery() == nil {
		return invalid("structured_aggregation_query.structured_query is required")
	}
	if len(aq.GetAggregations()) == 0 || len(aq.GetAggregations()) > 5 {
		return invalid("an aggregation query needs between 1 and 5 aggregations, got %d", len(aq.GetAggregations()))
	}
	rc, err := s.openRead(stream.Context(), req.GetTransaction(), req.GetNewTransaction(), req.GetReadTime())
	if err != nil {
		return err
	}
	defer s.closeRead(&rc)
	_, res, rt, err := s.runQuery(stream.Context(), rc, req.GetParent(), aq.GetStructuredQuery())
	if err != nil {
		return err
	}
	fields, err := aggregate(aq.GetAggregations(), res.docs)
	if err != nil {
		return err
	}
	return stream.Send(&pb.RunAggregationQueryResponse{
		Result:      &pb.AggregationResult{AggregateFields: fields},
		Transaction: rc.newID,
		ReadTime:    timestamppb.New(rt),
	})
}

// commit applies writes atomically, in transaction txID if set. Documents
// written are locked first, so a writer waits for transactions that read
// them.
func (s *service) commit(ctx context.Context, writes []*pb.Write, txID []byte) (commitResult, error) {
	var t *txn
	if len(txID) > 0 {
		var err error
		if t, err = s.txns.use(txID); err != nil {
			return commitResult{}, err
		}
		if t.readOnly {
			defer s.txns.end(t)
			if len(writes) > 0 {
				return commitResult{}, invalid("Cannot modify entities in a read-only transaction.")
			}
			return commitResult{commitTime: t.readTime}, nil
		}
		if err := s.txns.enter(ctx, t); err != nil {
			s.txns.end(t)
			return commitResult{}, err
		}
		defer func() {
			s.txns.end(t)
			s.txns.leave(t)
		}()
	} else {
		t = &txn{internal: true}
		defer s.txns.end(t)
	}
	names := make([]string, 0, len(writes))
	for _, w := range writes {
		n, err := writeName(w)
		if err != nil {
			return commitResult{}, err
		}
		names = append(names, n)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if err := s.txns.lockAll(ctx, t, names); err != nil {
		return commitResult{}, err
	}
	if len(writes) == 0 {
		s.store.mu.RLock()
		ct := s.store.readTimeLocked()
		s.store.mu.RUnlock()
		return commitResult{commitTime: ct}, nil
	}
	var check func() error
	if !t.internal {
		qs := s.txns.queriesOf(t)
		check = func() error {
			if err := s.store.checkQueriesLocked(qs); err != nil {
				return err
			}
			return s.txns.seal(t)
		}
	}
	return s.store.applyWrites(writes, check)
}

func (s *service) checkWrites(db string, writes []*pb.Write) error {
	if err := checkDatabase(db); err != nil {
		return err
	}
	for _, w := range writes {
		n, err := writeName(w)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(n, db+"/documents/") {
			return invalid("document %q is not in database %q", n, db)
		}
	}
	return nil
}

// Commit implements Firestore.Commit.
func (s *service) Commit(ctx context.Context, req *pb.CommitRequest) (*pb.CommitResponse, error) {
	if err := s.checkWrites(req.GetDatabase(), req.GetWrites()); err != nil {
		return nil, err
	}
	res, err := s.commit(ctx, req.GetWrites(), req.GetTransaction())
	if err != nil {
		return nil, err
	}
	return &pb.CommitResponse{WriteResults: res.results, CommitTime: timestamppb.New(res.commitTime)}, nil
}

// BatchWrite implements Firestore.BatchWrite: each write is applied on its
// own and gets its own status.
func (s *service) BatchWrite(ctx context.Context, req *pb.BatchWriteRequest) (*pb.BatchWriteResponse, error) {
	if err := s.checkWrites(req.GetDatabase(), req.GetWrites()); err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(req.GetWrites()))
	for _, w := range req.GetWrites() {
		n, _ := writeName(w)
		if seen[n] {
			return nil, invalid("BatchWrite cannot write to document %q more than once", n)
		}
		seen[n] = true
	}
	out := &pb.BatchWriteResponse{}
	for _, w := range req.GetWrites() {
		res, err := s.commit(ctx, []*pb.Write{w}, nil)
		st := status.Convert(err).Proto()
		out.Status = append(out.Status, st)
		if err != nil {
			out.WriteResults = append(out.WriteResults, &pb.WriteResult{})
			continue
		}
		out.WriteResults = append(out.WriteResults, res.results[0])
	}
	return out, nil
}

// BeginTransaction implements Firestore.BeginTransaction.
func (s *service) BeginTransaction(ctx context.Context, req *pb.BeginTransactionRequest) (*pb.BeginTransactionResponse, error) {
	if err := checkDatabase(req.GetDatabase()); err != nil {
		return nil, err
	}
	t, err := s.beginTxn(req.GetOptions())
	if err != nil {
		return nil, err
	}
	s.closeBegun(t)
	return &pb.BeginTransactionResponse{Transaction: []byte(t.id)}, nil
}

// Rollback implements Firestore.Rollback.
func (s *service) Rollback(ctx context.Context, req *pb.RollbackRequest) (*emptypb.Empty, error) {
	if err := checkDatabase(req.GetDatabase()); err != nil {
		return nil, err
	}
	t, err := s.txns.use(req.GetTransaction())
	if err != nil {
		return nil, err
	}
	s.txns.end(t)
	return &emptypb.Empty{}, nil
}

// CreateDocument implements Firestore.CreateDocument.
func (s *service) CreateDocument(ctx context.Context, req *pb.CreateDocumentRequest) (*pb.Document, error) {
	if _, _, err := parseParent(req.GetParent()); err != nil {
		return nil, invalid("%v", err)
	}
	id := req.GetDocumentId()
	if id == "" {
		id = autoID()
	}
	name := req.GetParent() + "/" + req.GetCollectionId() + "/" + id
	if _, err := parseDocName(name); err != nil {
		return nil, invalid("%v", err)
	}
	doc := &pb.Document{Name: name, Fields: req.GetDocument().GetFields()}
	w := &pb.Write{
		Operation:       &pb.Write_Update{Update: doc},
		CurrentDocument: &pb.Precondition{ConditionType: &pb.Precondition_Exists{Exists: false}},
	}
	if _, err := s.commit(ctx, []*pb.Write{w}, nil); err != nil {
		return nil, err
	}
	return s.readBack(ctx, name, req.GetMask())
}

func (s *service) readBack(ctx context.Context, name string, mask *pb.DocumentMask) (*pb.Document, error) {
	docs, _, err := s.readDocs(ctx, readCtx{}, []string{name})
	if err != nil {
		return nil, err
	}
	if docs[0] == nil {
		return nil, status.Errorf(codes.NotFound, "Document %q not found", name)
	}
	return maskDoc(docs[0], mask)
}

// UpdateDocument implements Firestore.UpdateDocument (an upsert unless a
// precondition says otherwise).
func (s *service) UpdateDocument(ctx context.Context, req *pb.UpdateDocumentRequest) (*pb.Document, error) {
	name := req.GetDocument().GetName()
	if _, err := parseDocName(name); err != nil {
		return nil, invalid("%v", err)
	}
	w := &pb.Write{
		Operation:       &pb.Write_Update{Update: req.GetDocument()},
		UpdateMask:      req.GetUpdateMask(),
		CurrentDocument: req.GetCurrentDocument(),
	}
	if _, err := s.commit(ctx, []*pb.Write{w}, nil); err != nil {
		return nil, err
	}
	return s.readBack(ctx, name, req.GetMask())
}

// DeleteDocument implements Firestore.DeleteDocument.
func (s *service) DeleteDocument(ctx context.Context, req *pb.DeleteDocumentRequest) (*emptypb.Empty, error) {
	if _, err := parseDocName(req.GetName()); err != nil {
		return nil, invalid("%v", err)
	}
	w := &pb.Write{Operation: &pb.Write_Delete{Delete: req.GetName()}, CurrentDocument: req.GetCurrentDocument()}
	if _, err := s.commit(ctx, []*pb.Write{w}, nil); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// ListDocuments implements Firestore.ListDocuments, ordered by name. With
// show_missing it includes documents that do not exist but have
// subcollections (name only, no timestamps).
func (s *service) ListDocuments(ctx context.Context, req *pb.ListDocumentsRequest) (*pb.ListDocumentsResponse, error) {
	if _, _, err := parseParent(req.GetParent()); err != nil {
		return nil, invalid("%v", err)
	}
	if ob := req.GetOrderBy(); ob != "" && ob != namePath && ob != namePath+" asc" {
		return nil, invalid("ListDocuments only supports ordering by __name__, got %q", ob)
	}
	rc, err := s.openRead(ctx, req.GetTransaction(), nil, req.GetReadTime())
	if err != nil {
		return nil, err
	}
	defer s.closeRead(&rc)
	q := &pb.StructuredQuery{From: []*pb.StructuredQuery_CollectionSelector{{CollectionId: req.GetCollectionId(), AllDescendants: req.GetCollectionId() == ""}}}
	p, err := planQuery(req.GetParent(), q)
	if err != nil {
		return nil, err
	}
	s.store.mu.RLock()
	res := s.store.runQueryLocked(p, rc.at)
	docs := res.docs
	if req.GetShowMissing() && req.GetCollectionId() != "" {
		collPath := req.GetParent() + "/" + req.GetCollectionId()
		have := make(map[string]bool, len(docs))
		for _, d := range docs {
			have[d.GetName()] = true
		}
		for path, c := range s.store.colls {
			rest, ok := strings.CutPrefix(path, collPath+"/")
			if !ok || !hasLiveDoc(c, rc.at) {
				continue
			}
			id, _, _ := strings.Cut(rest, "/")
			name := collPath + "/" + id
			if !have[name] {
				have[name] = true
				docs = append(docs, &pb.Document{Name: name})
			}
		}
	}
	s.store.mu.RUnlock()
	slices.SortFunc(docs, func(a, b *pb.Document) int { return compareRefs(a.GetName(), b.GetName()) })
	if tok := req.GetPageToken(); tok != "" {
		i, _ := slices.BinarySearchFunc(docs, tok, func(d *pb.Document, t string) int { return compareRefs(d.GetName(), t) })
		for i < len(docs) && compareRefs(docs[i].GetName(), tok) <= 0 {
			i++
		}
		docs = docs[i:]
	}
	out := &pb.ListDocumentsResponse{}
	if ps := int(req.GetPageSize()); ps > 0 && len(docs) > ps {
		docs = docs[:ps]
		out.NextPageToken = docs[ps-1].GetName()
	}
	for _, d := range docs {
		md, err := maskDoc(d, req.GetMask())
		if err != nil {
			return nil, err
		}
		out.Documents = append(out.Documents, md)
	}
	return out, nil
}

func hasLiveDoc(c map[string]*docEntry, at time.Time) bool {
	for _, e := range c {
		if e.at(at) != nil {
			return true
		}
	}
	return false
}

// ListCollectionIds implements Firestore.ListCollectionIds: the IDs of the
// parent's subcollections that contain documents at any depth.
func (s *service) ListCollectionIds(ctx context.Context, req *pb.ListCollectionIdsRequest) (*pb.ListCollectionIdsResponse, error) {
	if _, _, err := parseParent(req.GetParent()); err != nil {
		return nil, invalid("%v", err)
	}
	var at time.Time
	if rt := req.GetReadTime(); rt != nil {
		if err := rt.CheckValid(); err != nil {
			return nil, invalid("read_time: %v", err)
		}
		at = rt.AsTime()
	}
	prefix := req.GetParent() + "/"
	set := map[string]bool{}
	s.store.mu.RLock()
	for path, c := range s.store.colls {
		rest, ok := strings.CutPrefix(path, prefix)
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rest, "/")
		if !set[id] && hasLiveDoc(c, at) {
			set[id] = true
		}
	}
	s.store.mu.RUnlock()
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if tok := req.GetPageToken(); tok != "" {
		i, found := slices.BinarySearch(ids, tok)
		if found {
			i++
		}
		ids = ids[i:]
	}
	out := &pb.ListCollectionIdsResponse{}
	if ps := int(req.GetPageSize()); ps > 0 && len(ids) > ps {
		ids = ids[:ps]
		out.NextPageToken = ids[ps-1]
	}
	out.CollectionIds = ids
	return out, nil
}

// Listen implements Firestore.Listen (not supported).
func (s *service) Listen(pb.Firestore_ListenServer) error {
	return status.Error(codes.Unimplemented, "Listen (snapshot listeners) is not supported by this emulator")
}

// Write implements Firestore.Write (not supported).
func (s *service) Write(pb.Firestore_WriteServer) error {
	return status.Error(codes.Unimplemented, "the streaming Write RPC is not supported by this emulator; use Commit")
}

const autoIDChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// autoID returns a 20-character random document ID like the client's.
func autoID() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = autoIDChars[int(b[i])%len(autoIDChars)]
	}
	return string(b[:])
}
