package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/labplatform/platform/testenv/robotsim"
)

// BenchmarkProcessClean runs the "process clean" binary on generated v2
// files of 100 MB and 2 GB (0.1% malformed rows) with GOMAXPROCS 1 and 2, as
// the peers were measured: input MB/s and the peak RSS of the
// process, which must not grow with the file.
//
//	go test -run '^$' -bench ProcessClean -benchtime 1x ./process/cmd/process/
func BenchmarkProcessClean(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "process")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	for _, size := range []struct {
		name  string
		bytes int64
	}{{"100MB", 100 << 20}, {"2GB", 2 << 30}} {
		in := filepath.Join(dir, size.name+".csv")
		rows := generateFile(b, in, size.bytes)
		for _, procs := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/GOMAXPROCS=%d", size.name, procs), func(b *testing.B) {
				info, err := os.Stat(in)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(info.Size())
				var maxRSS int64
				for b.Loop() {
					cmd := exec.Command(bin, "clean", "--in", in, "--out", filepath.Join(dir, "out.parquet"),
						"--quarantine", filepath.Join(dir, "q.csv"), "--report", filepath.Join(dir, "report.json"), "--tmp", dir)
					cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", procs))
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("process clean: %v\n%s", err, out)
					}
					if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
						maxRSS = max(maxRSS, ru.Maxrss*1024)
					}
				}
				b.ReportMetric(float64(maxRSS)/(1<<20), "peak-RSS-MB")
				b.ReportMetric(float64(rows)/b.Elapsed().Seconds()*float64(b.N), "rows/s")
			})
		}
		if err := os.Remove(in); err != nil {
			b.Fatal(err)
		}
	}
}

// generateFile writes a v2 file of about size bytes and returns its rows.
func generateFile(b *testing.B, path string, size int64) int {
	b.Helper()
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	rows := int(size / 90) // v2 rows average about 90 bytes
	st, err := robotsim.Generate(w, robotsim.GenerateOptions{Version: "v2", Rows: rows, Seed: 1, Malformed: 0.001, Patients: 100_000})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %s: %d rows, %d bytes in %v (GOMAXPROCS=%d)", filepath.Base(path), st.Rows, st.Bytes, time.Since(start).Round(time.Millisecond), runtime.GOMAXPROCS(0))
	return st.Rows
}
