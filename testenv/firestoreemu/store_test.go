package firestoreemu

import (
	"fmt"
	"testing"
	"time"

	pb "cloud.google.com/go/firestore/apiv1/firestorepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Internal invariants of the version store that the client cannot observe:
// how much history is kept.

const testRoot = "projects/p/databases/(default)/documents"

func setWrite(name string, n int64) *pb.Write {
	return &pb.Write{Operation: &pb.Write_Update{Update: &pb.Document{Name: name, Fields: map[string]*pb.Value{"n": intValue(n)}}}}
}

func deleteWrite(name string) *pb.Write {
	return &pb.Write{Operation: &pb.Write_Delete{Delete: name}}
}

type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

func mustApply(t *testing.T, s *store, ws ...*pb.Write) commitResult {
	t.Helper()
	res, err := s.applyWrites(ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestDeletedDocumentsAreSweptAfterRetention(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newStore(clock.now)
	var created time.Time
	for i := range 1000 {
		n := fmt.Sprintf("%s/markers/m%d", testRoot, i)
		res := mustApply(t, s, setWrite(n, 1))
		if i == 0 {
			created = res.commitTime
		}
		mustApply(t, s, deleteWrite(n))
	}
	// Within the retention window the history stays readable.
	clock.t = clock.t.Add(versionRetention / 2)
	s.sweep()
	s.mu.RLock()
	d := s.getLocked(testRoot+"/markers/m0", created)
	s.mu.RUnlock()
	if d == nil {
		t.Fatal("a deleted document is not readable at a read time inside the retention window")
	}
	clock.t = clock.t.Add(versionRetention)
	s.sweep() // what the server's ticker runs
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.docs) != 0 || len(s.colls) != 0 || len(s.tombstones) != 0 {
		t.Fatalf("after the retention window the store still holds %d documents, %d collections, %d tombstones",
			len(s.docs), len(s.colls), len(s.tombstones))
	}
}

func TestWriteSweepsExpiredTombstones(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newStore(clock.now)
	for i := range 100 {
		n := fmt.Sprintf("%s/markers/m%d", testRoot, i)
		mustApply(t, s, setWrite(n, 1))
		mustApply(t, s, deleteWrite(n))
	}
	clock.t = clock.t.Add(2 * versionRetention)
	mustApply(t, s, setWrite(testRoot+"/other/x", 1))
	if len(s.docs) != 1 {
		t.Fatalf("store holds %d documents, want 1", len(s.docs))
	}
}

func TestVersionHistoryIsBoundedWithFrozenClock(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newStore(clock.now)
	n := testRoot + "/c/hot"
	for i := range 3 * maxVersionsPerDoc {
		mustApply(t, s, setWrite(n, int64(i)))
	}
	if got := len(s.docs[n].versions); got > maxVersionsPerDoc {
		t.Fatalf("%d versions kept, want at most %d", got, maxVersionsPerDoc)
	}
	if got := s.docs[n].latest().GetFields()["n"].GetIntegerValue(); got != 3*maxVersionsPerDoc-1 {
		t.Fatalf("latest n = %d, want %d", got, 3*maxVersionsPerDoc-1)
	}
}

func TestPruneKeepsNewestVersionBeforeHorizon(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newStore(clock.now)
	n := testRoot + "/c/d"
	var times []time.Time
	for i := range 5 {
		times = append(times, mustApply(t, s, setWrite(n, int64(i))).commitTime)
		clock.t = clock.t.Add(versionRetention / 4)
	}
	// Writes at 0, 15, 30, 45 and 60 minutes, then at 105: the horizon is
	// minute 45, so the versions of minutes 0-30 go and 45 stays.
	clock.t = clock.t.Add(versionRetention / 2)
	last := mustApply(t, s, setWrite(n, 5)).commitTime
	horizon := last.Add(-versionRetention)
	e := s.docs[n]
	if e.versions[0].at.After(horizon) {
		t.Fatalf("oldest kept version at %v is after the horizon %v: reads at the horizon would miss the document", e.versions[0].at, horizon)
	}
	if len(e.versions) > 1 && !e.versions[1].at.After(horizon) {
		t.Fatalf("two versions at or before the horizon kept: %v, %v", e.versions[0].at, e.versions[1].at)
	}
	if len(e.versions) != 3 {
		t.Fatalf("%d versions kept, want 3 (minutes 45, 60, 105)", len(e.versions))
	}
	if got := e.at(horizon).GetFields()["n"].GetIntegerValue(); got != 3 {
		t.Fatalf("read at horizon sees n = %d, want 3 (written at %v)", got, times[3])
	}
}

// checkQueriesLocked aborts when a document of a recorded result changed
// since the query ran, even though the set of names is the same.
func TestQueryCheckComparesUpdateTimes(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newStore(clock.now)
	n := testRoot + "/c/d"
	mustApply(t, s, setWrite(n, 1))
	p, err := planQuery(testRoot, &pb.StructuredQuery{From: []*pb.StructuredQuery_CollectionSelector{{CollectionId: "c"}}})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.RLock()
	rq := newRecordedQuery(p, s.runQueryLocked(p, time.Time{}))
	if err := s.checkQueriesLocked([]recordedQuery{rq}); err != nil {
		t.Fatalf("unchanged result: %v", err)
	}
	s.mu.RUnlock()
	mustApply(t, s, setWrite(n, 2))
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkQueriesLocked([]recordedQuery{rq}); status.Code(err) != codes.Aborted {
		t.Fatalf("changed document: got %v, want ABORTED", err)
	}
}
