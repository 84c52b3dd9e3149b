// Package patients owns the read side of what Firestore knows of a patient
// besides results history: the summary document patients/<id> (written by
// the process worker, shape in contracts/summary), the profile
// patient_profiles/<id> and the care team care_teams/<clinician subject>
// (shapes in contracts/patient).
//
// Summaries are read with a field mask (summary.SummaryFields): the ledger
// lives in the document's subcollection (summary.CollectionLedger), which
// a read of the document never includes, and the legacy ledger field a
// document not yet migrated still holds ("counted", which can be most of
// the document) never leaves Firestore. PutProfile and PutCareTeam write the two documents this
// platform does not produce itself, for tests, the local stack's seeding and
// operators.
//
// Errors: a missing document is a wrapped serve.ErrNotFound; an argument
// that cannot name a document (empty, containing "/", "." or "..",
// reserved "__x__", not UTF-8, longer than 1,500 bytes) or a profile or care
// team with invalid fields is a *serve.InvalidError. Anything else is a
// Firestore error, wrapped with the operation.
package patients

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/patient"
	"github.com/labplatform/platform/contracts/summary"
	"github.com/labplatform/platform/serve"
)

// pingDoc is the document Ping reads; it need not exist.
const pingDoc = "readiness-probe"

// Repo reads and writes patient documents.
type Repo struct {
	patients *firestore.CollectionRef
	profiles *firestore.CollectionRef
	teams    *firestore.CollectionRef
}

// New returns a Repo over fs.
func New(fs *firestore.Client) *Repo {
	return &Repo{
		patients: fs.Collection(names.CollectionPatients),
		profiles: fs.Collection(names.CollectionPatientProfiles),
		teams:    fs.Collection(names.CollectionCareTeams),
	}
}

// Summary returns the summary of a patient without its ledger. A patient
// without a summary document (no results processed yet, or no such
// patient) is serve.ErrNotFound.
func (r *Repo) Summary(ctx context.Context, patientID string) (summary.Patient, error) {
	if err := checkDocID("patient_id", patientID); err != nil {
		return summary.Patient{}, err
	}
	// DocumentRef.Get has no field mask: a query on the document id with a
	// projection reads the summary fields only.
	it := r.patients.Where(firestore.DocumentID, "==", r.patients.Doc(patientID)).
		Select(summary.SummaryFields...).Limit(1).Documents(ctx)
	defer it.Stop()
	snap, err := it.Next()
	if errors.Is(err, iterator.Done) {
		return summary.Patient{}, fmt.Errorf("read summary of patient %s: %w", patientID, serve.ErrNotFound)
	}
	if err != nil {
		return summary.Patient{}, fmt.Errorf("read summary of patient %s: %w", patientID, err)
	}
	var p summary.Patient
	if err := snap.DataTo(&p); err != nil {
		return summary.Patient{}, fmt.Errorf("decode summary of patient %s: %w", patientID, err)
	}
	if p.PatientID == "" {
		p.PatientID = patientID
	}
	return p, nil
}

// Profile returns patient_profiles/<patientID>.
func (r *Repo) Profile(ctx context.Context, patientID string) (patient.Profile, error) {
	if err := checkDocID("patient_id", patientID); err != nil {
		return patient.Profile{}, err
	}
	var p patient.Profile
	if err := r.get(ctx, r.profiles.Doc(patientID), &p); err != nil {
		return patient.Profile{}, fmt.Errorf("read profile of patient %s: %w", patientID, err)
	}
	if p.PatientID == "" {
		p.PatientID = patientID
	}
	return p, nil
}

// CareTeam returns care_teams/<clinician>: the patients the clinician may
// read. A clinician without a document is serve.ErrNotFound, which callers
// treat as an empty team; so is a non-empty subject that cannot be a
// document id (no document can exist for it). An empty subject is a
// *serve.InvalidError.
func (r *Repo) CareTeam(ctx context.Context, clinician string) (patient.CareTeam, error) {
	if clinician == "" {
		return patient.CareTeam{}, serve.Invalid("clinician", "empty")
	}
	if serve.DocIDProblem(clinician) != "" {
		return patient.CareTeam{}, fmt.Errorf("read care team: subject cannot name a document: %w", serve.ErrNotFound)
	}
	var t patient.CareTeam
	if err := r.get(ctx, r.teams.Doc(clinician), &t); err != nil {
		return patient.CareTeam{}, fmt.Errorf("read care team of %s: %w", clinician, err)
	}
	if t.Clinician == "" {
		t.Clinician = clinician
	}
	return t, nil
}

// Ping reads one document that need not exist: it succeeds when Firestore
// answers, found or not.
func (r *Repo) Ping(ctx context.Context) error {
	_, err := r.patients.Doc(pingDoc).Get(ctx)
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("ping firestore: %w", err)
	}
	return nil
}

// PutProfile writes p as patient_profiles/<p.PatientID>, replacing any
// previous profile. BirthDate must be a YYYY-MM-DD date and Sex one of the
// patient.Sex constants.
func (r *Repo) PutProfile(ctx context.Context, p patient.Profile) error {
	if err := checkDocID("patient_id", p.PatientID); err != nil {
		return err
	}
	if _, err := time.Parse(time.DateOnly, p.BirthDate); err != nil {
		return serve.Invalid("birth_date", "want a YYYY-MM-DD date")
	}
	switch p.Sex {
	case patient.SexFemale, patient.SexMale, patient.SexOther, patient.SexUnknown:
	default:
		return serve.Invalid("sex", "want one of %s, %s, %s, %s", patient.SexFemale, patient.SexMale, patient.SexOther, patient.SexUnknown)
	}
	if _, err := r.profiles.Doc(p.PatientID).Set(ctx, p); err != nil {
		return fmt.Errorf("write profile of patient %s: %w", p.PatientID, err)
	}
	return nil
}

// PutCareTeam writes t as care_teams/<t.Clinician>, replacing any previous
// team. Every patient id must be a valid document id; duplicates are
// dropped, the first occurrence keeping its place.
func (r *Repo) PutCareTeam(ctx context.Context, t patient.CareTeam) error {
	if err := checkDocID("clinician", t.Clinician); err != nil {
		return err
	}
	seen := make(map[string]bool, len(t.Patients))
	ids := make([]string, 0, len(t.Patients))
	for i, id := range t.Patients {
		if reason := serve.DocIDProblem(id); reason != "" {
			return serve.Invalid("patients", "entry %d: %s", i, reason)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	t.Patients = ids
	if _, err := r.teams.Doc(t.Clinician).Set(ctx, t); err != nil {
		return fmt.Errorf("write care team of %s: %w", t.Clinician, err)
	}
	return nil
}

// get reads ref into dst; a missing document is serve.ErrNotFound.
func (r *Repo) get(ctx context.Context, ref *firestore.DocumentRef, dst any) error {
	snap, err := ref.Get(ctx)
	if status.Code(err) == codes.NotFound {
		return serve.ErrNotFound
	}
	if err != nil {
		return err
	}
	if err := snap.DataTo(dst); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// checkDocID returns a *serve.InvalidError for field unless id can be a
// Firestore document id.
func checkDocID(field, id string) error {
	if reason := serve.DocIDProblem(id); reason != "" {
		return serve.Invalid(field, "%s", reason)
	}
	return nil
}
