package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, testenv.Options{})) }

func lifecycle(t *testing.T, getenv func(string) string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(t.Context(), args, getenv, &out, &errb)
	return out.String(), errb.String(), err
}

func platformEnv(t *testing.T) (func(string) string, string) {
	t.Helper()
	p := env.NewTestPlatform(t)
	vars := map[string]string{}
	for _, kv := range p.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	return func(k string) string { return vars[k] }, p.Prefix
}

func TestValidate(t *testing.T) {
	out, _, err := lifecycle(t, os.Getenv, "validate")
	if err != nil || !strings.Contains(out, "valid") {
		t.Fatalf("validate the shipped file: %q %v", out, err)
	}
	bad := filepath.Join(t.TempDir(), "p.json")
	if err := os.WriteFile(bad, []byte(`{"version":1,"buckets":{"raw":{"rules":[{"action":{"type":"SetStorageClass","storage_class":"WARM"},"condition":{"age":30}}]}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = lifecycle(t, os.Getenv, "validate", "--policies", bad)
	var u usageError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "WARM") {
		t.Errorf("invalid policy: %v, want a usage error naming the class", err)
	}
	if _, _, err := lifecycle(t, os.Getenv, "shred"); !errors.As(err, &u) {
		t.Errorf("unknown command: %v", err)
	}
}

func TestPlanEnforceCost(t *testing.T) {
	getenv, prefix := platformEnv(t)
	out, _, err := lifecycle(t, getenv, "plan")
	if err != nil {
		t.Fatal(err)
	}
	if bare, _, err := lifecycle(t, getenv); err != nil || bare != out {
		t.Errorf("lifecycle with no command is not plan: %v\n%s", err, bare)
	}
	for _, b := range names.Buckets(prefix) {
		if !strings.Contains(out, b) {
			t.Errorf("plan does not mention bucket %s:\n%s", b, out)
		}
	}
	out, _, err = lifecycle(t, getenv, "enforce", "--dry-run", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		DryRun  bool `json:"dry_run"`
		Scanned int  `json:"scanned"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.DryRun {
		t.Errorf("enforce --json: %v %+v\n%s", err, rep, out)
	}
	svg := filepath.Join(t.TempDir(), "cost.svg")
	if _, _, err := lifecycle(t, getenv, "cost", "--format", "svg", "--out", svg, "--growth", "raw=100"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(data, new(struct{})); err != nil {
		t.Errorf("cost SVG is not XML: %v", err)
	}
	out, _, err = lifecycle(t, getenv, "cost", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var cr struct {
		Months         int              `json:"months"`
		GrowthPerMonth map[string]int64 `json:"growth_per_month"`
	}
	if err := json.Unmarshal([]byte(out), &cr); err != nil || cr.Months != 12 {
		t.Errorf("cost --format json: %v %+v", err, cr)
	}
	var u usageError
	if _, _, err := lifecycle(t, getenv, "cost", "--format", "pdf"); !errors.As(err, &u) {
		t.Errorf("--format pdf: %v", err)
	}
}
