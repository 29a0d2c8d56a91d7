package checker

import (
	"fmt"
	"slices"
	"strings"
)

// MaxProblems is how many problems a Result keeps; the rest are counted in
// Stats["problems"] and summarised by one last line.
const MaxProblems = 25

// Result is the verdict of one checker.
type Result struct {
	// Name is the checker's name ("linearizable", "mutual-exclusion", ...).
	Name string
	// OK is true only if the invariant was checked and held. A check that
	// could not finish (porcupine timed out) is not OK.
	OK bool
	// Problems are human-readable findings, at most MaxProblems (+1 line
	// saying how many more there were).
	Problems []string
	// Stats counts what was checked; Stats["problems"] is the total number
	// of problems found, kept or not.
	Stats map[string]int
}

// report accumulates a Result.
type report struct {
	name     string
	problems []string
	total    int
	stats    map[string]int
}

func newReport(name string) *report {
	return &report{name: name, stats: make(map[string]int)}
}

// problemf records one violation.
func (r *report) problemf(format string, args ...any) {
	r.total++
	if len(r.problems) < MaxProblems {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

func (r *report) result() Result {
	ps := slices.Clone(r.problems)
	if r.total > len(r.problems) {
		ps = append(ps, fmt.Sprintf("... and %d more problems", r.total-len(r.problems)))
	}
	r.stats["problems"] = r.total
	return Result{Name: r.name, OK: r.total == 0, Problems: ps, Stats: r.stats}
}

// Summary renders results as a plain-text table (checker, verdict, problem
// count, stats), followed by each failed checker's problems.
func Summary(results []Result) string {
	var b strings.Builder
	nameW := len("checker")
	for _, r := range results {
		nameW = max(nameW, len(r.Name))
	}
	fmt.Fprintf(&b, "%-*s  %-6s  %8s  %s\n", nameW, "checker", "result", "problems", "stats")
	fmt.Fprintf(&b, "%s  %s  %s  %s\n", strings.Repeat("-", nameW), strings.Repeat("-", 6), strings.Repeat("-", 8), strings.Repeat("-", 5))
	allOK := true
	for _, r := range results {
		verdict := "OK"
		if !r.OK {
			verdict = "FAIL"
			allOK = false
		}
		fmt.Fprintf(&b, "%-*s  %-6s  %8d  %s\n", nameW, r.Name, verdict, r.Stats["problems"], formatStats(r.Stats))
	}
	if allOK {
		fmt.Fprintf(&b, "\nall %d checks passed\n", len(results))
	}
	for _, r := range results {
		if r.OK && len(r.Problems) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s:\n", r.Name)
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	}
	return b.String()
}

func formatStats(stats map[string]int) string {
	keys := make([]string, 0, len(stats))
	for k := range stats {
		if k != "problems" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, stats[k])
	}
	return strings.Join(parts, " ")
}
