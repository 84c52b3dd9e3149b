package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/names"
)

// The tree both tools ship: 100 robot folders of 4 exports each, plus one
// very large export, to show that memory does not follow file size.
const (
	benchRobots     = 100
	benchFiles      = 4
	benchFileSize   = 1 << 20
	benchLargeBytes = 512 << 20
)

// BenchmarkIngestVsRclone ships the same tree to the same GCS emulator with
// `ingest once` and with `rclone copy`, each as its own process with four
// uploads at a time, and reports each one's throughput and peak RSS.
func BenchmarkIngestVsRclone(b *testing.B) {
	rclone, err := exec.LookPath("rclone")
	if err != nil {
		b.Skip("rclone is not installed; the comparison needs it (Debian: apt-get install rclone; `make bench` installs it)")
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "ingest")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	root := filepath.Join(dir, "exports")
	files, total := writeBenchTree(b, root)
	old := time.Now().Add(-time.Hour) // older than any stability window
	filepath.Walk(root, func(path string, _ os.FileInfo, _ error) error { return os.Chtimes(path, old, old) })

	b.ResetTimer()
	for i := range b.N {
		p, err := env.NewPlatform(b.Context(), fmt.Sprintf("bench-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(bin, "once", "-root", root, "-checkpoint", filepath.Join(dir, fmt.Sprintf("ckpt-%d.db", i)),
			"-stability", "1s", "-concurrency", "4", "-log-level", "error")
		cmd.Env = p.Environ()
		ingestTime, ingestRSS := runMeasured(b, cmd)

		endpoint := gcp.StorageEndpoint(p.Emulators.Storage)
		cmd = exec.Command(rclone, "copy", "--transfers", "4", "--no-check-dest", root, "emu:"+names.RawBucket(p.Prefix)+"/rclone")
		cmd.Env = append(os.Environ(), "RCLONE_CONFIG_EMU_TYPE=google cloud storage",
			"RCLONE_CONFIG_EMU_ANONYMOUS=true", "RCLONE_CONFIG_EMU_ENDPOINT="+endpoint, "RCLONE_CONFIG=/dev/null")
		rcloneTime, rcloneRSS := runMeasured(b, cmd)

		b.StopTimer()
		shipped, rcloned := countObjects(b, p.Emulators.Storage, names.RawBucket(p.Prefix))
		if shipped != files || rcloned != files {
			b.Fatalf("ingest shipped %d objects and rclone copied %d, want %d each", shipped, rcloned, files)
		}
		b.StartTimer()

		mb := float64(total) / 1e6
		b.ReportMetric(mb/ingestTime.Seconds(), "ingest_MB/s")
		b.ReportMetric(float64(files)/ingestTime.Seconds(), "ingest_files/s")
		b.ReportMetric(float64(ingestRSS)/1024, "ingest_peak_RSS_MB")
		b.ReportMetric(mb/rcloneTime.Seconds(), "rclone_MB/s")
		b.ReportMetric(float64(files)/rcloneTime.Seconds(), "rclone_files/s")
		b.ReportMetric(float64(rcloneRSS)/1024, "rclone_peak_RSS_MB")
	}
}

func writeBenchTree(b *testing.B, root string) (files int, bytesTotal int64) {
	b.Helper()
	line := []byte("S0000001,P0000001,2345-7,Glucose,99.1,mg/dL,70,99,2026-11-21T08:30:00Z\n")
	write := func(path string, size int) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		chunk := bytes.Repeat(line, 1<<16/len(line))
		for n := 0; n < size; n += len(chunk) {
			if _, err := f.Write(chunk); err != nil {
				b.Fatal(err)
			}
			// each file differs, so content dedupe does not skip any
			if _, err := fmt.Fprintf(f, "S%d,%s,%d\n", n, path, size); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		st, _ := os.Stat(path)
		files++
		bytesTotal += st.Size()
	}
	for r := 1; r <= benchRobots; r++ {
		for f := range benchFiles {
			write(filepath.Join(root, fmt.Sprintf("R%03d", r), fmt.Sprintf("R%03d_20261121T%02d0000_%d.csv", r, f, f)), benchFileSize)
		}
	}
	write(filepath.Join(root, "R001", "R001_20261121T230000_9.csv"), benchLargeBytes)
	return files, bytesTotal
}

// runMeasured runs cmd and returns its wall time and peak RSS in KiB. The
// peak is the child's own VmHWM, polled from /proc while it runs: rusage's
// ru_maxrss would not do, because on Linux it keeps the high-water mark of
// the address space the child had before exec, which is this (large) test
// process's.
func runMeasured(b *testing.B, cmd *exec.Cmd) (time.Duration, int64) {
	b.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatalf("%s: %v", cmd.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	var peak int64
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				b.Fatalf("%s: %v\n%s", cmd.Path, err, out.String())
			}
			if peak == 0 {
				b.Fatalf("%s: no VmHWM read from %s", cmd.Path, status)
			}
			return time.Since(start), peak
		case <-tick.C:
			if hwm := vmHWM(status); hwm > peak {
				peak = hwm
			}
		}
	}
}

// vmHWM returns the VmHWM line of a /proc status file in KiB, or 0.
func vmHWM(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kib)
			return kib
		}
	}
	return 0
}

func countObjects(b *testing.B, emulator, bucket string) (ingest, rclone int) {
	b.Helper()
	p := env.Platform
	p.Emulators.Storage = emulator
	c, err := gcp.NewStorage(b.Context(), p)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	it := c.Bucket(bucket).Objects(b.Context(), &storage.Query{})
	for {
		a, err := it.Next()
		if err == iterator.Done {
			return ingest, rclone
		}
		if err != nil {
			b.Fatal(err)
		}
		if strings.HasPrefix(a.Name, "rclone/") {
			rclone++
		} else {
			ingest++
		}
	}
}
