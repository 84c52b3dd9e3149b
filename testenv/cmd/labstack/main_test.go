package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/names"
)

// start runs labstack on free ports with dataDir and returns the platform it
// printed and a function that stops it (as Ctrl-C would) and returns run's
// error.
func start(t *testing.T, dataDir string) (config.Platform, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-services=false", "-storage-port=0", "-pubsub-port=0", "-firestore-port=0", "-bigquery-port=0", "-issuer-port=0", "-data-dir=" + dataDir, "-log-level=error"}, noEnv, w, io.Discard)
		w.Close()
	}()
	env := map[string]string{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		if strings.HasPrefix(line, "Press Ctrl-C") {
			break
		}
	}
	go io.Copy(io.Discard, out)
	p, err := config.Load(nil, func(k string) string { return env[k] })
	if err != nil {
		cancel()
		t.Fatalf("labstack printed no usable environment (%v): %v; run returned %v", env, err, <-done)
	}
	checkIssuer(t, env["MOBILE_API_JWKS_URL"], env["MOBILE_API_ISSUER"])
	return p, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("labstack did not stop within 30s of Ctrl-C")
			return nil
		}
	}
}

func noEnv(string) string { return "" }

// TestRestartKeepsState runs labstack, writes an object and a document,
// stops it as Ctrl-C would, starts it again on the same data directory and
// reads both back.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	p, stop := start(t, dir)
	if p.Project != "lab-local" || p.Prefix != "lab" || !p.Emulators.Any() {
		t.Fatalf("platform = %+v", p)
	}
	gcs, err := gcp.NewStorage(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	w := gcs.Bucket(names.RawBucket(p.Prefix)).Object("robot=R001/date=2026-11-21/a.csv").NewWriter(ctx)
	w.Write([]byte("kept"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	gcs.Close()
	fs, err := gcp.NewFirestore(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Collection(names.CollectionPatients).Doc("P1").Set(ctx, map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	fs.Close()
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	p, stop = start(t, dir)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	gcs, err = gcp.NewStorage(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer gcs.Close()
	r, err := gcs.Bucket(names.RawBucket(p.Prefix)).Object("robot=R001/date=2026-11-21/a.csv").NewReader(ctx)
	if err != nil {
		t.Fatalf("object after restart: %v", err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "kept" {
		t.Errorf("object after restart = %q", b)
	}
	fs, err = gcp.NewFirestore(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	snap, err := fs.Collection(names.CollectionPatients).Doc("P1").Get(ctx)
	if err != nil || snap.Data()["n"] != int64(1) {
		t.Errorf("document after restart: %v, %v", snap.Data(), err)
	}
	bq, err := gcp.NewBigQuery(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer bq.Close()
	if _, err := bq.Dataset(names.Dataset).Table(names.ResultsTable).Metadata(ctx); err != nil {
		t.Errorf("results table after restart: %v", err)
	}
}

func TestParseRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"extra"}, {"-storage-port=x"}, {"-log-level=loud"}, {"-timeout=1m"}} {
		if _, err := parse(args, io.Discard); err == nil {
			t.Errorf("parse(%q) accepted", args)
		}
	}
	for _, args := range [][]string{{"-status=1s"}, {"extra"}, {"-data-dir="}, {"-robots-for=x"}} {
		if _, _, _, err := parseDemo(args, io.Discard); err == nil {
			t.Errorf("parseDemo(%q) accepted", args)
		}
	}
	for _, args := range [][]string{{"-scale-workers=1,x"}, {"-scale-workers=0"}, {"-rounds=0"}, {"extra"}, {"-keep"}} {
		if _, _, err := parseReliability(args, io.Discard); err == nil {
			t.Errorf("parseReliability(%q) accepted", args)
		}
	}
	if _, r, err := parseReliability([]string{"-scale-workers", "1, 3", "-rounds", "7"}, io.Discard); err != nil || !slices.Equal(r.workers, []int{1, 3}) || r.rounds != 7 {
		t.Errorf("parseReliability: %+v, %v", r, err)
	}
}

func TestParseRobotFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{args: nil, want: nil},
		{args: []string{"-robot-flags", "-malformed=0.1  -empty=0.01"}, want: []string{"-malformed=0.1", "-empty=0.01"}},
		{args: []string{"-robot-flags="}, want: []string{}},
	} {
		c, err := parse(tc.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(c.stack.RobotArgs, tc.want) || (c.stack.RobotArgs == nil) != (tc.want == nil) {
			t.Errorf("parse(%q): robot args %q, want %q", tc.args, c.stack.RobotArgs, tc.want)
		}
	}
}

// TestSQL queries a running local GCP through labstack sql: a table with a
// header, and a clear error for bad SQL.
func TestSQL(t *testing.T) {
	p, stop := start(t, t.TempDir())
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	getenv := func(k string) string {
		return map[string]string{config.EnvProject: p.Project, config.EnvBigQueryEmulator: p.Emulators.BigQuery}[k]
	}
	var out strings.Builder
	if err := run(t.Context(), []string{"sql", "SELECT 1 AS one, 'two' AS two UNION ALL SELECT 3, 'four' ORDER BY one"}, getenv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || strings.Fields(lines[0])[0] != "one" || strings.Join(strings.Fields(lines[2]), " ") != "3 four" {
		t.Errorf("sql printed:\n%s", out.String())
	}
	err := run(t.Context(), []string{"sql", "SELECT nope"}, getenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("bad SQL: %v", err)
	}
}

// TestREADMEListsEveryFlag keeps the flag table in testenv/README.md in step
// with the flags labstack defines, both ways.
func TestREADMEListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		if name, ok := strings.CutPrefix(line, "| `-"); ok {
			name, _, _ = strings.Cut(name, "`")
			documented[name] = true
		}
	}
	// parse and parseDemo register their flags on their own sets; list them
	// through -h.
	var usage strings.Builder
	if _, err = parse([]string{"-h"}, &usage); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parse -h: %v", err)
	}
	if _, _, _, err = parseDemo([]string{"-h"}, &usage); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseDemo -h: %v", err)
	}
	if _, _, err = parseReliability([]string{"-h"}, &usage); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseReliability -h: %v", err)
	}
	if _, _, err = parseLoad([]string{"-h"}, &usage); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseLoad -h: %v", err)
	}
	defined := map[string]bool{}
	for _, line := range strings.Split(usage.String(), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "-"); ok {
			name, _, _ = strings.Cut(name, " ")
			defined[name] = true
		}
	}
	if len(defined) == 0 {
		t.Fatal("no flags found in the usage text")
	}
	for name := range defined {
		if !documented[name] {
			t.Errorf("flag -%s is not in the README's labstack table", name)
		}
	}
	for name := range documented {
		if !defined[name] {
			t.Errorf("README documents -%s, which labstack does not define", name)
		}
	}
}

// checkIssuer checks the token issuer labstack printed serves a key.
func checkIssuer(t *testing.T, jwksURL, iss string) {
	t.Helper()
	if jwksURL == "" || iss == "" {
		t.Fatalf("labstack printed no token issuer (jwks %q, issuer %q)", jwksURL, iss)
	}
	res, err := http.Get(jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil || res.StatusCode != http.StatusOK || len(set.Keys) == 0 {
		t.Fatalf("JWKS %s: status %d, %d keys, %v", jwksURL, res.StatusCode, len(set.Keys), err)
	}
}
