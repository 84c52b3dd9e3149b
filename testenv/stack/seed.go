package stack

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/patient"
	"github.com/labplatform/platform/serve/model"
	"github.com/labplatform/platform/serve/patients"
)

// DemoClinician is the subject of the seeded clinician; CareTeamSize of the
// most frequent patients are in their care team. Profiles are seeded for
// the ProfilesSeeded most frequent patients (the others have no eGFR).
const (
	DemoClinician  = "dr-demo"
	CareTeamSize   = 20
	ProfilesSeeded = 1000
)

// seed writes what the platform reads but does not produce: a profile
// (birth date, sex) for each of the most frequent simulated patients
// (ProfilesSeeded), the demo clinician's care team
// and the demo scoring model, published and active. Every write is
// idempotent: a restarted stack writes the same documents again.
func (s *Stack) seed(ctx context.Context) error {
	ids := s.patients
	repo := patients.New(s.firestore)
	for _, id := range ids[:min(ProfilesSeeded, len(ids))] {
		if err := repo.PutProfile(ctx, profileOf(id)); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	team := patient.CareTeam{Clinician: DemoClinician, Patients: ids[:min(CareTeamSize, len(ids))]}
	if err := repo.PutCareTeam(ctx, team); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := model.Publish(ctx, s.storage, names.ModelsBucket(s.platform.Prefix), model.DemoArtifact(), true); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}

// profileOf derives a stable, plausible profile from a patient id: born
// 1936 to 2005, female or male.
func profileOf(id string) patient.Profile {
	h := fnv.New64a()
	h.Write([]byte(id))
	v := h.Sum64()
	born := time.Date(1936, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(v%(70*365)))
	sex := patient.SexFemale
	if v>>32&1 == 1 {
		sex = patient.SexMale
	}
	return patient.Profile{PatientID: id, BirthDate: born.Format(time.DateOnly), Sex: sex}
}
