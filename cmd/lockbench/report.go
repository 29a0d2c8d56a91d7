package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/raftlock/raftlock/internal/loadgen"
)

// reportCmd reads the --json results of runs (one or more JSON objects per
// file) and writes a Markdown table: one row per workload, in the order
// the workloads first appear, with the median of its repeats and their
// range, and the facts of the machine. With --plot it also draws the
// acquire latency by percentile of each workload's median run as a PNG.
func reportCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lockbench report", flag.ContinueOnError)
	out := fs.String("out", "", "write the Markdown here (default: stdout)")
	plot := fs.String("plot", "", "also draw acquire latency by percentile into this PNG file")
	command := fs.String("command", "make bench", "the command that produced the results, for the report")
	title := fs.String("title", "raftlock benchmark results", "the report's heading")
	notes := fs.String("notes", "", "a Markdown file whose text is appended to the report")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	runs, err := readRunFiles(fs.Args())
	if err != nil {
		return err
	}
	groups := groupRuns(runs)
	var sb strings.Builder
	writeReport(&sb, groups, *title, *command, *plot)
	if *notes != "" {
		b, err := os.ReadFile(*notes)
		if err != nil {
			return fmt.Errorf("--notes: %w", err)
		}
		sb.WriteString("\n")
		sb.Write(b)
	}
	if *plot != "" {
		if err := writePlot(*plot, groupSeries(groups)); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
	}
	if *out == "" {
		_, err := io.WriteString(stdout, sb.String())
		return err
	}
	return os.WriteFile(*out, []byte(sb.String()), 0o644)
}

// readRunFiles reads the results of every file named; none, or files
// without results, are an error.
func readRunFiles(names []string) ([]*Result, error) {
	if len(names) == 0 {
		return nil, usagef("no result files given")
	}
	var runs []*Result
	for _, name := range names {
		rs, err := readResults(name)
		if err != nil {
			return nil, err
		}
		runs = append(runs, rs...)
	}
	if len(runs) == 0 {
		return nil, errors.New("the files hold no results")
	}
	return runs, nil
}

func readResults(name string) ([]*Result, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(f))
	var out []*Result
	for {
		var r Result
		if err := dec.Decode(&r); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, &r)
	}
}

// group is the repeats of one workload.
type group struct {
	name string
	runs []*Result
}

func groupRuns(runs []*Result) []*group {
	var groups []*group
	byName := map[string]*group{}
	for _, r := range runs {
		g := byName[r.Name]
		if g == nil {
			g = &group{name: r.Name}
			byName[r.Name] = g
			groups = append(groups, g)
		}
		g.runs = append(g.runs, r)
	}
	return groups
}

