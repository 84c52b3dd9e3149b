// Package e2e checks the read side end to end on the local GCP: a robot file
// cleaned by the real process worker and loaded by the real bq_load tasks
// appears through the API, in FHIR and on the web page.
package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/civil"
	"cloud.google.com/go/storage"
	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/patient"
	"github.com/labplatform/platform/mobile-api/internal/api"
	"github.com/labplatform/platform/mobile-api/internal/auth"
	"github.com/labplatform/platform/mobile-api/internal/web/browsertest"
	"github.com/labplatform/platform/serve/history"
	lineagerepo "github.com/labplatform/platform/serve/lineage"
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

const (
	patientID = "PE2E00000001"
	otherID   = "PE2E00000002"
	creat     = "2160-0"
	glucose   = "2345-7"
)

// day is the collection day of the file's results.
var day = civil.Date{Year: 2026, Month: 11, Day: 18}

// rawCSV is a v2 robot export: three creatinine results and a glucose for
// the patient, one creatinine for someone else.
const rawCSV = `sample_id,patient_id,loinc,test_name,value,unit,ref_low,ref_high,collected_at
SE2E-1,PE2E00000001,2160-0,Creatinine,0.97,mg/dL,0.6,1.2,2026-11-18T07:10:00+01:00
SE2E-2,PE2E00000001,2160-0,Creatinine,1.04,mg/dL,0.6,1.2,2026-11-18T09:20:00+01:00
SE2E-3,PE2E00000001,2160-0,Creatinine,1.26,mg/dL,0.6,1.2,2026-11-18T13:30:00+01:00
SE2E-1,PE2E00000001,2345-7,Glucose,5.4,mmol/L,3.9,5.6,2026-11-18T07:10:00+01:00
SE2E-4,PE2E00000002,2160-0,Creatinine,0.81,mg/dL,0.6,1.2,2026-11-18T08:00:00+01:00
`

// creatinine are the patient's creatinine values, oldest first.
var creatinine = []float64{0.97, 1.04, 1.26}

func platformEnv(p config.Platform) []string {
	return append(os.Environ(),
		config.EnvProject+"="+p.Project, config.EnvPrefix+"="+p.Prefix,
		config.EnvStorageEmulator+"="+p.Emulators.Storage, config.EnvPubSubEmulator+"="+p.Emulators.PubSub,
		config.EnvFirestoreEmu+"="+p.Emulators.Firestore, config.EnvBigQueryEmulator+"="+p.Emulators.BigQuery,
	)
}

