package patients_test

import (
	"context"
	"errors"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/patient"
	"github.com/labplatform/platform/contracts/summary"
	"github.com/labplatform/platform/serve"
	"github.com/labplatform/platform/serve/patients"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, testenv.Options{})) }

// newRepo returns a Repo over a fresh platform and the platform's clients.
func newRepo(t *testing.T) (*patients.Repo, *testenv.Clients) {
	t.Helper()
	c := testenv.NewTestClients(t, env.NewTestPlatform(t))
	return patients.New(c.Firestore), c
}

// utc is a time as Firestore returns it: UTC, microseconds.
func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// workerDoc is a summary document as the process worker writes it.
func workerDoc(id string) *summary.Patient {
	first := summary.Result{SampleID: "S1", Value: 5.1, Flag: "N", Status: "final", CollectedAt: utc("2026-03-01T08:00:00Z")}
	last := summary.Result{SampleID: "S2", Value: 7.4, Flag: "H", Status: "corrected", CollectedAt: utc("2026-03-08T08:30:00.123456Z")}
	return &summary.Patient{
		PatientID: id,
		Tests: map[string]*summary.TestSummary{
			"2345-7": {
				Unit: "mmol/L", Count: 2, Mean: 6.25, M2: 2.645, Min: 5.1, Max: 7.4, Abnormal: 1,
				Last: last, Recent: []summary.Result{last, first},
			},
		},
		UpdatedAt: utc("2026-03-08T09:00:00Z"),
	}
}

// legacyDoc is a summary document as the worker wrote it before the ledger
// moved out: with the ledger in field "counted".
type legacyDoc struct {
	summary.Patient
	Counted summary.Ledger `firestore:"counted"`
}

func TestSummaryReadsEverythingButTheLedger(t *testing.T) {
	t.Parallel()
	repo, c := newRepo(t)
	ctx := t.Context()
	doc := workerDoc("P1")
	ref := c.Firestore.Collection(names.CollectionPatients).Doc("P1")
	ledger := summary.Ledger{"2345-7": {
		"S1": {Value: 5.1, Flag: "N", Status: "final", CollectedAt: doc.Tests["2345-7"].Recent[1].CollectedAt},
		"S2": {Value: 7.4, Flag: "H", Status: "corrected", AnalyzedAt: utc("2026-03-08T10:00:00Z"), CollectedAt: doc.Tests["2345-7"].Last.CollectedAt},
	}}
	// Not migrated yet: the ledger is in the document...
	if _, err := ref.Set(ctx, legacyDoc{Patient: *doc, Counted: ledger}); err != nil {
		t.Fatal(err)
	}
	if _, err := ref.Collection(summary.CollectionLedger).Doc(summary.LedgerDocID("")).Set(ctx, summary.LedgerDoc{Counted: ledger}); err != nil {
		t.Fatal(err)
	}
	snap, err := ref.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snap.DataAt(summary.FieldLegacyCounted); err != nil {
		t.Fatalf("the stored document has no ledger: %v", err)
	}

	// ...but not in what Summary reads: the mask leaves it out.
	got, err := repo.Summary(ctx, "P1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, *doc) {
		t.Errorf("Summary = %+v\nwant %+v", got, *doc)
	}
	if s := got.Tests["2345-7"]; s == nil || s.Variance() != 2.645 {
		t.Errorf("test summary %+v: want variance 2.645", s)
	}
	it := c.Firestore.Collection(names.CollectionPatients).Select(summary.SummaryFields...).Documents(ctx)
	masked, err := it.GetAll()
	if err != nil || len(masked) != 1 {
		t.Fatalf("%d documents, error %v", len(masked), err)
	}
	if _, err := masked[0].DataAt(summary.FieldLegacyCounted); err == nil {
		t.Errorf("SummaryFields select the legacy ledger")
	}
}

func TestSummaryOfAnUnknownPatientIsNotFound(t *testing.T) {
	t.Parallel()
	repo, c := newRepo(t)
	if _, err := c.Firestore.Collection(names.CollectionPatients).Doc("P1").Set(t.Context(), workerDoc("P1")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"P2", "P", "P1 ", strings.Repeat("x", 1500)} {
		_, err := repo.Summary(t.Context(), id)
		if !errors.Is(err, serve.ErrNotFound) {
			t.Errorf("Summary(%.20q) = %v, want ErrNotFound", id, err)
		}
	}
}

// invalidIDs are strings that cannot be document ids.
var invalidIDs = []struct {
	name, id string
}{
	{name: "empty", id: ""},
	{name: "slash", id: "P1/tests"},
	{name: "leading slash", id: "/P1"},
	{name: "subcollection path", id: "P1/x/P2"},
	{name: "dot", id: "."},
	{name: "dot dot", id: ".."},
	{name: "reserved", id: "__P1__"},
	{name: "reserved minimal", id: "____"},
	{name: "invalid UTF-8", id: "P\xff1"},
	{name: "too long", id: strings.Repeat("x", 1501)},
}

func TestInvalidPatientIDs(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	ctx := t.Context()
	for _, tc := range invalidIDs {
		t.Run(tc.name, func(t *testing.T) {
			for op, call := range map[string]func() error{
				"Summary": func() error { _, err := repo.Summary(ctx, tc.id); return err },
				"Profile": func() error { _, err := repo.Profile(ctx, tc.id); return err },
				"PutProfile": func() error {
					return repo.PutProfile(ctx, patient.Profile{PatientID: tc.id, BirthDate: "1980-01-01", Sex: patient.SexFemale})
				},
			} {
				var inv *serve.InvalidError
				if err := call(); !errors.As(err, &inv) || inv.Field != "patient_id" {
					t.Errorf("%s: error %v, want an InvalidError on patient_id", op, err)
				} else if len(tc.id) > 3 && strings.Contains(inv.Reason, tc.id) {
					t.Errorf("%s: reason %q echoes the id", op, inv.Reason)
				}
			}
		})
	}
}

