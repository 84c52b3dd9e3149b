package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/patient"
	"github.com/labplatform/platform/contracts/schema"
	"github.com/labplatform/platform/contracts/summary"
	"github.com/labplatform/platform/mobile-api/internal/auth"
	"github.com/labplatform/platform/serve/history"
	"github.com/labplatform/platform/serve/lineage"
	"github.com/labplatform/platform/serve/model"
	"github.com/labplatform/platform/serve/patients"
	"github.com/labplatform/platform/testenv"
	"github.com/labplatform/platform/testenv/issuer"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(testenv.Run(m, &env, testenv.Options{}))
}

// The seeded patients: A and B have results, C has none. Clinician
// drA cares for A; drB for B.
const (
	patientA  = "P0000000000A1"
	patientB  = "P0000000000B2"
	patientC  = "P0000000000C3"
	drA       = "dr-assigned-a"
	drB       = "dr-assigned-b"
	scorer    = "svc-risk"
	creat     = "2160-0"
	glucose   = "2345-7"
	testToken = "tok"
)

// now is the fixture's "current time", when the test binary started:
// results were collected in the days before it, and tokens are issued at it.
// The server's clock is the real one (its request deadlines are), which is
// within minutes of now.
var now = time.Now().UTC().Truncate(time.Second)

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is one platform with seeded data, the local issuer and the API
// on a real socket.
type fixture struct {
	p      config.Platform
	c      *testenv.Clients
	iss    *issuer.Issuer
	srv    *Server
	url    string
	models *model.Registry
	logs   *syncBuffer
	audit  *syncBuffer
	rows   map[string][]seedRow // patient -> rows in BigQuery
}

