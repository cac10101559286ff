package bench

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
)

// The HTML report is one self-contained file: inline CSS and SVG, no script,
// no font or image from the network, so that it opens offline and can be
// mailed around.

// line is one series of a chart; NaN values leave a gap.
type line struct {
	name  string
	color string
	ys    []float64
}

// chart is one time-series chart.
type chart struct {
	title   string
	unit    string
	log     bool // logarithmic y axis (latency)
	lines   []line
	markers []float64 // x positions (seconds) of edits
	publish *float64  // x position of the spike's publication, if any
	points  bool      // draw points rather than lines (freshness lag)
	xs      []float64 // x of each value; nil means 0, 1, 2, ...
	xMax    float64   // the x axis' end when larger than the data's
}

const (
	chartW, chartH               = 880, 230
	padL, padR, padT, padB       = 64, 16, 28, 30
	plotW, plotH                 = chartW - padL - padR, chartH - padT - padB
	colorA, colorB, colorC, grid = "#1f77b4", "#d62728", "#7f7f7f", "#e5e5e5"
)

// niceStep returns a round step that splits span into about n parts.
func niceStep(span float64, n int) float64 {
	if span <= 0 || math.IsNaN(span) || math.IsInf(span, 0) {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

func fmtTick(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 4, 64) + "M"
	case math.Abs(v) >= 1e4:
		return strconv.FormatFloat(v/1e3, 'g', 4, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
}

// svg renders the chart. Every text it contains is escaped.
func (c chart) svg() template.HTML {
	var b strings.Builder
	n := 0
	for _, l := range c.lines {
		n = max(n, len(l.ys))
	}
	xOf := func(i int) float64 {
		if c.xs != nil {
			return c.xs[i]
		}
		return float64(i)
	}
	// Values of a second are drawn in its middle: the axis covers whole
	// seconds.
	xMax := max(1.0, float64(n), c.xMax)
	if c.xs != nil {
		xMax = max(1.0, c.xMax)
	}
	for i := range n {
		xMax = max(xMax, xOf(i))
	}
	for _, m := range c.markers {
		xMax = max(xMax, m)
	}
	if c.publish != nil {
		xMax = max(xMax, *c.publish)
	}
	yMin, yMax := math.Inf(1), math.Inf(-1)
	for _, l := range c.lines {
		for _, y := range l.ys {
			if math.IsNaN(y) || (c.log && y <= 0) {
				continue
			}
			yMin, yMax = min(yMin, y), max(yMax, y)
		}
	}
	var ticks []float64
	var yOf func(float64) float64
	if c.log {
		if math.IsInf(yMin, 1) {
			yMin, yMax = 0.1, 1
		}
		lo := math.Pow(10, math.Floor(math.Log10(yMin)))
		hi := math.Pow(10, math.Ceil(math.Log10(yMax)))
		if hi <= lo {
			hi = lo * 10
		}
		for t := lo; t <= hi*1.0001; t *= 10 {
			ticks = append(ticks, t)
		}
		yOf = func(y float64) float64 {
			return padT + plotH - (math.Log10(y)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*plotH
		}
	} else {
		if math.IsInf(yMax, -1) || yMax <= 0 {
			yMax = 1
		}
		step := niceStep(yMax, 4)
		top := math.Ceil(yMax/step) * step
		for t := 0.0; t <= top*1.0001; t += step {
			ticks = append(ticks, t)
		}
		yOf = func(y float64) float64 { return padT + plotH - y/top*plotH }
	}
	xPix := func(x float64) float64 { return padL + x/xMax*plotW }

	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img">`, chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<text x="%d" y="18" class="t">%s</text>`, padL, template.HTMLEscapeString(c.title+" ("+c.unit+")"))
	for _, t := range ticks {
		y := yOf(t)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s"/>`, padL, padL+plotW, y, y, grid)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="y">%s</text>`, padL-6, y+4, fmtTick(t))
	}
	xStep := niceStep(xMax, 8)
	for t := 0.0; t <= xMax*1.0001; t += xStep {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="x">%ss</text>`, xPix(t), chartH-10, fmtTick(t))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`, padL, padT, plotW, plotH)
	for _, m := range c.markers {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#2ca02c" stroke-dasharray="3,3"/>`, xPix(m), xPix(m), padT, padT+plotH)
	}
	if c.publish != nil {
		x := xPix(*c.publish)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#9467bd" stroke-width="2"/>`, x, x, padT, padT+plotH)
	}
	for li, l := range c.lines {
		if c.points {
			for i, y := range l.ys {
				if math.IsNaN(y) || (c.log && y <= 0) {
					continue
				}
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, xPix(xOf(i)), yOf(y), l.color)
			}
		} else {
			var pts []string
			flush := func() {
				if len(pts) > 0 {
					fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, l.color, strings.Join(pts, " "))
					pts = pts[:0]
				}
			}
			for i, y := range l.ys {
				if math.IsNaN(y) || (c.log && y <= 0) {
					flush()
					continue
				}
				// Each value covers its second: plot it in the middle.
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xPix(xOf(i)+0.5), yOf(y)))
			}
			flush()
		}
		fmt.Fprintf(&b, `<text x="%d" y="18" class="l" style="fill:%s">%s</text>`, padL+plotW-120*(len(c.lines)-li), l.color, template.HTMLEscapeString(l.name))
	}
	if math.IsInf(yMin, 1) {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="x">not measured</text>`, padL+plotW/2, padT+plotH/2)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built above with every text escaped
}

// charts returns the report's time-series charts.
func (r *Report) charts() []chart {
	n := len(r.Series)
	get := func(f func(s Second) float64) []float64 {
		ys := make([]float64, n)
		for i, s := range r.Series {
			ys[i] = f(s)
		}
		return ys
	}
	opt := func(p *float64, scale float64) float64 {
		if p == nil {
			return math.NaN()
		}
		return *p * scale
	}
	var markers []float64
	lagX, lagY := []float64{}, []float64{}
	for _, e := range r.Edits {
		markers = append(markers, e.AtS)
		lagX = append(lagX, e.AtS)
		lagY = append(lagY, opt(e.LagMs, 1))
	}
	var publish *float64
	if r.Spike != nil {
		publish = &r.Spike.PublishedS
	}
	cs := []chart{
		{title: "Request rate", unit: "req/s", markers: markers, publish: publish, lines: []line{
			{"offered", colorC, get(func(s Second) float64 { return float64(s.Offered) })},
			{"achieved", colorA, get(func(s Second) float64 { return float64(s.Achieved) })},
		}},
		{title: "Latency from schedule", unit: "ms, log scale", log: true, markers: markers, publish: publish, lines: []line{
			{"p50", colorA, get(func(s Second) float64 { return s.P50Ms })},
			{"p99", colorB, get(func(s Second) float64 { return s.P99Ms })},
			{"max", colorC, get(func(s Second) float64 { return s.MaxMs })},
		}},
		{title: "Hit ratio", unit: "%", markers: markers, publish: publish, lines: []line{
			{"hit ratio", colorA, get(func(s Second) float64 { return opt(s.HitRatio, 100) })},
		}},
		{title: "Origin requests", unit: "req/s", markers: markers, publish: publish, lines: []line{
			{"origin", colorB, get(func(s Second) float64 { return opt(s.OriginRequests, 1) })},
		}},
		{title: "Errors", unit: "per s", markers: markers, publish: publish, lines: []line{
			{"errors", colorB, get(func(s Second) float64 { return float64(s.Errors) })},
			{"late sends", colorC, get(func(s Second) float64 { return float64(s.Late) })},
		}},
		{title: "Throughput", unit: "MB/s received", markers: markers, publish: publish, lines: []line{
			{"bytes", colorA, get(func(s Second) float64 { return float64(s.Bytes) / 1e6 })},
		}},
	}
	if len(r.Edits) > 0 {
		cs = append(cs, chart{title: "Freshness lag of each edit", unit: "ms", points: true, xs: lagX, xMax: float64(n), publish: publish,
			lines: []line{{"lag", colorB, lagY}}})
	}
	return cs
}

var htmlReport = template.Must(template.New("report").Funcs(template.FuncMap{
	"opt": func(f *float64) string { return fmtOpt(f, "%.1f") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>lakka bench {{.R.Kind}} — {{.R.Label}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:920px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;font-size:14px}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{background:#fff4e5;border-left:4px solid #f0a020;padding:6px 10px;margin:8px 0}
svg text{font-size:11px;fill:#444}svg text.t{font-size:13px;font-weight:600}svg text.y{text-anchor:end}svg text.x{text-anchor:middle}
svg text.l{font-weight:600}
</style></head><body>
<h1>lakka bench {{.R.Kind}}: {{.R.Label}}</h1>
<p>Target {{.R.Target}}, started {{.R.StartedAt.Format "2006-01-02 15:04:05 MST"}}, {{printf "%.1f" .R.DurationS}} s.
Latency is measured from each request's scheduled time (open loop). A purple line marks the publication of the spike's article, dashed green lines its edits.</p>
{{range .R.Limits.Messages}}<div class="note">{{.}}</div>{{end}}
<h2>Summary</h2>
<table>{{range .Rows}}<tr><th>{{.Name}}</th><td class="n">{{.Value}}</td></tr>{{end}}</table>
<h2>Over time</h2>
{{range .Charts}}<div>{{.}}</div>{{end}}
{{if .R.Edits}}<h2>Edits</h2>
<table><tr><th>at s</th><th>version</th><th>lag ms</th></tr>
{{range .R.Edits}}<tr><td class="n">{{printf "%.3f" .AtS}}</td><td class="n">{{.Version}}</td><td class="n">{{if .LagMs}}{{opt .LagMs}}{{else}}not seen{{end}}</td></tr>{{end}}
</table>{{end}}
<h2>Settings</h2>
<table>{{range $k, $v := .R.Settings}}<tr><th>{{$k}}</th><td>{{$v}}</td></tr>{{end}}</table>
</body></html>
`))

// WriteHTML writes the self-contained HTML report.
func (r *Report) WriteHTML(w io.Writer) error {
	type kv struct{ Name, Value string }
	var rows []kv
	for _, row := range tableRows {
		rows = append(rows, kv{row.name, row.cell(r)})
	}
	var charts []template.HTML
	for _, c := range r.charts() {
		charts = append(charts, c.svg())
	}
	err := htmlReport.Execute(w, struct {
		R      *Report
		Rows   []kv
		Charts []template.HTML
	}{r, rows, charts})
	if err != nil {
		return fmt.Errorf("bench: write html report: %w", err)
	}
	return nil
}
