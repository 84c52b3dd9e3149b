package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
)

// Run starts an Env for a test binary, stores it in *env, runs the tests and
// closes the Env. It returns the exit code for TestMain:
//
//	var env *testenv.Env
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, testenv.Options{})) }
func Run(m *testing.M, env **Env, opts Options) int {
	e, err := Start(context.Background(), opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: start the local GCP: %v\n", err)
		return 2
	}
	*env = e
	code := m.Run()
	if err := e.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: close: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// NewTestPlatform provisions a platform for one test (see NewPlatform); the
// test fails at once if that is not possible.
func (e *Env) NewTestPlatform(t testing.TB) config.Platform {
	t.Helper()
	p, err := e.NewPlatform(t.Context(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Clients are the official clients of one platform, built by contracts/gcp
// exactly as services build them.
type Clients struct {
	Storage   *storage.Client
	PubSub    *pubsub.Client
	Firestore *firestore.Client
	BigQuery  *bigquery.Client
}

// NewTestClients builds the clients of p; they are closed when the test
// ends. The test fails at once if one cannot be built.
func NewTestClients(t testing.TB, p config.Platform) *Clients {
	t.Helper()
	ctx := t.Context()
	var c Clients
	var err error
	if c.Storage, err = gcp.NewStorage(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Storage.Close() })
	if c.PubSub, err = gcp.NewPubSub(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.PubSub.Close() })
	if c.Firestore, err = gcp.NewFirestore(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Firestore.Close() })
	if c.BigQuery, err = gcp.NewBigQuery(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.BigQuery.Close() })
	return &c
}
