package ingest_test

import (
	"errors"
	"flag"
	"os"
	"regexp"
	"testing"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/ingest"
)

// TestREADMEListsEveryFlag keeps the flag table of README.md in step with
// the flags Load defines (the shared platform flags are documented in
// contracts), both ways.
func TestREADMEListsEveryFlag(t *testing.T) {
	t.Parallel()
	_, err := ingest.Load([]string{ingest.CmdRun, "-h"}, func(string) string { return "" })
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Load -h: %v", err)
	}
	platform := flag.NewFlagSet("platform", flag.ContinueOnError)
	var p config.Platform
	p.RegisterFlags(platform, func(string) string { return "" })
	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(err.Error(), -1) {
		if platform.Lookup(m[1]) == nil {
			defined[m[1]] = true
		}
	}
	if len(defined) < 10 {
		t.Fatalf("found only %d flags in the help text: %v", len(defined), defined)
	}
	readme, rerr := os.ReadFile("README.md")
	if rerr != nil {
		t.Fatal(rerr)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `-([a-z-]+)` \\|").FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = true
	}
	for f := range defined {
		if !documented[f] {
			t.Errorf("flag -%s is not in the README's flag table", f)
		}
	}
	for f := range documented {
		if !defined[f] {
			t.Errorf("the README documents -%s, which ingest does not define", f)
		}
	}
}
