package stack

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PIDs returns the process id of each service's current process, by
// service name; a service that ended or waits to be restarted is absent.
func (s *Stack) PIDs() map[string]int {
	out := make(map[string]int, len(s.services))
	for _, sv := range s.services {
		sv.mu.Lock()
		if sv.running && sv.cmd != nil && sv.cmd.Process != nil {
			out[sv.name] = sv.cmd.Process.Pid
		}
		sv.mu.Unlock()
	}
	return out
}

// procSample is what /proc says about one process at one moment.
type procSample struct {
	// CPU is user plus system time, in seconds.
	CPU float64
	// RSS is the resident set now; HWM its peak over the process's life
	// (VmHWM); both in bytes.
	RSS, HWM int64
}

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat: 100 on
// every Linux architecture Go supports (sysconf(_SC_CLK_TCK) needs cgo).
const clockTicks = 100

// readProc reads /proc/<pid>/stat and /proc/<pid>/status; pid "self" is
// the calling process.
func readProc(pid string) (procSample, error) {
	var s procSample
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return s, fmt.Errorf("proc %s: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields after it start at the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("proc %s: stat without a command name", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return s, fmt.Errorf("proc %s: stat has %d fields", pid, len(f)+2)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("proc %s: stat times %q %q", pid, f[11], f[12])
	}
	s.CPU = float64(utime+stime) / clockTicks
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return s, fmt.Errorf("proc %s: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return s, fmt.Errorf("proc %s: %s %q", pid, k, v)
		}
		if k == "VmRSS" {
			s.RSS = kb << 10
		} else {
			s.HWM = kb << 10
		}
	}
	return s, nil
}

// ProcUsage is the CPU time and peak memory of one service over a run,
// summed over its processes when it was restarted.
type ProcUsage struct {
	// Name is the service's name, or EmulatorsProcess for the process running
	// the emulators and the harness (labstack, or the test binary).
	Name string `json:"name"`
	// CPUSeconds is user plus system time spent during the run.
	CPUSeconds float64 `json:"cpu_seconds"`
	// PeakRSS is the largest resident set seen, in bytes: the processes'
	// own peak (VmHWM) for services, the largest sample for EmulatorsProcess,
	// whose process outlives the run.
	PeakRSS int64 `json:"peak_rss_bytes"`
	// Processes counts the distinct processes seen (restarts add one).
	Processes int `json:"processes"`
}

// EmulatorsProcess names the usage of the process that runs the emulators.
const EmulatorsProcess = "emulators"

// usageMeter samples the services' processes and the calling process.
type usageMeter struct {
	s     *Stack
	order []string
	// cpu is the last CPU time read per service and pid.
	cpu   map[string]map[int]float64
	peak  map[string]int64
	self0 float64
	self  ProcUsage
}

func newUsageMeter(s *Stack) (*usageMeter, error) {
	self, err := readProc("self")
	if err != nil {
		return nil, err
	}
	m := &usageMeter{s: s, cpu: map[string]map[int]float64{}, peak: map[string]int64{}, self0: self.CPU,
		self: ProcUsage{Name: EmulatorsProcess, PeakRSS: self.RSS, Processes: 1}}
	m.sample()
	return m, nil
}

// sample reads every current process once. A process that exits between
// PIDs and the read is skipped: its last sample stands.
func (m *usageMeter) sample() {
	for name, pid := range m.s.PIDs() {
		ps, err := readProc(strconv.Itoa(pid))
		if err != nil {
			continue
		}
		if m.cpu[name] == nil {
			m.cpu[name] = map[int]float64{}
			m.order = append(m.order, name)
		}
		m.cpu[name][pid] = ps.CPU
		m.peak[name] = max(m.peak[name], ps.HWM, ps.RSS)
	}
	if self, err := readProc("self"); err == nil {
		m.self.CPUSeconds = self.CPU - m.self0
		m.self.PeakRSS = max(m.self.PeakRSS, self.RSS)
	}
}

// usage returns what was measured, services in the order first seen, the
// emulators last.
func (m *usageMeter) usage() []ProcUsage {
	out := make([]ProcUsage, 0, len(m.order)+1)
	for _, name := range m.order {
		u := ProcUsage{Name: name, PeakRSS: m.peak[name], Processes: len(m.cpu[name])}
		for _, c := range m.cpu[name] {
			u.CPUSeconds += c
		}
		out = append(out, u)
	}
	return append(out, m.self)
}
