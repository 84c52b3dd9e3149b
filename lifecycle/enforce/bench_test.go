package enforce

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/lifecycle/policy"
)

// envCount reads a positive count from the environment variable name, or
// returns def.
func envCount(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive count", name, s)
	}
	return n
}

// benchName is the raw object name of inventory entry i; the names sort as
// their indexes do, as a listing returns them.
func benchName(i int) string {
	return fmt.Sprintf("robot=R%03d/date=2026-01-02/f%07d.csv", i/1000%1000, i)
}

// benchLineage writes, for every even i, a done lineage without outputs for
// generation gen(i), with a BulkWriter.
func benchLineage(b *testing.B, f *fixture, n int, gen func(i int) int64) {
	bw := f.direct.Firestore.BulkWriter(f.ctx)
	for i := 0; i < n; i += 2 {
		id, err := names.RawID(benchName(i), gen(i))
		if err != nil {
			b.Fatal(err)
		}
		_, err = bw.Set(f.direct.Firestore.Collection(names.CollectionIngestions).Doc(id), lineage.Ingestion{
			RawID: id, Object: benchName(i), Generation: gen(i), Status: lineage.StatusDone,
			FinishedAt: time.Date(2026, 1, 29, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			b.Fatal(err)
		}
	}
	bw.End()
}

// benchRun runs the enforcer in dry run over n raw objects, all past 400
// days, half of them with lineage: every object is listed, evaluated and
// checked against lineage; half are planned for deletion, half held (and
// planned for Coldline).
func benchRun(b *testing.B, c Clients, f *fixture, n int, now time.Time) {
	pol := policy.Default()
	for b.Loop() {
		rep, err := Run(f.ctx, c, pol, f.p.Prefix, Options{Now: func() time.Time { return now }, DryRun: true,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Scanned != n || len(rep.Planned) != n || len(rep.Held) != n/2 {
			b.Fatalf("scanned %d planned %d held %d, want %d, %d, %d", rep.Scanned, len(rep.Planned), len(rep.Held), n, n, n/2)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
}

// BenchmarkEnforceScan measures a dry run over a raw bucket of many objects:
// listing, evaluation and the data-aware check (lineage read from the
// Firestore emulator in batches of 300).
//
//   - listing=synthetic: a stateless server answers the Storage JSON API's
//     object listing for ENFORCE_BENCH_OBJECTS objects (default 100000;
//     20000 with -short), so the number is the enforcer's own throughput.
//   - listing=emulator: testenv's fake-gcs-server holds
//     ENFORCE_BENCH_EMULATOR_OBJECTS objects (default 5000). Its in-memory
//     backend scans every object of the bucket on each upload, read and
//     page, so filling it is quadratic (about 40 s for 5,000 objects, hours
//     for 100,000) and its listing dominates the measurement.
func BenchmarkEnforceScan(b *testing.B) {
	def := 100000
	if testing.Short() {
		def = 20000
	}
	b.Run(fmt.Sprintf("listing=synthetic/objects=%d", envCount(b, "ENFORCE_BENCH_OBJECTS", def)), func(b *testing.B) {
		n := envCount(b, "ENFORCE_BENCH_OBJECTS", def)
		f := newFixture(b, false)
		created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		srv := httptest.NewServer(&syntheticListing{bucket: f.raw(), n: n, created: created})
		b.Cleanup(srv.Close)
		p := f.p
		p.Emulators.Storage = srv.URL
		st, err := gcp.NewStorage(f.ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		benchLineage(b, f, n, syntheticGeneration)
		benchRun(b, Clients{Storage: st, Firestore: f.direct.Firestore}, f, n, created.Add(401*day))
	})
	b.Run(fmt.Sprintf("listing=emulator/objects=%d", envCount(b, "ENFORCE_BENCH_EMULATOR_OBJECTS", 5000)), func(b *testing.B) {
		n := envCount(b, "ENFORCE_BENCH_EMULATOR_OBJECTS", 5000)
		f := newFixture(b, false)
		start := time.Now()
		gens := make([]int64, n)
		var g errgroup.Group
		g.SetLimit(32)
		for i := range n {
			g.Go(func() error {
				w := f.direct.Storage.Bucket(f.raw()).Object(benchName(i)).NewWriter(f.ctx)
				w.ChunkSize = 0
				if _, err := io.WriteString(w, "x"); err != nil {
					return err
				}
				if err := w.Close(); err != nil {
					return fmt.Errorf("put %s: %w", benchName(i), err)
				}
				gens[i] = w.Attrs().Generation
				f.mu.Lock()
				defer f.mu.Unlock()
				if c := w.Attrs().Created; c.After(f.latest) {
					f.latest = c
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		benchLineage(b, f, n, func(i int) int64 { return gens[i] })
		b.Logf("filled the emulator with %d objects in %s", n, time.Since(start).Round(time.Millisecond))
		benchRun(b, Clients{Storage: f.direct.Storage, Firestore: f.direct.Firestore}, f, n, f.at(401)())
	})
}

func syntheticGeneration(i int) int64 { return 1_700_000_000_000_000 + int64(i) }

// syntheticListing serves objects.list of the Storage JSON API for one
// bucket of n generated objects (every other bucket is empty), page by page
// with the index of the next object as page token. It keeps nothing per
// object, so any n costs only the encoding of what is listed.
type syntheticListing struct {
	bucket  string
	n       int
	created time.Time
}

func (s *syntheticListing) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/storage/v1/b/")
	bucket, isList := strings.CutSuffix(rest, "/o")
	if !ok || !isList || r.Method != http.MethodGet {
		http.Error(w, `{"error":{"code":404,"message":"synthetic listing: not found"}}`, http.StatusNotFound)
		return
	}
	type object struct {
		Kind         string `json:"kind"`
		Bucket       string `json:"bucket"`
		Name         string `json:"name"`
		Generation   string `json:"generation"`
		Size         string `json:"size"`
		StorageClass string `json:"storageClass"`
		TimeCreated  string `json:"timeCreated"`
		Updated      string `json:"updated"`
		ContentType  string `json:"contentType"`
	}
	resp := struct {
		Kind          string   `json:"kind"`
		Items         []object `json:"items"`
		NextPageToken string   `json:"nextPageToken,omitempty"`
	}{Kind: "storage#objects", Items: []object{}}
	if bucket == s.bucket {
		from, _ := strconv.Atoi(r.URL.Query().Get("pageToken"))
		size, err := strconv.Atoi(r.URL.Query().Get("maxResults"))
		if err != nil || size <= 0 || size > 1000 {
			size = 1000
		}
		to := min(from+size, s.n)
		ts := s.created.Format(time.RFC3339Nano)
		for i := from; i < to; i++ {
			resp.Items = append(resp.Items, object{Kind: "storage#object", Bucket: s.bucket, Name: benchName(i),
				Generation: strconv.FormatInt(syntheticGeneration(i), 10), Size: "1", StorageClass: "STANDARD",
				TimeCreated: ts, Updated: ts, ContentType: "text/csv"})
		}
		if to < s.n {
			resp.NextPageToken = strconv.Itoa(to)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}