// median returns the run with the median throughput (the lower middle
// one for an even count).
func (g *group) median() *Result {
	rs := slices.Clone(g.runs)
	slices.SortFunc(rs, func(a, b *Result) int { return cmpFloat(a.PairsPerSec, b.PairsPerSec) })
	return rs[(len(rs)-1)/2]
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// medianOf is the median of f over the runs (the mean of the middle two
// for an even count).
func (g *group) medianOf(f func(*Result) float64) float64 {
	vs := make([]float64, len(g.runs))
	for i, r := range g.runs {
		vs[i] = f(r)
	}
	slices.Sort(vs)
	if n := len(vs); n%2 == 1 {
		return vs[n/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// spread formats the median of f over the runs, and the range when there
// is more than one run.
func (g *group) spread(f func(*Result) float64, format func(float64) string) string {
	med := g.medianOf(f)
	if len(g.runs) == 1 {
		return format(med)
	}
	lo, hi := f(g.runs[0]), f(g.runs[0])
	for _, r := range g.runs {
		lo, hi = math.Min(lo, f(r)), math.Max(hi, f(r))
	}
	return fmt.Sprintf("%s (%s–%s)", format(med), format(lo), format(hi))
}

func fmtCount(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtMs(v float64) string {
	switch {
	case v < 1:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func writeReport(w *strings.Builder, groups []*group, title, command, plot string) {
	first := groups[0].runs[0]
	fmt.Fprintf(w, "# %s\n\n", title)
	fmt.Fprintf(w, "Produced by `%s` on %s. Each workload ran %s; figures are the median of the runs, with their range in brackets.\n\n",
		command, first.Started.Format("2006-01-02 15:04 MST"), runsSummary(groups))
	fmt.Fprintf(w, "| workload | target | pairs/s | acquire p50 ms | acquire p90 ms | acquire p99 ms | acquire max ms | release p50 ms | CPU µs/pair: leader, follower, client | errors |\n")
	fmt.Fprintf(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, g := range groups {
		target := g.runs[0].Target
		if target == "" {
			target = "–"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", g.name, target,
			g.spread(func(r *Result) float64 { return r.PairsPerSec }, fmtCount),
			g.spread(func(r *Result) float64 { return r.Acquire.P50 }, fmtMs),
			g.spread(func(r *Result) float64 { return r.Acquire.P90 }, fmtMs),
			g.spread(func(r *Result) float64 { return r.Acquire.P99 }, fmtMs),
			g.spread(func(r *Result) float64 { return r.Acquire.Max }, fmtMs),
			g.spread(func(r *Result) float64 { return r.Release.P50 }, fmtMs),
			cpuCell(g), errorsCell(g))
	}
	if plot != "" {
		fmt.Fprintf(w, "\n![acquire latency by percentile](%s)\n", plotRef(plot))
	}
	writeTrace(w, groups)
	fmt.Fprintf(w, "\n## Runs\n\n")
	fmt.Fprintf(w, "| workload | run | started (UTC) | callers | keys | protocol | pairs/s | acquire p50/p99 ms | load avg before → after |\n")
	fmt.Fprintf(w, "| --- | ---: | --- | ---: | --- | --- | ---: | --- | --- |\n")
	for _, g := range groups {
		for i, r := range g.runs {
			keys := "own"
			if r.Keys > 0 {
				keys = fmt.Sprintf("%d shared, wait %s", r.Keys, r.Wait)
			}
			fmt.Fprintf(w, "| %s | %d | %s | %d | %s | %s | %s | %s / %s | %s → %s |\n", g.name, i+1, r.Started.Format("15:04:05"),
				r.Callers, keys, r.Protocol, fmtCount(r.PairsPerSec), fmtMs(r.Acquire.P50), fmtMs(r.Acquire.P99),
				fmtLoad(r.LoadBefore), fmtLoad(r.LoadAfter))
		}
	}
	fmt.Fprintf(w, "\n## Machine\n\n")
	for _, line := range machineFacts() {
		fmt.Fprintf(w, "- %s\n", line)
	}
	fmt.Fprintf(w, "- Everything on one machine: the three nodes and lockbench share the CPUs above, over loopback.\n")
	fmt.Fprintf(w, "- Measured: each run warms up for %.0fs, then measures for %.0fs; a pair is one Acquire and one Lock.Release (with its fencing token) through the Go client.\n",
		first.WarmupSec, first.DurationSec)
}

func runsSummary(groups []*group) string {
	n := len(groups[0].runs)
	for _, g := range groups {
		if len(g.runs) != n {
			return "one or more times"
		}
	}
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// plotRef is how the Markdown refers to the plot: its base name, as the
// report and the plot are written side by side.
func plotRef(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

func errorsCell(g *group) string {
	total := map[string]uint64{}
	var pairs uint64
	for _, r := range g.runs {
		pairs += r.Pairs
		for k, n := range r.Errors {
			total[k] += n
		}
	}
	if len(total) == 0 {
		return "0"
	}
	kinds := make([]string, 0, len(total))
	for k := range total {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, total[k])
	}
	return fmt.Sprintf("%s (of %d pairs)", strings.Join(parts, ", "), pairs)
}

// cpuCell gives the median CPU time per pair of the leader, of a follower
// (the mean of the followers) and of the client, when the runs measured it.
func cpuCell(g *group) string {
	var leader, follower, client []float64
	for _, r := range g.runs {
		var fs []float64
		for _, c := range r.CPU {
			switch {
			case c.Client || c.Name == "lockbench":
				client = append(client, c.UsPerPair)
			case strings.HasSuffix(c.Name, "(leader)"):
				leader = append(leader, c.UsPerPair)
			default:
				fs = append(fs, c.UsPerPair)
			}
		}
		if len(fs) > 0 {
			var sum float64
			for _, f := range fs {
				sum += f
			}
			follower = append(follower, sum/float64(len(fs)))
		}
	}
	if len(leader) == 0 && len(client) == 0 {
		return "–"
	}
	med := func(vs []float64) string {
		if len(vs) == 0 {
			return "?"
		}
		vs = slices.Clone(vs)
		slices.Sort(vs)
		return fmtCount(vs[(len(vs)-1)/2])
	}
	return med(leader) + ", " + med(follower) + ", " + med(client)
}

func fmtLoad(l []float64) string {
	if len(l) == 0 {
		return "?"
	}
	return fmt.Sprintf("%.2f", l[0])
}

// machineFacts describes this machine from /proc, where there is one.
func machineFacts() []string {
	var facts []string
	model, cores := cpuInfo()
	if model != "" {
		facts = append(facts, fmt.Sprintf("CPU: %s, %d logical CPUs in /proc/cpuinfo", model, cores))
	}
	facts = append(facts, fmt.Sprintf("nproc (CPUs this process may use): %d", runtime.NumCPU()))
	if mem := memTotal(); mem != "" {
		facts = append(facts, "memory: "+mem)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		facts = append(facts, "kernel: Linux "+strings.TrimSpace(string(b)))
	}
	facts = append(facts, "Go: "+runtime.Version())
	if l := loadgen.LoadAvg(); l != nil {
		facts = append(facts, fmt.Sprintf("load average when the report was written: %.2f %.2f %.2f", l[0], l[1], l[2]))
	}
	facts = append(facts, "report written "+time.Now().UTC().Format("2006-01-02 15:04 MST"))
	return facts
}

func cpuInfo() (model string, n int) {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "", 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name":
			if model == "" {
				model = strings.TrimSpace(v)
			}
		case "processor":
			n++
		}
	}
	return model, n
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(v)
			if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
				return fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	return ""
}
