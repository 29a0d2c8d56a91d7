package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// compareCmd reads the results of several drivers (lockbench run,
// etcdbench, any tool that prints loadgen Results) over the same workloads
// and writes the side-by-side report of make compare: per workload and
// driver the median of the rounds, and the ratios to the baseline driver
// round by round; how each driver ran; every run; the machine. With --plot
// it also draws each driver's median acquire curve per workload (the
// baseline dashed, the first other driver solid, others dotted). Every workload must have at least one run of every
// driver.
func compareCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lockbench compare", flag.ContinueOnError)
	out := fs.String("out", "", "write the Markdown here (default: stdout)")
	plot := fs.String("plot", "", "also draw acquire latency by percentile into this PNG file")
	command := fs.String("command", "make compare", "the command that produced the results, for the report")
	baseline := fs.String("baseline", "etcd", "the driver the ratios divide by")
	drivers := fs.String("drivers", "", "the drivers in the order of the report, space- or comma-separated (default: as they first appear)")
	versus := fs.String("versus", "", "also set drivers against drivers other than the baseline: d=other,... (e.g. js=raftlock: the JavaScript provider against the Go client)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	pairs, err := parseVersus(*versus)
	if err != nil {
		return err
	}
	runs, err := readRunFiles(fs.Args())
	if err != nil {
		return err
	}
	cmp, err := newComparison(runs, strings.FieldsFunc(*drivers, func(r rune) bool { return r == ' ' || r == ',' }), *baseline)
	if err != nil {
		return err
	}
	for _, p := range pairs {
		for _, d := range p {
			if !slices.Contains(cmp.drivers, d) {
				return usagef("--versus: %q is not among the drivers %v", d, cmp.drivers)
			}
		}
	}
	cmp.versus = pairs
	var sb strings.Builder
	cmp.write(&sb, *command, *plot)
	if *plot != "" {
		if err := writePlot(*plot, cmp.series()); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
	}
	if *out == "" {
		_, err := io.WriteString(stdout, sb.String())
		return err
	}
	return os.WriteFile(*out, []byte(sb.String()), 0o644)
}

// comparison is the runs by workload, then by driver.
type comparison struct {
	workloads []string
	drivers   []string
	baseline  string
	cells     map[[2]string]*group // {workload, driver}
	all       []*Result
	versus    [][2]string // {driver, other}: headlines against a driver other than the baseline
}

// parseVersus reads --versus: "d=other,...".
func parseVersus(s string) ([][2]string, error) {
	var out [][2]string
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
		d, other, ok := strings.Cut(part, "=")
		if !ok || d == "" || other == "" || d == other {
			return nil, usagef("--versus %q: want driver=other driver", part)
		}
		out = append(out, [2]string{d, other})
	}
	return out, nil
}

// driverOf is a run's driver; results from before drivers existed are
// raftlock's.
func driverOf(r *Result) string {
	if r.Driver == "" {
		return "raftlock"
	}
	return r.Driver
}

func newComparison(runs []*Result, drivers []string, baseline string) (*comparison, error) {
	c := &comparison{baseline: baseline, cells: map[[2]string]*group{}, all: runs, drivers: drivers}
	for _, r := range runs {
		d := driverOf(r)
		if !slices.Contains(c.workloads, r.Name) {
			c.workloads = append(c.workloads, r.Name)
		}
		if len(drivers) == 0 && !slices.Contains(c.drivers, d) {
			c.drivers = append(c.drivers, d)
		}
		k := [2]string{r.Name, d}
		if c.cells[k] == nil {
			c.cells[k] = &group{name: r.Name + ": " + d}
		}
		c.cells[k].runs = append(c.cells[k].runs, r)
	}
	if !slices.Contains(c.drivers, baseline) {
		return nil, usagef("--baseline %q is not among the drivers %v", baseline, c.drivers)
	}
	for _, w := range c.workloads {
		for _, d := range c.drivers {
			if c.cells[[2]string{w, d}] == nil {
				return nil, fmt.Errorf("workload %q has no run of driver %q", w, d)
			}
		}
	}
	return c, nil
}

