package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Charts are SVG files written next to the JSON results with gonum/plot,
// so that GitHub renders them in the docs. A chart's file name is the
// results file's name without ".json", a dash and the chart's name.

// chartPath returns the path of the chart called name for jsonFile.
func chartPath(jsonFile, name string) string {
	return strings.TrimSuffix(jsonFile, ".json") + "-" + name + ".svg"
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeJSONFile writes v as indented JSON to path.
func writeJSONFile(path string, v any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeJSON(f, v); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// libColor gives every library the same color in every chart: colibri a
// strong blue, its variant a lighter one, the floor grey, the peers from
// gonum's soft palette.
func libColor(lib string, peerIndex int) color.Color {
	switch kindOf(lib) {
	case colibriLib:
		return color.RGBA{R: 0x1f, G: 0x5f, B: 0xbf, A: 0xff}
	case variantLib:
		return color.RGBA{R: 0x7f, G: 0xaf, B: 0xef, A: 0xff}
	case floorLib:
		return color.RGBA{R: 0x99, G: 0x99, B: 0x99, A: 0xff}
	}
	return plotutil.SoftColors[peerIndex%len(plotutil.SoftColors)]
}

// writeRunCharts writes the charts of a comparison run beside jsonFile and
// returns their paths: the grouped bars of every figure relative to the
// best peer's, and the latency percentiles when the latency scenario ran.
func writeRunCharts(jsonFile string, rep *report) ([]string, error) {
	var out []string
	bars := chartPath(jsonFile, "comparison")
	if err := comparisonChart(rep, bars); err != nil {
		return nil, err
	}
	out = append(out, bars)
	lat := chartPath(jsonFile, "latency")
	ok, err := latencyChart(rep, lat)
	if err != nil {
		return nil, err
	}
	if ok {
		out = append(out, lat)
	}
	return out, nil
}

// comparisonChart draws one group of horizontal bars per table row, a bar
// per library. A bar's length is the library's figure relative to the
// best peer's, turned so that longer is better: the figure over the
// baseline where higher is better, the baseline over the figure where
// lower is better. 1 is the best peer; colibri's bars carry their value.
func comparisonChart(rep *report, path string) error {
	type row struct {
		label string
		rel   map[string]float64
	}
	var rows []row
	for _, mi := range rep.Metrics {
		if mi.Hidden {
			continue
		}
		m := metric{key: mi.Key, higher: mi.Higher}
		best, ok := baseline(rep, m, scenario{key: mi.Scenario})
		if !ok || best == 0 {
			continue
		}
		r := row{label: mi.Label, rel: map[string]float64{}}
		for _, lib := range rep.Libs {
			o := rep.Results[lib][mi.Scenario]
			if o == nil || o.Error != "" || o.Skipped != "" {
				continue
			}
			x, ok := ratio(o, m, best, true)
			if !ok || x == 0 {
				continue
			}
			if mi.Higher {
				r.rel[lib] = x
			} else {
				r.rel[lib] = 1 / x
			}
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return fmt.Errorf("no figures to draw")
	}

	p := plot.New()
	p.Title.Text = "colibri next to its peers: each figure relative to the best peer's (longer is better)"
	p.X.Label.Text = "relative to the best peer (1 = best peer; lower-is-better figures inverted)"
	p.Legend.Top = true
	p.Legend.Left = false

	// Rows top to bottom in table order: the first row gets the highest y.
	names := make([]string, len(rows))
	for i, r := range rows {
		names[len(rows)-1-i] = r.label
	}
	libs := rep.Libs
	const groupHeight = 0.84 // of the unit between two rows
	rowPts := vg.Length(14 * len(libs))
	height := vg.Length(len(rows))*rowPts + 2.2*vg.Inch
	barWidth := rowPts * groupHeight / vg.Length(len(libs))
	peer := 0
	maxRel := 1.0
	for j, lib := range libs {
		vals := make(plotter.Values, len(rows))
		var labels plotter.XYLabels
		for i, r := range rows {
			y := float64(len(rows) - 1 - i)
			v := r.rel[lib]
			vals[len(rows)-1-i] = v
			maxRel = max(maxRel, v)
			k := kindOf(lib)
			if v > 0 && (k == colibriLib || k == variantLib || k == floorLib) {
				off := -groupHeight/2 + (float64(j)+0.5)*groupHeight/float64(len(libs))
				labels.XYs = append(labels.XYs, plotter.XY{X: v, Y: y - off})
				labels.Labels = append(labels.Labels, fmt.Sprintf(" ×%.2f", v))
			}
		}
		b, err := plotter.NewBarChart(vals, barWidth)
		if err != nil {
			return err
		}
		b.Horizontal = true
		b.Offset = rowPts*groupHeight/2 - (vg.Length(j)+0.5)*barWidth
		b.LineStyle.Width = 0
		b.Color = libColor(lib, peer)
		if kindOf(lib) == peerLib {
			peer++
		}
		p.Add(b)
		p.Legend.Add(lib, b)
		if len(labels.XYs) > 0 {
			l, err := plotter.NewLabels(labels)
			if err != nil {
				return err
			}
			for i := range l.TextStyle {
				l.TextStyle[i].Font.Size = vg.Points(7)
				l.TextStyle[i].YAlign = -0.5
			}
			p.Add(l)
		}
	}
	ref, err := plotter.NewLine(plotter.XYs{{X: 1, Y: -0.5}, {X: 1, Y: float64(len(rows)) - 0.5}})
	if err != nil {
		return err
	}
	ref.LineStyle.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
	ref.LineStyle.Color = color.Gray{Y: 0x60}
	p.Add(ref)
	p.NominalY(names...)
	p.X.Min = 0
	p.X.Max = maxRel * 1.12
	var ticks []plot.Tick
	for v := 0.0; v <= p.X.Max; v += 0.25 {
		t := plot.Tick{Value: v}
		if math.Mod(v, 0.5) == 0 {
			t.Label = fmt.Sprintf("%.1f", v)
		}
		ticks = append(ticks, t)
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Legend.Top = false
	p.Add(plotter.NewGrid())
	return p.Save(9*vg.Inch, height, path)
}

// latencyQuantiles are the percentiles the latency scenarios report, as
// fractions, and the names of their keys.
var latencyQuantiles = []struct {
	q    float64
	name string
}{
	{0.50, "p50"}, {0.90, "p90"}, {0.99, "p99"}, {0.999, "p999"}, {0.9999, "p9999"},
}

// nines places quantile q on a percentile plot's x axis: 0.9 at 1, 0.99
// at 2, 0.999 at 3, so that the tail is spread out.
func nines(q float64) float64 { return -math.Log10(1 - q) }

// percentileLine is one curve of a percentile plot: a name and the
// latency in µs at each quantile it has.
type percentileLine struct {
	name  string
	color color.Color
	dash  bool
	us    map[float64]float64
}

// percentilePlot draws latency against percentile on a nines scale.
func percentilePlot(title string, lines []percentileLine, path string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (µs)"
	p.Legend.Top = true
	p.Legend.Left = true
	var ticks []plot.Tick
	for _, lq := range latencyQuantiles {
		ticks = append(ticks, plot.Tick{Value: nines(lq.q), Label: strings.Replace(fmt.Sprintf("p%g", lq.q*100), "p", "", 1)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	for _, l := range lines {
		var xys plotter.XYs
		for _, lq := range latencyQuantiles {
			if v, ok := l.us[lq.q]; ok {
				xys = append(xys, plotter.XY{X: nines(lq.q), Y: v})
			}
		}
		if len(xys) == 0 {
			continue
		}
		ln, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		ln.Color, pts.Color = l.color, l.color
		ln.Width = vg.Points(1.5)
		if l.dash {
			ln.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(ln, pts)
		p.Legend.Add(l.name, ln, pts)
	}
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}

// latencyChart draws the latency scenario's percentiles, a line per
// library. It reports false when the scenario did not run.
func latencyChart(rep *report, path string) (bool, error) {
	var lines []percentileLine
	peer := 0
	for _, lib := range rep.Libs {
		o := rep.Results[lib]["latency"]
		c := libColor(lib, peer)
		if kindOf(lib) == peerLib {
			peer++
		}
		if o == nil || o.Error != "" || o.Skipped != "" {
			continue
		}
		l := percentileLine{name: lib, color: c, dash: kindOf(lib) == floorLib, us: map[float64]float64{}}
		for _, lq := range latencyQuantiles {
			if v, ok := o.Values["latency_"+lq.name+"_us"]; ok {
				l.us[lq.q] = v
			}
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		return false, nil
	}
	return true, percentilePlot(fmt.Sprintf("round-trip latency, %d B echo on one connection", smallPayload), lines, path)
}
