package history

import (
	"fmt"
	"strings"
)

// Fault is one nemesis action over a span of the run.
type Fault struct {
	// Name says what was done: "kill", "pause", "partition-majority",
	// "clock-offset", ... (the runner's names).
	Name string `json:"name"`
	// Targets are the node ids (or client names) the fault hit.
	Targets []string `json:"targets,omitempty"`
	// Start is when the fault began, ns since the run started.
	Start int64 `json:"start"`
	// End is when it was healed, ns since the run started; 0 while it was
	// never healed (it lasts to the end of the run).
	End int64 `json:"end,omitempty"`
	// Detail is free text (a partition's sides, a clock offset, ...).
	Detail string `json:"detail,omitempty"`
}

// Until returns End, or Infinity for a fault that was never healed.
func (f *Fault) Until() int64 {
	if f.End == 0 {
		return Infinity
	}
	return f.End
}

// String renders the fault as "name[n1,n2] 1.000000s..3.000000s".
func (f Fault) String() string {
	var b strings.Builder
	b.WriteString(f.Name)
	if len(f.Targets) > 0 {
		fmt.Fprintf(&b, "[%s]", strings.Join(f.Targets, ","))
	}
	fmt.Fprintf(&b, " %s..%s", FormatTime(f.Start), FormatTime(f.Until()))
	if f.Detail != "" {
		fmt.Fprintf(&b, " (%s)", f.Detail)
	}
	return b.String()
}

// Timeline is the nemesis schedule as it happened, in start order.
type Timeline []Fault

// Overlapping returns the faults active at some moment of [from, to].
func (tl Timeline) Overlapping(from, to int64) []Fault {
	var out []Fault
	for _, f := range tl {
		if f.Start <= to && f.Until() >= from {
			out = append(out, f)
		}
	}
	return out
}

// Active returns the faults active at t.
func (tl Timeline) Active(t int64) []Fault { return tl.Overlapping(t, t) }

// Describe names the faults active during [from, to], or "no fault".
func (tl Timeline) Describe(from, to int64) string {
	fs := tl.Overlapping(from, to)
	if len(fs) == 0 {
		return "no fault"
	}
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return strings.Join(parts, "; ")
}
