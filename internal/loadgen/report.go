package loadgen

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// WriteReport writes the run's plots to path: an HTML page with the
// summary and one SVG per plot when path ends in .html, or the plots
// stacked in one SVG when it ends in .svg.
func WriteReport(path string, r *Result, s Summary) error {
	plots, err := reportPlots(r)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	switch strings.ToLower(filepath.Ext(path)) {
	case ".svg":
		err = writeStackedSVG(&buf, plots)
	case ".html", ".htm":
		err = writeHTML(&buf, r, s, plots)
	default:
		return fmt.Errorf("report %s: the name must end in .html or .svg", path)
	}
	if err != nil {
		return fmt.Errorf("draw the report: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}

const plotWidth, plotHeight = 20 * vg.Centimeter, 9 * vg.Centimeter

// series is the run cut into time buckets.
type series struct {
	width         time.Duration
	starts        []float64 // seconds since the start, per bucket
	placed, ended []float64
	// per bucket of the end (or the answer), in seconds
	toTerminal, post [][]time.Duration
}

// bucketWidth cuts a run into about 60 buckets of whole seconds, or of
// 250 ms for a run under 15 s.
func bucketWidth(elapsed time.Duration) time.Duration {
	if elapsed < 15*time.Second {
		return 250 * time.Millisecond
	}
	return max(time.Second, (elapsed / 60).Round(time.Second))
}

func cut(r *Result) series {
	w := bucketWidth(r.End.Sub(r.Start))
	n := int(r.End.Sub(r.Start)/w) + 1
	s := series{width: w, placed: make([]float64, n), ended: make([]float64, n), toTerminal: make([][]time.Duration, n), post: make([][]time.Duration, n)}
	for i := range n {
		s.starts = append(s.starts, (time.Duration(i) * w).Seconds())
	}
	bucket := func(t time.Time) int { return min(max(int(t.Sub(r.Start)/w), 0), n-1) }
	for _, o := range r.Orders {
		if !o.Placed() {
			continue
		}
		b := bucket(o.Answered)
		s.placed[b]++
		s.post[b] = append(s.post[b], o.Answered.Sub(o.Sent))
		if !o.Ended.IsZero() {
			b := bucket(o.Ended)
			s.ended[b]++
			s.toTerminal[b] = append(s.toTerminal[b], o.Ended.Sub(o.Sent))
		}
	}
	return s
}

// quantile is the q-quantile (0..1) of ds in seconds, by nearest rank,
// or NaN for no values (a gap in the line).
func quantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return math.NaN()
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)].Seconds()
}

func reportPlots(r *Result) ([]*plot.Plot, error) {
	s := cut(r)
	perSecond := func(counts []float64) []float64 {
		out := make([]float64, len(counts))
		for i, c := range counts {
			out[i] = c / s.width.Seconds()
		}
		return out
	}
	pick := func(buckets [][]time.Duration, q float64) []float64 {
		out := make([]float64, len(buckets))
		for i, b := range buckets {
			out[i] = quantile(b, q)
		}
		return out
	}
	throughput, err := linePlot("Throughput", "orders/s", s.starts, []named{
		{"placed", perSecond(s.placed)}, {"ended", perSecond(s.ended)},
	})
	if err != nil {
		return nil, err
	}
	toTerminal, err := linePlot("Placement → terminal status", "seconds", s.starts, []named{
		{"p50", pick(s.toTerminal, 0.5)}, {"p99", pick(s.toTerminal, 0.99)},
	})
	if err != nil {
		return nil, err
	}
	post, err := linePlot("POST /orders latency", "seconds", s.starts, []named{
		{"p50", pick(s.post, 0.5)}, {"p99", pick(s.post, 0.99)},
	})
	if err != nil {
		return nil, err
	}
	return []*plot.Plot{throughput, toTerminal, post}, nil
}

type named struct {
	name   string
	values []float64
}

// linePlot draws one line per series against seconds since the start;
// NaN values leave gaps (buckets where nothing happened).
func linePlot(title, unit string, xs []float64, lines []named) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds since the start"
	p.Y.Label.Text = unit
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	for i, l := range lines {
		var pts plotter.XYs
		for j, v := range l.values {
			if !math.IsNaN(v) {
				pts = append(pts, plotter.XY{X: xs[j], Y: v})
			}
		}
		if len(pts) == 0 {
			continue
		}
		ln, err := plotter.NewLine(pts)
		if err != nil {
			return nil, fmt.Errorf("plot %s %s: %w", title, l.name, err)
		}
		ln.Color = plotutil.Color(i)
		ln.Width = vg.Points(1.5)
		p.Add(ln)
		p.Legend.Add(l.name, ln)
	}
	return p, nil
}

func writeStackedSVG(w io.Writer, plots []*plot.Plot) error {
	c := vgsvg.New(plotWidth, plotHeight*vg.Length(len(plots)))
	tiles := draw.Tiles{Rows: len(plots), Cols: 1}
	grid := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		grid[i] = []*plot.Plot{p}
	}
	for i, row := range plot.Align(grid, tiles, draw.New(c)) {
		plots[i].Draw(row[0])
	}
	_, err := c.WriteTo(w)
	return err
}

// svgOf draws p alone and returns its <svg> element, for inlining in HTML.
func svgOf(p *plot.Plot) (template.HTML, error) {
	wt, err := p.WriterTo(plotWidth, plotHeight, "svg")
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return "", err
	}
	s := b.String()
	// The prolog (<?xml …?>, <!DOCTYPE …>) belongs to a file, not to an
	// element inside HTML.
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:]
	}
	return template.HTML(s), nil // drawn by gonum/plot from our own figures
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ordersaga load {{.RunID}}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:60em}pre{background:#f4f4f4;padding:1em}figure{margin:1em 0}</style>
</head>
<body>
<h1>ordersaga load {{.RunID}}</h1>
<p>Against {{.URL}}, started {{.Start}}.</p>
<pre>{{.Summary}}</pre>
{{range .Plots}}<figure>{{.}}</figure>
{{end}}</body>
</html>
`))

func writeHTML(w io.Writer, r *Result, s Summary, plots []*plot.Plot) error {
	var summary bytes.Buffer
	if err := s.Print(&summary, r.Config); err != nil {
		return err
	}
	data := struct {
		RunID, URL, Start, Summary string
		Plots                      []template.HTML
	}{RunID: r.Config.RunID, URL: r.Config.BaseURL, Start: r.Start.UTC().Format(time.RFC3339), Summary: summary.String()}
	for _, p := range plots {
		svg, err := svgOf(p)
		if err != nil {
			return err
		}
		data.Plots = append(data.Plots, svg)
	}
	return page.Execute(w, data)
}
