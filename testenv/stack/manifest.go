package stack

import (
	"encoding/json"
	"fmt"
	"os"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/labplatform/platform/testenv/robotsim"
)

// written sums the robot simulator's manifest.
type written struct {
	files, rows, malformed int
}

// readManifest reads the manifest the simulator wrote when it stopped.
func readManifest(path string) (written, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return written{}, fmt.Errorf("robot manifest: %w", err)
	}
	var m robotsim.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return written{}, fmt.Errorf("robot manifest %s: %w", path, err)
	}
	var w written
	for _, f := range m.Files {
		w.files++
		w.rows += f.Rows
		w.malformed += f.Malformed
	}
	return w, nil
}

// notFound reports whether a Firestore error is NotFound.
func notFound(err error) bool {
	return status.Code(err) == codes.NotFound
}
