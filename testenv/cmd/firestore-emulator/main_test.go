package main

import (
	"io"
	"testing"
)

func TestLoadConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr bool
	}{
		{name: "defaults", want: config{HostPort: "127.0.0.1:8080", Project: "demo-project"}},
		{name: "flags", args: []string{"--host-port", "0.0.0.0:9000", "--project", "p1", "--data-file", "/tmp/x.pb"},
			want: config{HostPort: "0.0.0.0:9000", Project: "p1", DataFile: "/tmp/x.pb"}},
		{name: "environment defaults", env: map[string]string{"FIRESTORE_EMULATOR_HOST": "localhost:1234", "GOOGLE_CLOUD_PROJECT": "envp"},
			want: config{HostPort: "localhost:1234", Project: "envp"}},
		{name: "flags beat environment", args: []string{"--project=flagp"}, env: map[string]string{"GOOGLE_CLOUD_PROJECT": "envp"},
			want: config{HostPort: "127.0.0.1:8080", Project: "flagp"}},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: true},
		{name: "positional argument", args: []string{"extra"}, wantErr: true},
		{name: "empty host-port", args: []string{"--host-port="}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadConfig(tc.args, env(tc.env), io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
