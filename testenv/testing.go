package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/labplatform/platform/contracts/config"
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

// NewTestClients builds the clients of p (NewClients); they are closed when
// the test ends. The test fails at once if one cannot be built.
func NewTestClients(t testing.TB, p config.Platform) *Clients {
	t.Helper()
	c, err := NewClients(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close clients: %v", err)
		}
	})
	return c
}
