package ingest_test

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/crc32"
	"slices"
	"testing"

	"cloud.google.com/go/civil"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/ingest"
	"github.com/labplatform/platform/ingest/internal/rawcheck"
)

func (r *rig) upload(name string, body []byte) {
	r.t.Helper()
	w := r.bucket.Object(name).NewWriter(r.t.Context())
	if _, err := w.Write(body); err != nil {
		r.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		r.t.Fatal(err)
	}
}

// TestIntentSurvivesMidnight: a crash after the upload and before the
// record leaves an intent; the retry, on another day, reuses the intent's
// object name (412, verified), so the file is not shipped twice.
func TestIntentSurvivesMidnight(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil, ingest.Options{Convention: ingest.Rename})
	content := v2("1")
	r.write("R001", "late.csv", content)
	yesterday, _ := names.RawObject{Robot: "R001", Date: civil.DateOf(epoch).AddDays(-1), File: "late.csv"}.Name()
	sum := sha256.Sum256([]byte(content))
	if err := r.ckpt.Intend("R001/late.csv", ingest.FileRecord{
		Object: yesterday, Size: int64(len(content)), ModTime: epoch, SHA256: hex.EncodeToString(sum[:]),
		CRC32C: crc32.Checksum([]byte(content), crc32.MakeTable(crc32.Castagnoli)),
	}); err != nil {
		t.Fatal(err)
	}
	r.upload(yesterday, []byte(content)) // the attempt that landed before the crash
	r.restart()
	if res := r.pass(); res.Shipped != 1 || res.Failed != 0 {
		t.Fatalf("pass: %+v, want the landed upload verified", res)
	}
	objs := r.objects()
	if _, ok := objs[yesterday]; !ok || len(objs) != 1 {
		t.Errorf("objects %v, want only %s", keys(objs), yesterday)
	}
	if rec, _, _ := r.ckpt.File("R001/late.csv"); !rec.Done || rec.Object != yesterday {
		t.Errorf("record %+v, want done as %s", rec, yesterday)
	}
}

// TestPendingChunkResumes: a chunk recorded as pending and uploaded before
// a crash is verified by its 412 on restart, and the offset moves past it
// without a second object.
func TestPendingChunkResumes(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil, ingest.Options{ChunkMin: 1, ChunkMax: 1 << 20})
	db := newDB(r, "R001")
	db.add(2)
	r.pass()
	db.add(3)
	key := "R001/db/results.db.csv"
	st, ok, err := r.ckpt.DB(key)
	if err != nil || !ok {
		t.Fatalf("database state: %v %v", ok, err)
	}
	size := st.Offset
	for _, l := range db.lines[2:] {
		size += int64(len(l)) + 1
	}
	object, _ := names.ChunkObject{Robot: "R001", Date: civil.DateOf(epoch).AddDays(-1), File: "results.db.csv",
		Series: st.Series, Start: st.Offset, End: size}.Name()
	body := dbHeader
	for _, l := range db.lines[2:] {
		body += l + "\n"
	}
	st.Pending = &ingest.ChunkIntent{Object: object, Start: st.Offset, End: size}
	if err := r.ckpt.PutDB(key, st); err != nil {
		t.Fatal(err)
	}
	r.upload(object, []byte(body))
	r.restart()
	if res := r.pass(); res.Chunks != 1 || res.Failed != 0 {
		t.Fatalf("pass: %+v, want the pending chunk verified", res)
	}
	if res := r.pass(); res.Chunks != 0 {
		t.Fatalf("pass: %+v, want nothing more", res)
	}
	if got := rawcheck.ChunkLines(t, t.Context(), r.bucket, r.objects(), dbHeader); !slices.Equal(got, db.lines) {
		t.Errorf("lines %q, want %q", got, db.lines)
	}
}
