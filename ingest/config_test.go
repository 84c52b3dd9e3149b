package ingest_test

import (
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/ingest"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	base := map[string]string{config.EnvProject: "lab-local"}
	defaults := ingest.Config{
		Command:    ingest.CmdRun,
		Platform:   config.Platform{Project: "lab-local", Prefix: "lab-local", BigQueryLocation: "EU"},
		Root:       "/mnt/robots",
		Checkpoint: "ingest-checkpoint.db",
		Interval:   10 * time.Second,
		Listen:     ":9464",
		Shipper: ingest.Options{
			Stability: 90 * time.Second, Convention: ingest.Stability, Concurrency: 4,
			ChunkMin: 64 << 20, ChunkMax: 128 << 20, ChunkMaxWait: time.Minute, UploadTimeout: 10 * time.Minute,
		},
	}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(*ingest.Config)
		wantErr []string
	}{
		{name: "defaults", args: []string{"run", "-root", "/mnt/robots"}, want: func(*ingest.Config) {}},
		{
			name: "flags",
			args: []string{"once", "-root", "/mnt/robots", "-interval", "1s", "-stability", "5s", "-convention", "rename",
				"-robot-conventions", "R001=done, R002=stability", "-concurrency", "8", "-bandwidth", "10M",
				"-chunk-min", "1K", "-chunk-max", "2K", "-archive-dir", "/mnt/archive", "-listen", "127.0.0.1:0", "-log-level", "debug"},
			want: func(c *ingest.Config) {
				c.Command, c.Interval, c.Listen, c.LogLevel = ingest.CmdOnce, time.Second, "127.0.0.1:0", -4
				c.Shipper.Stability, c.Shipper.Convention, c.Shipper.Concurrency = 5*time.Second, ingest.Rename, 8
				c.Shipper.Robots = map[string]ingest.Convention{"R001": ingest.DoneMarker, "R002": ingest.Stability}
				c.Shipper.BytesPerSecond, c.Shipper.ChunkMin, c.Shipper.ChunkMax = 10<<20, 1<<10, 2<<10
				c.Shipper.ArchiveDir = "/mnt/archive"
			},
		},
		{
			name: "environment",
			args: []string{"run"},
			env: map[string]string{"INGEST_ROOT": "/mnt/robots", "INGEST_STABILITY": "2m", "INGEST_CHECKPOINT": "/var/lib/ingest.db",
				"LAB_PREFIX": "lab", "STORAGE_EMULATOR_HOST": "127.0.0.1:4443"},
			want: func(c *ingest.Config) {
				c.Shipper.Stability, c.Checkpoint = 2*time.Minute, "/var/lib/ingest.db"
				c.Platform.Prefix, c.Platform.Emulators.Storage = "lab", "127.0.0.1:4443"
			},
		},
		{
			name: "flag beats environment",
			args: []string{"run", "-root", "/flag"},
			env:  map[string]string{"INGEST_ROOT": "/env"},
			want: func(c *ingest.Config) { c.Root = "/flag" },
		},
		{name: "status needs no project", args: []string{"status", "-root", "/mnt/robots", "-json"}, env: map[string]string{config.EnvProject: ""},
			want: func(c *ingest.Config) {
				c.Command, c.JSON, c.Platform = ingest.CmdStatus, true, config.Platform{BigQueryLocation: "EU"}
			}},
		{name: "no command", args: nil, wantErr: []string{"missing command"}},
		{name: "unknown command", args: []string{"ship"}, wantErr: []string{`unknown command "ship"`}},
		{
			name: "every problem at once",
			args: []string{"run", "-interval", "0s", "-convention", "magic", "-robot-conventions", "X1=rename", "-chunk-min", "2M",
				"-chunk-max", "1M", "-concurrency", "0", "-bandwidth", "fast"},
			env:     map[string]string{config.EnvProject: ""},
			wantErr: []string{"project: not set", "root: not set", "interval", `convention "magic"`, "robot-conventions", "chunk-max", "concurrency", "bandwidth"},
		},
		{name: "positional argument", args: []string{"run", "-root", "/r", "extra"}, wantErr: []string{`unexpected argument "extra"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.env {
				env[k] = v
			}
			got, err := ingest.Load(tc.args, func(k string) string { return env[k] })
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("Load: no error, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := defaults
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load:\n got %+v\nwant %+v", got, want)
			}
		})
	}
	if _, err := ingest.Load([]string{"run", "-h"}, func(string) string { return "" }); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}
