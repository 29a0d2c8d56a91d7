package loadgen

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcCPU is the CPU time a process used during the measured window.
type ProcCPU struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// Seconds is user plus system CPU time in the window.
	Seconds float64 `json:"cpu_s"`
	// UsPerPair is Seconds per completed pair, in microseconds.
	UsPerPair float64 `json:"cpu_us_per_pair"`
	// Client marks the load tool's own process.
	Client bool `json:"client,omitempty"`
}

// ProcSet names the processes whose CPU time a run reports, besides the
// load tool's own.
type ProcSet []struct {
	name string
	pid  int
}

// ParsePIDs parses "n1=123,n2=456" (name=pid, comma-separated; "" is the
// empty set).
func ParsePIDs(s string) (ProcSet, error) {
	var ps ProcSet
	if s == "" {
		return ps, nil
	}
	for _, part := range strings.Split(s, ",") {
		name, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		pid, err := strconv.Atoi(v)
		if !ok || name == "" || err != nil || pid <= 0 {
			return nil, fmt.Errorf("%w: %q is not name=pid", ErrInvalidPIDs, part)
		}
		ps = append(ps, struct {
			name string
			pid  int
		}{name, pid})
	}
	return ps, nil
}

// cpuTimes reads each process's user+system CPU seconds (and the load
// tool's own, last); a process that cannot be read counts -1.
func (ps ProcSet) cpuTimes() []float64 {
	out := make([]float64, 0, len(ps)+1)
	for _, p := range ps {
		out = append(out, procCPU(strconv.Itoa(p.pid)))
	}
	return append(out, procCPU("self"))
}

// procCPU reads utime+stime of /proc/<pid>/stat in seconds, assuming the
// usual 100 clock ticks per second; -1 if there is no such file.
func procCPU(pid string) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return -1
	}
	// The command name is in parentheses and may hold spaces: fields
	// count from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return (utime + stime) / 100
}

// cpuReport turns two samples into the per-process figures; self names the
// load tool's own process.
func (ps ProcSet) cpuReport(self string, before, after []float64, pairs uint64) []ProcCPU {
	var out []ProcCPU
	for i := range after {
		if before[i] < 0 || after[i] < 0 {
			continue
		}
		c := ProcCPU{Name: self, PID: os.Getpid(), Seconds: after[i] - before[i], Client: i == len(ps)}
		if i < len(ps) {
			c.Name, c.PID = ps[i].name, ps[i].pid
		}
		if pairs > 0 {
			c.UsPerPair = c.Seconds / float64(pairs) * 1e6
		}
		out = append(out, c)
	}
	return out
}