func TestFileToAPIAndFHIRAndPage(t *testing.T) {
	ctx := t.Context()
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	bin := t.TempDir()
	testenv.BuildCommands(t, bin, "github.com/labplatform/platform/process/cmd/process", "github.com/labplatform/platform/orchestrate/cmd/orchestrate")

	// The process worker, as a process of its own.
	var workerLog bytes.Buffer
	worker := exec.Command(filepath.Join(bin, "process"), "worker", "-listen", "")
	worker.Env = platformEnv(p)
	worker.Stderr = &workerLog
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = worker.Process.Signal(syscall.SIGTERM)
		_ = worker.Wait()
		if t.Failed() {
			t.Logf("process worker log:\n%s", workerLog.String())
		}
	})

	// The robot's file lands in the raw bucket.
	name, err := names.RawObject{Robot: "R001", Date: day, File: "e2e-1.csv"}.Name()
	if err != nil {
		t.Fatal(err)
	}
	w := c.Storage.Bucket(names.RawBucket(p.Prefix)).Object(name).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	if _, err := io.WriteString(w, rawCSV); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rawID, err := names.RawID(name, w.Attrs().Generation)
	if err != nil {
		t.Fatal(err)
	}
	var in lineage.Ingestion
	waitFor(t, 90*time.Second, "the file's lineage to be done", func() bool {
		snap, err := c.Firestore.Collection(names.CollectionIngestions).Doc(rawID).Get(ctx)
		if err != nil {
			return false
		}
		return snap.DataTo(&in) == nil && in.Status == lineage.StatusDone
	})
	if in.RowsValid != 5 {
		t.Fatalf("lineage: %d valid rows, want 5 (%+v)", in.RowsValid, in)
	}

	// bq_load for the day, task by task, with the real operators.
	state := filepath.Join(t.TempDir(), "state.db")
	for _, task := range []string{"wait_lineage", "load_staging", "replace_day", "assert_counts", "assert_no_null_patient", "assert_unique_sample_test", "record_load", "drop_staging"} {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "orchestrate"), "tasks", "test", "bq_load", task, "--param", "day="+day.String(), "--state-file", state)
		cmd.Env = platformEnv(p)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("orchestrate tasks test bq_load %s: %v\n%s", task, err, out)
		}
	}

	// The API over the same platform.
	iss, err := issuer.Start(ctx, "127.0.0.1:0", issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = iss.Close() })
	repo := patients.New(c.Firestore)
	if err := repo.PutProfile(ctx, patient.Profile{PatientID: patientID, BirthDate: "1961-02-14", Sex: patient.SexMale}); err != nil {
		t.Fatal(err)
	}
	hist, err := history.New(c.BigQuery, bytes.Repeat([]byte("e"), 32), history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	models := model.NewRegistry(c.Storage, names.ModelsBucket(p.Prefix), model.RegistryOptions{})
	if err := model.Publish(ctx, c.Storage, names.ModelsBucket(p.Prefix), model.DemoArtifact(), true); err != nil {
		t.Fatal(err)
	}
	if err := models.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(ctx, auth.Config{JWKSURL: iss.JWKSURL(), Issuer: iss.URL(), Audience: "lab-mobile-api"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Deps{Patients: repo, History: hist, Lineage: lineagerepo.New(c.Firestore), Models: models, Verifier: verifier},
		api.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	token, err := iss.Mint(issuer.Claims{Subject: "user-e2e", Role: "patient", PatientID: patientID})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}

	// The summary process wrote.
	var sum struct {
		PatientID string `json:"patient_id"`
		Tests     []struct {
			Code  string  `json:"code"`
			Count int64   `json:"count"`
			Mean  float64 `json:"mean"`
			Last  struct {
				Value float64 `json:"value"`
				Flag  string  `json:"flag"`
			} `json:"last"`
		} `json:"tests"`
	}
	get("/v1/me/summary", &sum)
	counts := map[string]int64{}
	for _, ts := range sum.Tests {
		counts[ts.Code] = ts.Count
		if ts.Code == creat && (ts.Last.Value != 1.26 || ts.Last.Flag != "H") {
			t.Errorf("creatinine last %+v, want 1.26 H", ts.Last)
		}
	}
	if sum.PatientID != patientID || counts[creat] != 3 || counts[glucose] != 1 || len(counts) != 2 {
		t.Errorf("summary %s %v, want creatinine 3 and glucose 1", sum.PatientID, counts)
	}

	// The history bq_load wrote.
	var hb struct {
		Results []struct {
			SampleID string  `json:"sample_id"`
			TestCode string  `json:"test_code"`
			Value    float64 `json:"value"`
		} `json:"results"`
	}
	get("/v1/me/results?test="+creat+"&from="+day.String()+"&to="+day.String(), &hb)
	var values []float64
	for _, r := range hb.Results {
		values = append(values, r.Value)
	}
	slices.Reverse(values) // newest first → oldest first
	if !slices.Equal(values, creatinine) {
		t.Errorf("history values %v, want %v", values, creatinine)
	}

	// FHIR.
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource struct {
				Code struct {
					Coding []struct{ Code string } `json:"coding"`
				} `json:"code"`
				Subject struct{ Reference string } `json:"subject"`
				Value   struct{ Value float64 }    `json:"valueQuantity"`
			} `json:"resource"`
		} `json:"entry"`
	}
	get("/fhir/r4/Observation?patient="+patientID, &b)
	if b.ResourceType != "Bundle" || len(b.Entry) != 4 {
		t.Fatalf("FHIR bundle %s with %d entries, want 4", b.ResourceType, len(b.Entry))
	}
	for _, e := range b.Entry {
		if e.Resource.Subject.Reference != "Patient/"+patientID {
			t.Errorf("observation of %s", e.Resource.Subject.Reference)
		}
	}

	// The web page draws the patient's creatinine values.
	browser := browsertest.Chromium(t)
	var got []string
	err = chromedp.Do(browser,
		chromedp.Navigate(hs.URL+"/#token="+token),
		chromedp.WaitReady(chromedp.CSS(`svg[data-test-code="`+creat+`"] [data-value]`)),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	got, err = chromedp.Run(browser, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('svg[data-test-code="`+creat+`"] [data-value]')).map(e => e.getAttribute('data-value'))`))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	var drawn []float64
	for _, v := range got {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("data-value %q", v)
		}
		drawn = append(drawn, f)
	}
	if !slices.Equal(drawn, creatinine) {
		t.Errorf("the chart draws %v, want %v", drawn, creatinine)
	}
	if id, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS("#patient-id"))); err != nil || !strings.Contains(id, patientID) {
		t.Errorf("page patient id %q (%v)", id, err)
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