func (c *comparison) cell(w, d string) *group { return c.cells[[2]string{w, d}] }

// ratio formats, over the rounds, f of the driver's i-th run divided by f
// of the baseline's i-th run: the median and the range.
func (c *comparison) ratio(w, d string, f func(*Result) float64) string {
	return c.ratioTo(w, d, c.baseline, f)
}

// ratioTo is ratio against driver b.
func (c *comparison) ratioTo(w, d, b string, f func(*Result) float64) string {
	return c.perRound(w, d, b, func(x, y float64) (float64, bool) { return x / y, y > 0 }, f, func(v float64) string { return fmt.Sprintf("%.2f", v) })
}

// perRound formats, over the rounds, op(f of d's i-th run, f of b's i-th
// run): the median and the range; op says when a round has no value.
func (c *comparison) perRound(w, d, b string, op func(x, y float64) (float64, bool), f func(*Result) float64, format func(float64) string) string {
	a, bs := c.cell(w, d).runs, c.cell(w, b).runs
	n := min(len(a), len(bs))
	rs := make([]*Result, 0, n)
	for i := range n {
		if v, ok := op(f(a[i]), f(bs[i])); ok {
			rs = append(rs, &Result{PairsPerSec: v})
		}
	}
	if len(rs) == 0 {
		return "–"
	}
	g := &group{runs: rs}
	return g.spread(func(r *Result) float64 { return r.PairsPerSec }, format)
}

