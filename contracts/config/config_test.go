package config_test

import (
	"flag"
	"slices"
	"strings"
	"testing"

	"github.com/labplatform/platform/contracts/config"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config.Platform
		wantErr string
	}{
		{
			name: "env only, prefix defaults to project",
			env:  map[string]string{"LAB_PROJECT": "lab-prod-1"},
			want: config.Platform{Project: "lab-prod-1", Prefix: "lab-prod-1", BigQueryLocation: "EU"},
		},
		{
			name: "GOOGLE_CLOUD_PROJECT fallback",
			env:  map[string]string{"GOOGLE_CLOUD_PROJECT": "lab-prod-2", "LAB_PREFIX": "acme-lab"},
			want: config.Platform{Project: "lab-prod-2", Prefix: "acme-lab", BigQueryLocation: "EU"},
		},
		{
			name: "flags win over env",
			args: []string{"-project", "lab-flag", "-prefix", "p1", "-bigquery-location", "europe-west1"},
			env:  map[string]string{"LAB_PROJECT": "lab-env", "LAB_PREFIX": "p2"},
			want: config.Platform{Project: "lab-flag", Prefix: "p1", BigQueryLocation: "europe-west1"},
		},
		{
			name: "emulators from the standard variables",
			env: map[string]string{
				"LAB_PROJECT": "lab-local", "STORAGE_EMULATOR_HOST": "http://127.0.0.1:4443",
				"PUBSUB_EMULATOR_HOST": "127.0.0.1:8085", "FIRESTORE_EMULATOR_HOST": "localhost:8086",
				"BIGQUERY_EMULATOR_HOST": "[::1]:9050",
			},
			want: config.Platform{Project: "lab-local", Prefix: "lab-local", BigQueryLocation: "EU", Emulators: config.Emulators{
				Storage: "http://127.0.0.1:4443", PubSub: "127.0.0.1:8085", Firestore: "localhost:8086", BigQuery: "[::1]:9050",
			}},
		},
		{name: "no project", wantErr: "project: not set"},
		{name: "bad project", env: map[string]string{"LAB_PROJECT": "Lab_Prod"}, wantErr: `project "Lab_Prod"`},
		{name: "bad prefix", args: []string{"-prefix", "UPPER"}, env: map[string]string{"LAB_PROJECT": "lab-prod"}, wantErr: `prefix "UPPER"`},
		{name: "bad emulator", env: map[string]string{"LAB_PROJECT": "lab-prod", "PUBSUB_EMULATOR_HOST": "nohost"}, wantErr: `pubsub emulator "nohost"`},
		{name: "unknown flag", args: []string{"-nope"}, env: map[string]string{"LAB_PROJECT": "lab-prod"}, wantErr: "flag provided but not defined"},
		{name: "positional argument", args: []string{"extra"}, env: map[string]string{"LAB_PROJECT": "lab-prod"}, wantErr: `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.Load(tt.args, env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	p := config.Platform{Project: "X", Prefix: "Y", Emulators: config.Emulators{BigQuery: "bad"}}
	err := p.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, part := range []string{"project", "prefix", "bigquery location", "bigquery emulator"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %s", err, part)
		}
	}
}

func TestRegisterFlagsBesideServiceFlags(t *testing.T) {
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	var p config.Platform
	p.RegisterFlags(fs, env(map[string]string{"LAB_PROJECT": "lab-svc"}))
	workers := fs.Int("workers", 1, "")
	if err := fs.Parse([]string{"-workers", "4", "-prefix", "svc"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if *workers != 4 || p.Project != "lab-svc" || p.Prefix != "svc" {
		t.Errorf("workers %d, platform %+v", *workers, p)
	}
}

func TestEnvironRoundTrips(t *testing.T) {
	p := config.Platform{Project: "lab-local", Prefix: "lab", BigQueryLocation: "US",
		Emulators: config.Emulators{Storage: "http://127.0.0.1:1", PubSub: "127.0.0.1:2", BigQuery: "127.0.0.1:4"}}
	lines := p.Environ()
	if slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "FIRESTORE_EMULATOR_HOST=") }) {
		t.Errorf("Environ exports an unset emulator: %v", lines)
	}
	m := map[string]string{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	back, err := config.Load(nil, env(m))
	if err != nil || back != p {
		t.Errorf("Load(Environ()) = %+v, %v; want %+v", back, err, p)
	}
}
