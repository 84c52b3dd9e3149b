// Package labtests owns the laboratory's reference data for the tests it
// reports: for each test its LOINC code, display name, the mnemonic older
// robots send, its canonical UCUM unit and the alternate units it accepts
// (with the conversion to the canonical unit), the physiological plausibility
// bounds (a value outside is impossible and its row is quarantined), the
// default adult reference interval and the critical (panic) limits. It is the
// single source of truth for the cleaning step (process), the robot simulator
// and the API; no other module keeps its own copy of these numbers.
//
// The data lives in tests.json, embedded in the binary and parsed once when
// the package is initialised. A broken file never panics: the package tests
// fail, and at run time the catalogue is empty and [Validate] returns every
// problem found, so a service can refuse to start.
//
// Units are compared after [NormalizeUnit], which maps the spellings robots
// use ("µmol/L", "x10^9/L", "K/uL", "mIU/L") to UCUM. A conversion is
// canonical = value*Factor + Offset; only HbA1c needs an offset.
//
// # Errors
//
// [Test.ToCanonical] returns an [*UnknownUnitError] (match it with errors.As)
// when a unit is neither the test's canonical unit nor one of its alternates;
// the cleaning step quarantines such a row. [Validate] returns the joined
// problems of the embedded data (nil in a build whose tests pass). Lookups
// ([ByCode], [ByMnemonic]) report a miss with a bool.
//
// # Sources
//
// Codes and names follow the LOINC table (Regenstrief Institute, loinc.org);
// every code's Mod 10 check digit is verified by the tests ([ValidLOINC]).
// Unit spellings follow UCUM (The Unified Code for Units of Measure,
// unitsofmeasure.org), with the international unit written [IU], so TSH is
// "m[IU]/L". Conversion factors are the SI conversion factors of the AMA
// Manual of Style SI conversion table and Young DS, "Implementation of SI
// units for clinical laboratory data", Ann Intern Med 1987, derived from
// molar masses (glucose 180.16 g/mol, creatinine 113.12 g/mol, urea nitrogen
// 28.014 g/mol, calcium 40.08 g/mol, cholesterol 386.7 g/mol, triolein
// 885.7 g/mol, bilirubin 584.7 g/mol, haemoglobin monomer 16.11 kg/mol;
// 1 ukat/L = 60 U/L). HbA1c IFCC (mmol/mol) to NGSP (%) uses the IFCC-NGSP
// master equation NGSP = 0.09148*IFCC + 2.152 (Hoelzel et al., Clin Chem
// 2004). Reference intervals are common adult intervals as published by
// MedlinePlus and large reference laboratories (a union of male and female
// intervals where they differ); lipids use the NCEP ATP III cut-points, HbA1c
// the ADA non-diabetic limit, and these one-sided intervals are stored with
// the open side equal to the plausibility bound. Critical limits are the
// values most often used in published critical-value lists (Kost GJ,
// "Critical limits for urgent clinician notification at US medical centers",
// JAMA 1990, and later surveys); tests with no widely agreed adult critical
// limit have none. Plausibility bounds are the laboratory's own, set wide
// enough to include the extreme values reported in the literature. These are
// defaults: a clinical laboratory must verify them against its own methods
// and population.
package labtests