func TestProfiles(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	ctx := t.Context()
	want := patient.Profile{PatientID: "P1", BirthDate: "1961-07-14", Sex: patient.SexMale}
	if err := repo.PutProfile(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := repo.Profile(ctx, "P1")
	if err != nil || got != want {
		t.Errorf("Profile = %+v, %v; want %+v", got, err, want)
	}
	// A second put replaces the profile.
	want.Sex = patient.SexOther
	if err := repo.PutProfile(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, err := repo.Profile(ctx, "P1"); err != nil || got != want {
		t.Errorf("after replace: Profile = %+v, %v; want %+v", got, err, want)
	}
	if _, err := repo.Profile(ctx, "P2"); !errors.Is(err, serve.ErrNotFound) {
		t.Errorf("Profile(P2) = %v, want ErrNotFound", err)
	}

	for _, tc := range []struct {
		name    string
		profile patient.Profile
		field   string
	}{
		{name: "no birth date", profile: patient.Profile{PatientID: "P3", Sex: patient.SexFemale}, field: "birth_date"},
		{name: "birth date not a date", profile: patient.Profile{PatientID: "P3", BirthDate: "1980-02-30", Sex: patient.SexFemale}, field: "birth_date"},
		{name: "birth date with time", profile: patient.Profile{PatientID: "P3", BirthDate: "1980-02-03T00:00:00Z", Sex: patient.SexFemale}, field: "birth_date"},
		{name: "no sex", profile: patient.Profile{PatientID: "P3", BirthDate: "1980-02-03"}, field: "sex"},
		{name: "sex not a code", profile: patient.Profile{PatientID: "P3", BirthDate: "1980-02-03", Sex: "F"}, field: "sex"},
		{name: "no patient", profile: patient.Profile{BirthDate: "1980-02-03", Sex: patient.SexFemale}, field: "patient_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var inv *serve.InvalidError
			if err := repo.PutProfile(ctx, tc.profile); !errors.As(err, &inv) || inv.Field != tc.field {
				t.Errorf("PutProfile = %v, want an InvalidError on %s", err, tc.field)
			}
			if _, err := repo.Profile(ctx, "P3"); !errors.Is(err, serve.ErrNotFound) {
				t.Errorf("a refused profile was written: %v", err)
			}
		})
	}
}

func TestCareTeams(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	ctx := t.Context()
	if err := repo.PutCareTeam(ctx, patient.CareTeam{Clinician: "dr-who", Patients: []string{"P2", "P1", "P2"}}); err != nil {
		t.Fatal(err)
	}
	got, err := repo.CareTeam(ctx, "dr-who")
	want := patient.CareTeam{Clinician: "dr-who", Patients: []string{"P2", "P1"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("CareTeam = %+v, %v; want %+v (duplicates dropped)", got, err, want)
	}
	if err := repo.PutCareTeam(ctx, patient.CareTeam{Clinician: "dr-no"}); err != nil {
		t.Fatal(err)
	}
	if got, err := repo.CareTeam(ctx, "dr-no"); err != nil || len(got.Patients) != 0 {
		t.Errorf("empty team: CareTeam = %+v, %v", got, err)
	}

	for _, tc := range []struct {
		name, clinician string
	}{
		{name: "no document", clinician: "dr-strange"},
		{name: "subject with a slash", clinician: "https://issuer.example/users/dr-who"},
		{name: "subject naming another document", clinician: "dr-who/x/dr-who"},
		{name: "reserved", clinician: "__dr-who__"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := repo.CareTeam(ctx, tc.clinician); !errors.Is(err, serve.ErrNotFound) {
				t.Errorf("CareTeam = %v, want ErrNotFound", err)
			}
		})
	}

	var inv *serve.InvalidError
	if _, err := repo.CareTeam(ctx, ""); !errors.As(err, &inv) || inv.Field != "clinician" {
		t.Errorf("CareTeam(\"\") = %v, want an InvalidError on clinician", err)
	}
	for _, tc := range []struct {
		name  string
		team  patient.CareTeam
		field string
	}{
		{name: "no clinician", team: patient.CareTeam{Patients: []string{"P1"}}, field: "clinician"},
		{name: "clinician with a slash", team: patient.CareTeam{Clinician: "a/b", Patients: []string{"P1"}}, field: "clinician"},
		{name: "empty patient", team: patient.CareTeam{Clinician: "dr-x", Patients: []string{"P1", ""}}, field: "patients"},
		{name: "patient with a slash", team: patient.CareTeam{Clinician: "dr-x", Patients: []string{"P1/x"}}, field: "patients"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var inv *serve.InvalidError
			if err := repo.PutCareTeam(ctx, tc.team); !errors.As(err, &inv) || inv.Field != tc.field {
				t.Errorf("PutCareTeam = %v, want an InvalidError on %s", err, tc.field)
			}
		})
	}
	if _, err := repo.CareTeam(ctx, "dr-x"); !errors.Is(err, serve.ErrNotFound) {
		t.Errorf("a refused team was written: %v", err)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	repo, _ := newRepo(t)
	if err := repo.Ping(t.Context()); err != nil {
		t.Errorf("Ping = %v, want nil (the probe document does not exist)", err)
	}

	// A Firestore that does not answer: a port nothing listens on.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	p := env.Platform
	p.Emulators.Firestore = addr
	fs, err := gcp.NewFirestore(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := patients.New(fs).Ping(ctx); err == nil {
		t.Error("Ping of an absent Firestore = nil, want an error")
	}
}