func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	ctx := t.Context()
	f := &fixture{p: env.NewTestPlatform(t), logs: &syncBuffer{}, audit: &syncBuffer{}}
	f.c = testenv.NewTestClients(t, f.p)
	var err error
	if f.iss, err = issuer.Start(ctx, "127.0.0.1:0", issuer.Options{Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.iss.Close() })
	f.seed(t)

	hist, err := history.New(f.c.BigQuery, bytes.Repeat([]byte("k"), 32), history.Options{Dataset: names.Dataset, Table: names.ResultsTable, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	f.models = model.NewRegistry(f.c.Storage, names.ModelsBucket(f.p.Prefix), model.RegistryOptions{})
	if err := model.Publish(ctx, f.c.Storage, names.ModelsBucket(f.p.Prefix), model.DemoArtifact(), true); err != nil {
		t.Fatal(err)
	}
	if err := f.models.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(ctx, auth.Config{JWKSURL: f.iss.JWKSURL(), Issuer: f.iss.URL(), Audience: "lab-mobile-api", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.AuditLogger == nil {
		opts.AuditLogger = slog.New(slog.NewJSONHandler(f.audit, nil))
	}
	if opts.Rate == 0 {
		opts.Rate, opts.Burst = rate.Inf, 1
		opts.AnonRate, opts.AnonBurst = rate.Inf, 1
	}
	f.srv, err = New(Deps{
		Patients: patients.New(f.c.Firestore),
		History:  hist,
		Lineage:  lineage.New(f.c.Firestore),
		Models:   f.models,
		Verifier: verifier,
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(f.srv.Handler())
	t.Cleanup(hs.Close)
	f.url = hs.URL
	return f
}

// seedRow is a row of lab.results as the loader writes it.
type seedRow = schema.BigQueryRow

// series are the values seeded per patient and test, oldest first, one a
// day ending the day before now.
var series = map[string]map[string][]float64{
	patientA: {creat: {0.9131, 1.0271, 1.1413, 1.3377}, glucose: {5.1719, 6.4493}},
	patientB: {creat: {0.7133, 0.8211}},
}

var units = map[string]string{creat: "mg/dL", glucose: "mmol/L"}
var testNames = map[string]string{creat: "Creatinine", glucose: "Glucose"}

// collected is the collection time of the i-th of n results: a week apart,
// the newest a week before now, so a series of two or more spans the week a
// trend needs (model.MinTrendSpan).
func collected(i, n int) time.Time {
	return now.Add(-time.Duration(n-i) * 7 * 24 * time.Hour).Truncate(time.Hour)
}

func sampleID(pid, code string, i int) string {
	return fmt.Sprintf("S-%s-%s-%d", pid[len(pid)-2:], code, i)
}

func (f *fixture) seed(t testing.TB) {
	t.Helper()
	ctx := t.Context()
	fs := f.c.Firestore
	f.rows = map[string][]seedRow{}
	var rows []*seedRow
	for pid, tests := range series {
		doc := summary.Patient{PatientID: pid, Tests: map[string]*summary.TestSummary{}, UpdatedAt: now.Add(-time.Hour)}
		for code, vals := range tests {
			ts := &summary.TestSummary{Unit: units[code]}
			for i, v := range vals {
				r := summary.Result{SampleID: sampleID(pid, code, i), Value: v, Flag: "N", Status: "final", CollectedAt: collected(i, len(vals))}
				if code == creat && v > 1.2 {
					r.Flag = "H"
				}
				one := summary.TestSummary{Unit: units[code], Count: 1, Mean: v, Min: v, Max: v, Last: r, Recent: []summary.Result{r}}
				if summary.Abnormal(r.Flag) {
					one.Abnormal = 1
				}
				m := summary.Merge(*ts, one)
				ts = &m
				row := seedRow{SampleID: r.SampleID, PatientID: pid, RobotID: "R007", TestCode: code, TestName: testNames[code], Value: v, Unit: units[code],
					OriginalValue: v, OriginalUnit: units[code], Flag: r.Flag, Status: "final", CollectedAt: r.CollectedAt, SchemaVersion: "v3",
					SourceObject: "robot=R007/date=2026-11-01/batch-1.csv", SourceGeneration: 17, SourceLine: int64(i + 2), IngestedAt: now.Add(-time.Hour)}
				rows = append(rows, &row)
				f.rows[pid] = append(f.rows[pid], row)
			}
			doc.Tests[code] = ts
		}
		if _, err := fs.Collection(names.CollectionPatients).Doc(pid).Set(ctx, doc); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.c.BigQuery.Dataset(names.Dataset).Table(names.ResultsTable).Inserter().Put(ctx, rows); err != nil {
		t.Fatal(err)
	}
	repo := patients.New(fs)
	for _, p := range []patient.Profile{
		{PatientID: patientA, BirthDate: "1976-05-01", Sex: patient.SexFemale},
		{PatientID: patientB, BirthDate: "1950-01-31", Sex: patient.SexMale},
	} {
		if err := repo.PutProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, team := range []patient.CareTeam{{Clinician: drA, Patients: []string{patientA}}, {Clinician: drB, Patients: []string{patientB}}} {
		if err := repo.PutCareTeam(ctx, team); err != nil {
			t.Fatal(err)
		}
	}
}

// caller is who a request is sent as.
type caller struct {
	name  string
	token string // "" sends no Authorization header
}

func (f *fixture) mint(t testing.TB, c issuer.Claims) string {
	t.Helper()
	tok, err := f.iss.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *fixture) patient(t testing.TB, id string) string {
	return f.mint(t, issuer.Claims{Subject: "user-" + id, Role: "patient", PatientID: id})
}

func (f *fixture) clinician(t *testing.T, sub string) string {
	return f.mint(t, issuer.Claims{Subject: sub, Role: "clinician"})
}

func (f *fixture) service(t *testing.T) string {
	return f.mint(t, issuer.Claims{Subject: scorer, Role: "service"})
}

// response is an answer read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errorBody(t testing.TB) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return e
}

func (f *fixture) do(t testing.TB, method, path, token string, body io.Reader, header ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (f *fixture) get(t testing.TB, path, token string, header ...string) response {
	t.Helper()
	return f.do(t, http.MethodGet, path, token, nil, header...)
}

func decode[T any](t testing.TB, r response) T {
	t.Helper()
	var v T
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return v
}