func (c *comparison) write(w *strings.Builder, command, plot string) {
	first, last := c.all[0].Started, c.all[0].Started
	for _, r := range c.all {
		first, last = minTime(first, r.Started), maxTime(last, r.Started)
	}
	rounds := len(c.cell(c.workloads[0], c.baseline).runs)
	names := strings.Join(c.drivers, " and ")
	if n := len(c.drivers); n > 2 {
		names = strings.Join(c.drivers[:n-1], ", ") + " and " + c.drivers[n-1]
	}
	fmt.Fprintf(w, "# %s side by side\n\n", names)
	fmt.Fprintf(w, "Produced by `%s` on %s, runs started %s–%s UTC. %d round(s): in each, every workload ran once per driver, "+
		"the drivers' order flipping from round to round; each run warmed up for %.0fs and measured for %.0fs. "+
		"Figures are the median of the rounds with their range in brackets; a ratio is the median over the rounds of "+
		"(driver ÷ %s) within the round, so drift in the machine's load cancels out.\n\n",
		command, first.Format("2006-01-02"), first.Format("15:04"), last.Format("15:04"), rounds,
		c.all[0].WarmupSec, c.all[0].DurationSec, c.baseline)
	for _, d := range c.drivers {
		// A driver set against the baseline by --versus gets that (longer) table instead.
		if d != c.baseline && !slices.Contains(c.versus, [2]string{d, c.baseline}) {
			c.headline(w, d)
		}
	}
	for _, p := range c.versus {
		c.headlineVersus(w, p[0], p[1])
	}
	fmt.Fprintf(w, "## Every driver\n\n")
	fmt.Fprintf(w, "| workload | driver | pairs/s | pairs/s ÷ %s | acquire p50 ms | p50 ÷ %s | acquire p99 ms | p99 ÷ %s | release p50 ms | server CPU µs/pair: all members (leader) | errors |\n",
		c.baseline, c.baseline, c.baseline)
	fmt.Fprintf(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, wl := range c.workloads {
		for _, d := range c.drivers {
			g := c.cell(wl, d)
			rPairs, rP50, rP99 := "1", "1", "1"
			if d != c.baseline {
				rPairs = c.ratio(wl, d, func(r *Result) float64 { return r.PairsPerSec })
				rP50 = c.ratio(wl, d, func(r *Result) float64 { return r.Acquire.P50 })
				rP99 = c.ratio(wl, d, func(r *Result) float64 { return r.Acquire.P99 })
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", wl, d,
				g.spread(func(r *Result) float64 { return r.PairsPerSec }, fmtCount), rPairs,
				g.spread(func(r *Result) float64 { return r.Acquire.P50 }, fmtMs), rP50,
				g.spread(func(r *Result) float64 { return r.Acquire.P99 }, fmtMs), rP99,
				g.spread(func(r *Result) float64 { return r.Release.P50 }, fmtMs),
				serverCPUCell(g), errorsCell(g))
		}
	}
	if plot != "" {
		fmt.Fprintf(w, "\n![acquire latency by percentile: one colour per workload; %s dashed, %s solid, others dotted](%s)\n",
			c.baseline, c.lead(), plotRef(plot))
	}

	fmt.Fprintf(w, "\n## The drivers, exactly as run\n\n")
	for _, d := range c.drivers {
		r := c.cell(c.workloads[0], d).runs[0]
		fmt.Fprintf(w, "- **%s**: %s.", d, r.Recipe)
		if r.ServerVersion != "" {
			fmt.Fprintf(w, " Server version %s.", r.ServerVersion)
		}
		fmt.Fprintf(w, " Protocol %s; %d endpoints; lock time to live %s; wait per workload: %s.\n",
			r.Protocol, len(r.Endpoints), r.Expire, c.waits(d))
	}
	fmt.Fprintf(w, "- Every caller loops acquire -> release on its own key, or with the other callers on one shared key; "+
		"a pair counts when its release completes inside the measured window. Both tools run the same loop and measure "+
		"it the same way (internal/loadgen: log-linear histograms within 1.6 %%).\n")

	fmt.Fprintf(w, "\n## Runs\n\n")
	fmt.Fprintf(w, "| round | workload | driver | started (UTC) | pairs/s | acquire p50 / p99 ms | release p50 ms | leader | load avg before → after |\n")
	fmt.Fprintf(w, "| ---: | --- | --- | --- | ---: | --- | ---: | --- | --- |\n")
	for round := range rounds {
		var rows []*Result // this round's runs, in the order they ran
		for _, wl := range c.workloads {
			for _, d := range c.drivers {
				if rs := c.cell(wl, d).runs; round < len(rs) {
					rows = append(rows, rs[round])
				}
			}
		}
		slices.SortStableFunc(rows, func(a, b *Result) int { return a.Started.Compare(b.Started) })
		for _, r := range rows {
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s / %s | %s | %s | %s → %s |\n", round+1, r.Name, driverOf(r),
				r.Started.Format("15:04:05"), fmtCount(r.PairsPerSec), fmtMs(r.Acquire.P50), fmtMs(r.Acquire.P99),
				fmtMs(r.Release.P50), orDash(r.Leader), fmtLoad(r.LoadBefore), fmtLoad(r.LoadAfter))
		}
	}
	fmt.Fprintf(w, "\n## Machine\n\n")
	for _, line := range machineFacts() {
		fmt.Fprintf(w, "- %s\n", line)
	}
	fmt.Fprintf(w, "- Everything on one machine over loopback: both clusters (3 members each) and the load tools share the CPUs above "+
		"and one disk; both clusters stay up for the whole comparison, the one not measured idling.\n")
}

// headline is the short table of one driver against the baseline:
// medians, and the ratio of pairs/s with its range over the rounds.
func (c *comparison) headline(w *strings.Builder, d string) {
	b := c.baseline
	fmt.Fprintf(w, "## %s against %s\n\n", d, b)
	fmt.Fprintf(w, "| workload | %s pairs/s | %s pairs/s | ratio | acquire p50 ms %s / %s | acquire p99 ms %s / %s | target |\n", d, b, d, b, d, b)
	fmt.Fprintf(w, "| --- | ---: | ---: | ---: | --- | --- | --- |\n")
	for _, wl := range c.workloads {
		g, base := c.cell(wl, d), c.cell(wl, b)
		median := func(g *group, f func(*Result) float64, format func(float64) string) string {
			return format(g.medianOf(f))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s / %s | %s / %s | %s |\n", wl,
			median(g, func(r *Result) float64 { return r.PairsPerSec }, fmtCount),
			median(base, func(r *Result) float64 { return r.PairsPerSec }, fmtCount),
			c.ratio(wl, d, func(r *Result) float64 { return r.PairsPerSec }),
			median(g, func(r *Result) float64 { return r.Acquire.P50 }, fmtMs), median(base, func(r *Result) float64 { return r.Acquire.P50 }, fmtMs),
			median(g, func(r *Result) float64 { return r.Acquire.P99 }, fmtMs), median(base, func(r *Result) float64 { return r.Acquire.P99 }, fmtMs),
			orDash(g.runs[0].Target))
	}
	fmt.Fprintf(w, "\n")
}

