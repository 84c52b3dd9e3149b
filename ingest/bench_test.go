package ingest_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/ingest"
	"github.com/labplatform/platform/ingest/internal/rawcheck"
)

// BenchmarkShipTree ships 100 robot folders of 4 files of 1-2 MB each
// (about 600 MB) to the Cloud Storage emulator, with the rename convention
// (every file complete at once) and 8 uploads at a time. Each iteration
// starts from an empty checkpoint and an empty bucket.
func BenchmarkShipTree(b *testing.B) {
	const robots, perRobot = 100, 4
	root := filepath.Join(b.TempDir(), "exports")
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	var total int64
	for r := range robots {
		dir := filepath.Join(root, fmt.Sprintf("R%03d", r))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range perRobot {
			data := make([]byte, 1<<20+rng.IntN(1<<20))
			for i := range data {
				data[i] = 'a' + byte(rng.IntN(26))
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("export-%d.csv", f)), data, 0o644); err != nil {
				b.Fatal(err)
			}
			total += int64(len(data))
		}
	}
	p := env.NewTestPlatform(b)
	client, err := gcp.NewStorage(b.Context(), p)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	bucket := client.Bucket(names.RawBucket(p.Prefix))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		ckpt, err := ingest.OpenCheckpoint(filepath.Join(b.TempDir(), "ckpt.db"), ingest.CheckpointOptions{})
		if err != nil {
			b.Fatal(err)
		}
		sh := ingest.NewShipper(root, ingest.OS{}, bucket, ckpt, ingest.Options{Convention: ingest.Rename, Concurrency: 8})
		b.StartTimer()
		res, err := sh.Pass(b.Context())
		b.StopTimer()
		if err != nil || res.Shipped+res.Deduplicated != robots*perRobot || res.Failed != 0 {
			b.Fatalf("pass: %+v %v", res, err)
		}
		ckpt.Close()
		for name := range rawcheck.Objects(b, b.Context(), bucket) {
			if err := bucket.Object(name).Delete(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	secs := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(total)/1e6/secs, "MB/s")
	b.ReportMetric(robots*perRobot/secs, "files/s")
}
