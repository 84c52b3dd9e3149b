package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/robotcsv"
	"github.com/labplatform/platform/testenv/robotsim"
)

func TestRunOnce(t *testing.T) {
	tests := []struct {
		name string
		args []string
		// check looks at the manifest and the root.
		check func(t *testing.T, m robotsim.Manifest, root string)
	}{
		{name: "one file per robot", args: []string{"-robots", "3", "-rows", "50"}, check: func(t *testing.T, m robotsim.Manifest, root string) {
			if len(m.Files) != 3 || len(m.DB) != 0 {
				t.Fatalf("%d files, %d database series", len(m.Files), len(m.DB))
			}
			for i, f := range m.Files {
				if f.Rows != 50 || f.Valid != 50 || f.Version != []string{"v1", "v2", "v3"}[i] {
					t.Errorf("file %+v", f)
				}
				b, err := os.ReadFile(filepath.Join(root, f.Path))
				if err != nil {
					t.Fatal(err)
				}
				header, _, _ := bytes.Cut(b, []byte("\n"))
				if l, err := robotcsv.Detect(string(header)); err != nil || l.Version.Name != f.Version {
					t.Errorf("%s: header %q: %v", f.Path, header, err)
				}
			}
		}},
		{name: "version mix and size", args: []string{"-robots", "2", "-versions", "v3", "-file-size", "20KB"}, check: func(t *testing.T, m robotsim.Manifest, _ string) {
			for _, f := range m.Files {
				if f.Version != "v3" || f.Size < 18_000 || f.Size > 22_000 {
					t.Errorf("file %s: %s, %d bytes", f.Path, f.Version, f.Size)
				}
			}
		}},
		{name: "faults and database", args: []string{"-robots", "2", "-rows", "200", "-malformed", "0.05", "-malformed-kinds", "bad_number",
			"-temp-rename", "1", "-done-marker", "1", "-db", "-reexport", "1"}, check: func(t *testing.T, m robotsim.Manifest, root string) {
			if len(m.Files) != 4 || len(m.DB) != 2 {
				t.Fatalf("%d files, %d database series", len(m.Files), len(m.DB))
			}
			for _, f := range m.Files {
				if f.Malformed == 0 || f.DoneMarker == "" || f.TempName == "" {
					t.Errorf("file %+v", f)
				}
				for _, l := range f.MalformedLines {
					if l.Kind != robotsim.BadNumber {
						t.Errorf("%s: %+v", f.Path, l)
					}
				}
				if _, err := os.Stat(filepath.Join(root, f.DoneMarker)); err != nil {
					t.Error(err)
				}
			}
			if _, err := os.Stat(filepath.Join(root, "R001", "db", "results.db.csv")); err != nil {
				t.Error(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			manifest := filepath.Join(t.TempDir(), "manifest.json")
			var stdout, stderr bytes.Buffer
			args := append([]string{"-root", root, "-once", "-manifest", manifest}, tt.args...)
			if err := run(t.Context(), args, &stdout, &stderr); err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			if !strings.Contains(stdout.String(), "files") || !strings.Contains(stdout.String(), "done:") {
				t.Errorf("stdout %q", stdout.String())
			}
			b, err := os.ReadFile(manifest)
			if err != nil {
				t.Fatal(err)
			}
			var m robotsim.Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			tt.check(t, m, root)
		})
	}
}

func TestRunIsReproducibleWithAStart(t *testing.T) {
	var trees [2]map[string][]byte
	for i := range trees {
		root := t.TempDir()
		args := []string{"-root", root, "-robots", "3", "-rows", "30", "-start", "2026-02-01T10:00:00Z", "-once", "-seed", "5"}
		if err := run(t.Context(), args, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		trees[i] = map[string][]byte{}
		for _, r := range []string{"R001", "R002", "R003"} {
			entries, err := os.ReadDir(filepath.Join(root, r))
			if err != nil || len(entries) != 1 {
				t.Fatalf("%s: %v, %v", r, entries, err)
			}
			name := entries[0].Name()
			if !strings.HasPrefix(name, r+"_20260201T100000_") {
				t.Errorf("file name %s", name)
			}
			trees[i][name], _ = os.ReadFile(filepath.Join(root, r, name))
		}
	}
	for name, b := range trees[0] {
		if !bytes.Equal(b, trees[1][name]) {
			t.Errorf("%s differs between runs", name)
		}
	}
}

func TestRunGenerateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.csv")
	var stdout bytes.Buffer
	if err := run(t.Context(), []string{"-generate-file", path, "-rows", "2000", "-version", "v1", "-seed", "3"}, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if _, err := robotsim.Generate(&want, robotsim.GenerateOptions{Version: "v1", Rows: 2000, Seed: 3, Patients: 10000}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want.Bytes()) || !strings.Contains(stdout.String(), "2000 rows") {
		t.Errorf("file of %d bytes, want %d; stdout %q", len(b), want.Len(), stdout.String())
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(c config) bool
	}{
		{name: "defaults", args: []string{"-root", "r"}, check: func(c config) bool {
			o := c.sim
			return o.Root == "r" && o.Robots == 100 && o.FilesPerHour == 4 && o.RowsPerFile == 1000 &&
				slices.Equal(o.Versions, []string{"v1", "v2", "v3"}) && o.Corrected == 0.05 && o.AlternateUnitRobots == 0.25 &&
				o.Faults.Malformed == 0 && !o.DB.Enabled && c.duration == 0 && !c.once && c.report == 10*time.Second
		}},
		{name: "zero means none", args: []string{"-root", "r", "-corrected", "0", "-alternate-units", "0"}, check: func(c config) bool {
			return c.sim.Corrected < 0 && c.sim.AlternateUnitRobots < 0
		}},
		{name: "sizes and lists", args: []string{"-root", "r", "-file-size", "100MB", "-versions", " v2, v2 ,v3", "-malformed-kinds", "bad_number,field_count"}, check: func(c config) bool {
			return c.sim.TargetBytes == 100_000_000 && slices.Equal(c.sim.Versions, []string{"v2", "v2", "v3"}) &&
				slices.Equal(c.sim.Faults.MalformedKinds, []robotsim.MalformedKind{robotsim.BadNumber, robotsim.FieldCount})
		}},
		{name: "binary size", args: []string{"-root", "r", "-file-size", "64KiB"}, check: func(c config) bool { return c.sim.TargetBytes == 65536 }},
		{name: "faults", args: []string{"-root", "r", "-slow-write", "0.1", "-slow-write-duration", "45s", "-temp-rename", "1", "-db", "-db-rotate", "0.01"}, check: func(c config) bool {
			f := c.sim.Faults
			return f.SlowWrite == 0.1 && f.SlowWriteDuration == 45*time.Second && f.TempRename == 1 && c.sim.DB.Enabled && c.sim.DB.Rotate == 0.01
		}},
		{name: "generate needs no root", args: []string{"-generate-file", "-", "-rows", "7", "-version", "v3", "-seed", "9", "-alternate-units", "1", "-truncate-last-line", "1"}, check: func(c config) bool {
			g := c.gen
			return c.generate == "-" && g.Rows == 7 && g.Version == "v3" && g.Seed == 9 && g.AlternateUnits && g.TruncatedLastLine
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse(tt.args, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("parse(%q) = %+v", tt.args, c)
			}
		})
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no root", args: []string{"-once"}, want: "-root is required"},
		{name: "unknown flag", args: []string{"-root", "x", "-frobnicate"}, want: "frobnicate"},
		{name: "stray argument", args: []string{"-root", "x", "extra"}, want: `unexpected argument "extra"`},
		{name: "bad size", args: []string{"-root", "x", "-file-size", "lots"}, want: "size"},
		{name: "bad probability", args: []string{"-root", "x", "-once", "-malformed", "1.5"}, want: "malformed 1.5"},
		{name: "unknown version", args: []string{"-root", "x", "-once", "-versions", "v2,v4"}, want: `"v4"`},
		{name: "unknown kind", args: []string{"-root", "x", "-once", "-malformed-kinds", "typo"}, want: `"typo"`},
		{name: "bad start", args: []string{"-root", "x", "-start", "yesterday"}, want: "start"},
		{name: "negative duration", args: []string{"-root", "x", "-duration", "-1s"}, want: "negative"},
		{name: "generate unknown version", args: []string{"-generate-file", "-", "-version", "v9"}, want: `"v9"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(t.Context(), tt.args, &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error mentioning %s", tt.args, err, tt.want)
			}
		})
	}
}

// TestREADMEFlags keeps the README's flag table and the flags in step.
func TestREADMEFlags(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(t.Context(), []string{"-h"}, &bytes.Buffer{}, &stderr); err != nil {
		t.Fatal(err)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(stderr.String(), -1) {
		flags[m[1]] = true
	}
	readme, err := os.ReadFile("../../robotsim/README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(readme), "## Command flags")
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`-([a-z-]+)`").FindAllStringSubmatch(table, -1) {
		documented[m[1]] = true
	}
	if len(flags) < 20 {
		t.Fatalf("found only %d flags in the help text", len(flags))
	}
	for f := range flags {
		if !documented[f] {
			t.Errorf("flag -%s is not in the README's flag table", f)
		}
	}
	for f := range documented {
		if !flags[f] {
			t.Errorf("the README documents -%s, which does not exist", f)
		}
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(t.Context(), []string{"-h"}, &bytes.Buffer{}, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"-root", "-once", "-generate-file", "-slow-write", "-db-rotate"} {
		if !strings.Contains(stderr.String(), flag) {
			t.Errorf("help does not mention %s", flag)
		}
	}
	if !slices.Contains(strings.Fields(stderr.String()), "-malformed") {
		t.Error("help lacks -malformed")
	}
}
