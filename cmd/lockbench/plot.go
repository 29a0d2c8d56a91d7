package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
)

// plotSeries is one line of a plot: a latency curve, its colour (an index
// into the palette) and its stroke.
type plotSeries struct {
	name   string
	curve  []CurvePoint
	color  int
	stroke stroke
}

// stroke is how a line is drawn: a pattern of pixels on and off.
type stroke int

const (
	solid stroke = iota
	dashed
	dotted
)

// on reports whether the line is drawn at its step-th pixel.
func (s stroke) on(step int) bool {
	switch s {
	case dashed:
		return step%14 < 8
	case dotted:
		return step%6 < 2
	}
	return true
}

// groupSeries is a line per group: its median run's curve.
func groupSeries(groups []*group) []plotSeries {
	out := make([]plotSeries, len(groups))
	for i, g := range groups {
		out[i] = plotSeries{name: g.name, curve: g.median().AcquireCurve, color: i}
	}
	return out
}

// writePlot draws each series' acquire latency by percentile, in the
// manner of an HDR histogram plot: the x axis counts nines (0 %, 90 %,
// 99 %, 99.9 %, ...), the y axis is logarithmic in milliseconds. Only the
// standard library draws it, with a 5x7 bitmap font of its own.
func writePlot(path string, series []plotSeries) error {
	const (
		width       = 1000
		left, right = 90, 60
		top         = 60
		plotH       = 490
		maxNines    = 5.0 // 99.999 %
	)
	// The legend goes under the axis label, one line per workload.
	bottom := 70 + 22*len(series) + 10
	height := top + plotH + bottom
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	paint(img, img.Bounds(), color.White)

	// The y range: whole decades around every point drawn.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, sr := range series {
		for _, p := range sr.curve {
			if p.Ms > 0 && p.Percentile < 100 {
				lo, hi = math.Min(lo, p.Ms), math.Max(hi, p.Ms)
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0.1, 10
	}
	yLo, yHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if yHi <= yLo {
		yHi = yLo + 1
	}
	plotW := width - left - right
	xOf := func(percentile float64) int {
		n := math.Min(-math.Log10(1-percentile/100), maxNines)
		return left + int(n/maxNines*float64(plotW))
	}
	yOf := func(v float64) int {
		f := (math.Log10(v) - yLo) / (yHi - yLo)
		return top + plotH - int(f*float64(plotH))
	}

	grid := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	ink := color.RGBA{0x22, 0x22, 0x22, 0xff}
	for d := yLo; d <= yHi; d++ {
		y := yOf(math.Pow(10, d))
		hline(img, left, left+plotW, y, grid)
		label := strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", math.Pow(10, d)), "0"), ".")
		drawText(img, left-8-textWidth(label, 2), y-7, label, 2, ink)
	}
	for i, label := range []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"} {
		x := left + int(float64(i)/maxNines*float64(plotW))
		vline(img, x, top, top+plotH, grid)
		drawText(img, x-textWidth(label, 2)/2, top+plotH+10, label, 2, ink)
	}
	hline(img, left, left+plotW, top+plotH, ink)
	vline(img, left, top, top+plotH, ink)
	drawText(img, left, 18, "ACQUIRE LATENCY (MS, LOG SCALE) BY PERCENTILE", 2, ink)
	drawText(img, left+plotW/2-textWidth("PERCENTILE", 2)/2, top+plotH+40, "PERCENTILE", 2, ink)

	palette := []color.RGBA{
		{0x1f, 0x77, 0xb4, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xff, 0x7f, 0x0e, 0xff},
		{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0x17, 0xbe, 0xcf, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
	}
	for i, sr := range series {
		c := palette[sr.color%len(palette)]
		var px, py int
		first := true
		step := new(int)
		for _, p := range sr.curve {
			if p.Percentile >= 100 || p.Ms <= 0 {
				continue
			}
			x, y := xOf(p.Percentile), yOf(p.Ms)
			if !first {
				line(img, px, py, x, y, c, sr.stroke, step)
			}
			px, py, first = x, y, false
		}
		ly := top + plotH + 76 + i*22
		for x := 0; x < 24; x += 2 { // the legend's sample of the stroke
			if sr.stroke.on(x) {
				paint(img, image.Rect(left+16+x, ly+4, left+18+x, ly+8), c)
			}
		}
		drawText(img, left+48, ly, strings.ToUpper(sr.name), 2, ink)
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func paint(img *image.RGBA, r image.Rectangle, c color.Color) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.Set(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.Color) {
	paint(img, image.Rect(x0, y, x1+1, y+1), c)
}
func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	paint(img, image.Rect(x, y0, x+1, y1+1), c)
}

// line draws a 2-pixel-wide line (Bresenham) with a stroke, *step
// carrying its pattern on from the last line.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color, st stroke, step *int) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	err := dx + dy
	for {
		on := st.on(*step)
		*step++
		if on {
			paint(img, image.Rect(x0, y0, x0+2, y0+2), c)
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * err; e2 >= dy {
			err += dy
			x0 += sx
		} else {
			err += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

func textWidth(s string, scale int) int { return len(s) * 6 * scale }

// drawText draws s in the 5x7 font, each font pixel scale x scale;
// letters are drawn upper case, unknown characters as blanks.
func drawText(img *image.RGBA, x, y int, s string, scale int, c color.Color) {
	for _, r := range strings.ToUpper(s) {
		rows := font5x7[r]
		for ry, bits := range rows {
			for rx := range 5 {
				if bits&(0x10>>rx) != 0 {
					paint(img, image.Rect(x+rx*scale, y+ry*scale, x+(rx+1)*scale, y+(ry+1)*scale), c)
				}
			}
		}
		x += 6 * scale
	}
}

// font5x7 holds the glyphs the plot needs, one byte per row, the leftmost
// pixel in bit 4.
var font5x7 = map[rune][7]byte{
	'0': {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E},
	'1': {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'2': {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F},
	'3': {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
	'4': {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02},
	'5': {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
	'6': {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E},
	'7': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
	'8': {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E},
	'9': {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
	'A': {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11},
	'B': {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},
	'C': {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E},
	'D': {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C},
	'E': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F},
	'F': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},
	'G': {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F},
	'H': {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	'I': {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'J': {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},
	'K': {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11},
	'L': {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
	'M': {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11},
	'N': {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
	'O': {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
	'P': {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},
	'Q': {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D},
	'R': {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
	'S': {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E},
	'T': {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
	'U': {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
	'V': {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},
	'W': {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A},
	'X': {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},
	'Y': {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04},
	'Z': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},
	' ': {},
	'.': {0, 0, 0, 0, 0, 0x0C, 0x0C},
	',': {0, 0, 0, 0, 0x0C, 0x04, 0x08},
	':': {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0},
	'%': {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03},
	'/': {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0},
	'(': {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02},
	')': {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
	'-': {0, 0, 0, 0x1F, 0, 0, 0},
	'=': {0, 0, 0x1F, 0, 0x1F, 0, 0},
	'<': {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02},
	'>': {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08},
	'+': {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0},
}
