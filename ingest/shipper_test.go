package ingest_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"

	"github.com/labplatform/platform/contracts/robotcsv"
	"github.com/labplatform/platform/ingest"
	"github.com/labplatform/platform/ingest/internal/rawcheck"
)

// v2 builds a small robot export in CSV version 2.
func v2(rows ...string) string {
	var b strings.Builder
	b.WriteString(robotcsv.V2.Header() + "\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "S%s,P1,2345-7,Glucose,5.1,mmol/L,3.9,5.5,2026-11-21T08:00:00+01:00\n", r)
	}
	return b.String()
}

const rawPrefix = "robot=R001/date=2026-11-21/"

func TestStabilityWindow(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil, ingest.Options{Stability: 30 * time.Second})
	growing := r.write("R001", "growing.csv", v2("1"))
	r.write("R001", "empty.csv", "")
	if res := r.pass(); res.Shipped != 0 || res.Waiting != 2 {
		t.Fatalf("first sight of fresh files: %+v, want nothing shipped, 2 waiting", res)
	}
	if got := r.counter(r.metrics.BacklogFiles.WithLabelValues("R001")); got != 2 {
		t.Errorf("backlog files = %v, want 2", got)
	}
	// Still growing: a later poll sees another size, so the window restarts.
	r.clock.Advance(45 * time.Second)
	r.appendTo(growing, "S2,P1,2345-7,Glucose,5.2,mmol/L,3.9,5.5,2026-11-21T08:01:00+01:00\n")
	if res := r.pass(); res.Shipped != 0 {
		t.Fatalf("a file that grew since the last poll was shipped: %+v", res)
	}
	r.clock.Advance(20 * time.Second)
	if res := r.pass(); res.Shipped != 0 {
		t.Fatalf("shipped before the window passed: %+v", res)
	}
	r.clock.Advance(15 * time.Second)
	if res := r.pass(); res.Shipped != 1 {
		t.Fatalf("stable file: %+v, want 1 shipped", res)
	}
	// An old file is complete at first sight (ingest once, restarts).
	old := r.write("R001", "old.csv", v2("9"))
	if err := os.Chtimes(old, r.clock.Now().Add(-time.Hour), r.clock.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if res := r.pass(); res.Shipped != 1 {
		t.Fatalf("old file at first sight: %+v, want 1 shipped", res)
	}
	if got := r.counter(r.metrics.BacklogFiles.WithLabelValues("R001")); got != 1 {
		t.Errorf("backlog files = %v, want 1 (the empty file)", got)
	}
	objs := r.objects()
	want, _ := os.ReadFile(growing)
	if got := rawcheck.Read(t, t.Context(), r.bucket, rawPrefix+"growing.csv"); string(got) != string(want) {
		t.Errorf("growing.csv object = %q, want the whole file %q", got, want)
	}
	if _, ok := objs[rawPrefix+"empty.csv"]; ok || len(objs) != 2 {
		t.Errorf("objects %v: want growing.csv and old.csv only (an empty file is never complete)", keys(objs))
	}
}

func TestConventions(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil, ingest.Options{
		Stability: time.Hour,
		Robots:    map[string]ingest.Convention{"R001": ingest.Rename, "R002": ingest.DoneMarker},
	})
	tmp := r.write("R001", ".a.csv.tmp", v2("1"))
	r.write("R002", "b.csv", v2("2"))
	r.clock.Advance(2 * time.Hour) // longer than the stability window: irrelevant here
	if res := r.pass(); res.Shipped != 0 {
		t.Fatalf("before rename and marker: %+v, want nothing shipped", res)
	}
	if err := os.Rename(tmp, filepath.Join(r.root, "R001", "a.csv")); err != nil {
		t.Fatal(err)
	}
	r.write("R002", "b.csv.done", "")
	if res := r.pass(); res.Shipped != 2 {
		t.Fatalf("after rename and marker: %+v, want 2 shipped", res)
	}
	objs := r.objects()
	for _, name := range []string{rawPrefix + "a.csv", "robot=R002/date=2026-11-21/b.csv"} {
		if _, ok := objs[name]; !ok {
			t.Errorf("missing %s in %v", name, keys(objs))
		}
	}
	if len(objs) != 2 {
		t.Errorf("objects %v: temporary names and markers must not be shipped", keys(objs))
	}
}

func TestExactlyOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil, ingest.Options{Robots: map[string]ingest.Convention{"R001": ingest.Rename, "R002": ingest.Rename}})
	for i := range 5 {
		r.write("R001", fmt.Sprintf("f%d.csv", i), v2(fmt.Sprint(i)))
	}
	if res := r.pass(); res.Shipped != 5 {
		t.Fatalf("first pass: %+v, want 5 shipped", res)
	}
	if res := r.pass(); res.Shipped != 0 || res.Deduplicated != 0 {
		t.Fatalf("second pass: %+v, want nothing", res)
	}
	r.restart()
	if res := r.pass(); res.Shipped != 0 || res.Deduplicated != 0 {
		t.Fatalf("after restart: %+v, want nothing", res)
	}
	// The robot exports the same content again, under new names.
	r.write("R001", "f0-again.csv", v2("0"))
	r.write("R002", "copy-of-f1.csv", v2("1"))
	if res := r.pass(); res.Shipped != 0 || res.Deduplicated != 2 {
		t.Fatalf("identical re-exports: %+v, want 2 deduplicated", res)
	}
	if n := len(r.objects()); n != 5 {
		t.Errorf("%d objects, want 5", n)
	}
	// A file rewritten with new content after it was shipped is a new
	// version: shipped once more, under a name with its hash.
	rewritten := v2("1", "correction")
	r.clock.Advance(time.Minute)
	r.write("R001", "f1.csv", rewritten)
	if res := r.pass(); res.Shipped != 1 {
		t.Fatalf("rewritten file: %+v, want 1 shipped", res)
	}
	sum := sha256.Sum256([]byte(rewritten))
	versioned := fmt.Sprintf("%sf1.sha-%s.csv", rawPrefix, hex.EncodeToString(sum[:])[:12])
	if got := rawcheck.Read(t, t.Context(), r.bucket, versioned); string(got) != rewritten {
		t.Errorf("%s = %q, want the rewritten content", versioned, got)
	}
	if res := r.pass(); res.Shipped != 0 {
		t.Fatalf("pass after the new version: %+v, want nothing", res)
	}
	if got := r.counter(r.metrics.Deduplicated.WithLabelValues("R001")); got != 1 {
		t.Errorf("deduplicated metric for R001 = %v, want 1", got)
	}
}

