package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
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

// BuildCommands compiles the workspace's commands (package paths such as
// github.com/labplatform/platform/process/cmd/process) into dir, in
// parallel, each named after its last path element. Tests that run the
// platform's real processes use it; the test fails at once if one does not
// build.
func BuildCommands(t testing.TB, dir string, pkgs ...string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(pkgs))
	for i, pkg := range pkgs {
		wg.Go(func() {
			out, err := exec.CommandContext(t.Context(), "go", "build", "-o", filepath.Join(dir, path.Base(pkg)), pkg).CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}
