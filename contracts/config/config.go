// Package config owns the platform settings every service shares: the GCP
// project, the resource prefix, the BigQuery location and the emulator
// endpoints. Each is a flag with an environment variable behind it; a flag
// wins over the variable, the variable over the default.
//
// Services register these flags next to their own (RegisterFlags), parse, and
// call Validate; commands with no flags of their own call Load. Nothing here
// reads the process environment directly: the caller passes getenv.
package config

import (
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strings"
)

// Environment variables.
const (
	EnvProject          = "LAB_PROJECT"
	EnvGoogleProject    = "GOOGLE_CLOUD_PROJECT" // fallback for EnvProject
	EnvPrefix           = "LAB_PREFIX"
	EnvBigQueryLocation = "LAB_BIGQUERY_LOCATION"
	EnvStorageEmulator  = "STORAGE_EMULATOR_HOST"
	EnvPubSubEmulator   = "PUBSUB_EMULATOR_HOST"
	EnvFirestoreEmu     = "FIRESTORE_EMULATOR_HOST"
	// EnvBigQueryEmulator is this project's own variable: the BigQuery client
	// library has no emulator variable of its own.
	EnvBigQueryEmulator = "BIGQUERY_EMULATOR_HOST"
)

// DefaultBigQueryLocation is where the dataset lives unless configured.
const DefaultBigQueryLocation = "EU"

// Platform is the configuration every service shares.
type Platform struct {
	// Project is the GCP project id.
	Project string
	// Prefix starts every bucket name (<prefix>-raw, ...); it defaults to
	// the project id.
	Prefix string
	// BigQueryLocation is the location of the lab dataset and its jobs.
	BigQueryLocation string
	// Emulators, when set, replace the GCP endpoints.
	Emulators Emulators
}

// Emulators are the endpoints of local stand-ins for GCP services, as
// host:port (Storage also accepts http://host:port). Empty means the real
// service, reached with Application Default Credentials.
type Emulators struct {
	Storage   string
	PubSub    string
	Firestore string
	BigQuery  string
}

// Any reports whether any service is emulated.
func (e Emulators) Any() bool {
	return e.Storage != "" || e.PubSub != "" || e.Firestore != "" || e.BigQuery != ""
}

// RegisterFlags adds the platform flags to fs, with defaults taken from the
// environment through getenv. After fs.Parse, call Validate.
func (p *Platform) RegisterFlags(fs *flag.FlagSet, getenv func(string) string) {
	project := getenv(EnvProject)
	if project == "" {
		project = getenv(EnvGoogleProject)
	}
	location := getenv(EnvBigQueryLocation)
	if location == "" {
		location = DefaultBigQueryLocation
	}
	fs.StringVar(&p.Project, "project", project, "GCP project id (env "+EnvProject+" or "+EnvGoogleProject+")")
	fs.StringVar(&p.Prefix, "prefix", getenv(EnvPrefix), "bucket name prefix; default: the project id (env "+EnvPrefix+")")
	fs.StringVar(&p.BigQueryLocation, "bigquery-location", location, "BigQuery location (env "+EnvBigQueryLocation+")")
	fs.StringVar(&p.Emulators.Storage, "storage-emulator", getenv(EnvStorageEmulator), "Cloud Storage emulator endpoint (env "+EnvStorageEmulator+")")
	fs.StringVar(&p.Emulators.PubSub, "pubsub-emulator", getenv(EnvPubSubEmulator), "Pub/Sub emulator host:port (env "+EnvPubSubEmulator+")")
	fs.StringVar(&p.Emulators.Firestore, "firestore-emulator", getenv(EnvFirestoreEmu), "Firestore emulator host:port (env "+EnvFirestoreEmu+")")
	fs.StringVar(&p.Emulators.BigQuery, "bigquery-emulator", getenv(EnvBigQueryEmulator), "BigQuery emulator host:port (env "+EnvBigQueryEmulator+")")
}

// Load reads the platform configuration from args (flags only, no
// positional arguments) and the environment.
func Load(args []string, getenv func(string) string) (Platform, error) {
	fs := flag.NewFlagSet("platform", flag.ContinueOnError)
	fs.SetOutput(discard{})
	var p Platform
	p.RegisterFlags(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return Platform{}, fmt.Errorf("platform flags: %w", err)
	}
	if fs.NArg() > 0 {
		return Platform{}, fmt.Errorf("platform flags: unexpected argument %q", fs.Arg(0))
	}
	if err := p.Validate(); err != nil {
		return Platform{}, err
	}
	return p, nil
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

var (
	// GCP project ids: 6 to 30 lowercase letters, digits and hyphens,
	// starting with a letter, not ending with a hyphen.
	projectRE = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	// The prefix leaves room for the longest suffix ("-quarantine") within
	// the 63 characters of a bucket name, and avoids dots (domain buckets).
	prefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,50}[a-z0-9]$`)
	hostRE   = regexp.MustCompile(`^(http://)?[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$`)
)

// Validate fills defaults that depend on other settings (Prefix) and checks
// every setting, reporting all problems at once.
func (p *Platform) Validate() error {
	if p.Prefix == "" {
		p.Prefix = p.Project
	}
	var errs []error
	if p.Project == "" {
		errs = append(errs, fmt.Errorf("project: not set (flag -project or env %s)", EnvProject))
	} else if !projectRE.MatchString(p.Project) {
		errs = append(errs, fmt.Errorf("project %q: want 6-30 lowercase letters, digits or hyphens, starting with a letter", p.Project))
	}
	if p.Prefix != "" && !prefixRE.MatchString(p.Prefix) {
		errs = append(errs, fmt.Errorf("prefix %q: want 2-52 lowercase letters, digits or hyphens", p.Prefix))
	}
	if strings.TrimSpace(p.BigQueryLocation) == "" {
		errs = append(errs, errors.New("bigquery location: empty"))
	}
	for _, e := range []struct{ name, value string }{
		{name: "storage emulator", value: p.Emulators.Storage},
		{name: "pubsub emulator", value: p.Emulators.PubSub},
		{name: "firestore emulator", value: p.Emulators.Firestore},
		{name: "bigquery emulator", value: p.Emulators.BigQuery},
	} {
		if e.value != "" && !hostRE.MatchString(e.value) {
			errs = append(errs, fmt.Errorf("%s %q: want host:port", e.name, e.value))
		}
	}
	return errors.Join(errs...)
}

// Environ returns the environment variables that make another process (or a
// shell) see this configuration: NAME=value lines, emulators included.
func (p Platform) Environ() []string {
	env := []string{
		EnvProject + "=" + p.Project,
		EnvPrefix + "=" + p.Prefix,
		EnvBigQueryLocation + "=" + p.BigQueryLocation,
	}
	for _, e := range []struct{ name, value string }{
		{name: EnvStorageEmulator, value: p.Emulators.Storage},
		{name: EnvPubSubEmulator, value: p.Emulators.PubSub},
		{name: EnvFirestoreEmu, value: p.Emulators.Firestore},
		{name: EnvBigQueryEmulator, value: p.Emulators.BigQuery},
	} {
		if e.value != "" {
			env = append(env, e.name+"="+e.value)
		}
	}
	return env
}