func TestObjectCRCAndMetadata(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil, ingest.Options{Convention: ingest.Rename})
	content := v2("1", "2", "3")
	p := r.write("R001", "lab 7.csv", content)
	r.pass()
	name := rawPrefix + "lab 7.csv"
	attrs, err := r.bucket.Object(name).Attrs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	if want := crc32.Checksum([]byte(content), crc32.MakeTable(crc32.Castagnoli)); attrs.CRC32C != want {
		t.Errorf("CRC32C = %08x, want %08x", attrs.CRC32C, want)
	}
	want := map[string]string{
		"robot_id":     "R001",
		"source_path":  p,
		"source_size":  fmt.Sprint(len(content)),
		"source_mtime": epoch.Format(time.RFC3339Nano),
		"sha256":       hex.EncodeToString(sum[:]),
		"schema_hint":  "v2",
	}
	for k, v := range want {
		if attrs.Metadata[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, attrs.Metadata[k], v)
		}
	}
	rec, ok, err := r.ckpt.File("R001/lab 7.csv")
	if err != nil || !ok || !rec.Done || rec.Generation != attrs.Generation || rec.Object != name {
		t.Errorf("checkpoint = %+v %v %v, want done with generation %d", rec, ok, err, attrs.Generation)
	}
}

// TestEarlierAttemptLanded: an upload that landed before a crash (the
// checkpoint has only the intent) is verified by its 412 and recorded,
// not duplicated; different content under the name is a conflict.
func TestEarlierAttemptLanded(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil, ingest.Options{Convention: ingest.Rename})
	same := v2("1")
	r.write("R001", "landed.csv", same)
	r.write("R001", "clash.csv", v2("2"))
	for name, body := range map[string]string{"landed.csv": same, "clash.csv": "something else\n"} {
		w := r.bucket.Object(rawPrefix + name).NewWriter(t.Context())
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	res := r.pass()
	if res.Shipped != 1 || res.Failed != 1 {
		t.Fatalf("pass: %+v, want landed.csv verified and clash.csv failed", res)
	}
	if rec, _, _ := r.ckpt.File("R001/landed.csv"); !rec.Done {
		t.Errorf("landed.csv not recorded as done: %+v", rec)
	}
	if rec, _, _ := r.ckpt.File("R001/clash.csv"); rec.Done {
		t.Errorf("clash.csv recorded as done: %+v", rec)
	}
	if got := r.counter(r.metrics.Errors.WithLabelValues("R001", "conflict")); got != 1 {
		t.Errorf("conflict errors = %v, want 1", got)
	}
	if n := len(r.objects()); n != 2 {
		t.Errorf("%d objects, want 2", n)
	}
}

func TestArchiveAfterVerifiedUpload(t *testing.T) {
	t.Parallel()
	archive := t.TempDir()
	r := newRig(t, nil, ingest.Options{Convention: ingest.DoneMarker, ArchiveDir: archive})
	p := r.write("R001", "a.csv", v2("1"))
	r.write("R001", "b.csv", v2("2")) // no marker: must stay
	r.write("R001", "a.csv.done", "")
	if res := r.pass(); res.Shipped != 1 {
		t.Fatalf("pass: %+v", res)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("source still in the export folder: %v", err)
	}
	for _, name := range []string{"a.csv", "a.csv.done"} {
		if _, err := os.Stat(filepath.Join(archive, "R001", name)); err != nil {
			t.Errorf("archive: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(r.root, "R001", "b.csv")); err != nil {
		t.Errorf("unshipped b.csv moved: %v", err)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil, ingest.Options{Stability: time.Minute})
	r.write("R001", "a.csv", v2("1"))
	r.clock.Advance(2 * time.Minute)
	r.pass()
	r.write("R001", "b.csv", v2("2"))
	r.write("R002", "c.csv", v2("3"))
	r.clock.Advance(10 * time.Second)
	sts, err := ingest.Status(ingest.OS{}, r.root, r.ckpt, r.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 2 {
		t.Fatalf("status: %+v, want 2 robots", sts)
	}
	if s := sts[0]; s.Robot != "R001" || s.Shipped != 1 || s.BacklogFiles != 1 || s.LagSeconds != 10 || s.LastObject != rawPrefix+"a.csv" {
		t.Errorf("R001: %+v", s)
	}
	if s := sts[1]; s.Robot != "R002" || s.Shipped != 0 || s.BacklogFiles != 1 {
		t.Errorf("R002: %+v", s)
	}
	var text, js strings.Builder
	if err := ingest.WriteStatus(&text, sts, false); err != nil {
		t.Fatal(err)
	}
	if err := ingest.WriteStatus(&js, sts, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "R001") || !strings.Contains(js.String(), `"backlog_files": 1`) {
		t.Errorf("status output:\n%s\n%s", text.String(), js.String())
	}
}

func keys(m map[string]*storage.ObjectAttrs) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