// headlineVersus is the short table of driver d against driver b (not the
// baseline): the ratio of pairs/s and the difference of acquire p50, both
// taken within each round, then the median and range over the rounds.
func (c *comparison) headlineVersus(w *strings.Builder, d, b string) {
	fmt.Fprintf(w, "## %s against %s\n\n", d, b)
	fmt.Fprintf(w, "| workload | %s pairs/s | %s pairs/s | ratio | acquire p50 ms %s / %s | p50 − %s ms | acquire p99 ms %s / %s | target |\n", d, b, d, b, b, d, b)
	fmt.Fprintf(w, "| --- | ---: | ---: | ---: | --- | ---: | --- | --- |\n")
	pairs := func(r *Result) float64 { return r.PairsPerSec }
	p50 := func(r *Result) float64 { return r.Acquire.P50 }
	p99 := func(r *Result) float64 { return r.Acquire.P99 }
	diff := func(x, y float64) (float64, bool) { return x - y, true }
	for _, wl := range c.workloads {
		g, base := c.cell(wl, d), c.cell(wl, b)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s / %s | %s | %s / %s | %s |\n", wl,
			fmtCount(g.medianOf(pairs)), fmtCount(base.medianOf(pairs)), c.ratioTo(wl, d, b, pairs),
			fmtMs(g.medianOf(p50)), fmtMs(base.medianOf(p50)),
			c.perRound(wl, d, b, diff, p50, func(v float64) string { return fmt.Sprintf("%+.2f", v) }),
			fmtMs(g.medianOf(p99)), fmtMs(base.medianOf(p99)), orDash(g.runs[0].Target))
	}
	fmt.Fprintf(w, "\n")
}

// waits lists the wait timeouts a driver's runs used, per workload.
func (c *comparison) waits(d string) string {
	parts := make([]string, len(c.workloads))
	for i, wl := range c.workloads {
		parts[i] = fmt.Sprintf("%s %s", wl, c.cell(wl, d).runs[0].Wait)
	}
	return strings.Join(parts, "; ")
}

// lead is the driver the plot draws solid: the first that is not the
// baseline.
func (c *comparison) lead() string {
	for _, d := range c.drivers {
		if d != c.baseline {
			return d
		}
	}
	return c.baseline
}

// series is the plot's lines: one colour per workload; the baseline
// dashed, the first other driver solid, any other dotted.
func (c *comparison) series() []plotSeries {
	var out []plotSeries
	for i, wl := range c.workloads {
		for _, d := range c.drivers {
			g := c.cell(wl, d)
			st := dotted
			switch d {
			case c.baseline:
				st = dashed
			case c.lead():
				st = solid
			}
			out = append(out, plotSeries{name: g.name, curve: g.median().AcquireCurve, color: i, stroke: st})
		}
	}
	return out
}

// serverCPUCell is the median CPU time per pair of all the service's
// processes together, and of its leader.
func serverCPUCell(g *group) string {
	var total, leader []float64
	for _, r := range g.runs {
		var sum, lead float64
		var n int
		for _, p := range r.CPU {
			if p.Client || p.Name == "lockbench" {
				continue
			}
			sum += p.UsPerPair
			n++
			if strings.HasSuffix(p.Name, "(leader)") {
				lead = p.UsPerPair
			}
		}
		if n > 0 {
			total, leader = append(total, sum), append(leader, lead)
		}
	}
	if len(total) == 0 {
		return "–"
	}
	med := func(vs []float64) string {
		slices.Sort(vs)
		return fmtCount(vs[(len(vs)-1)/2])
	}
	return fmt.Sprintf("%s (%s)", med(total), med(leader))
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
