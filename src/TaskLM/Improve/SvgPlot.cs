// A small SVG chart writer for the improvement verbs' plots: points with labels and error bars, joined or not, linear or log x.
using System.Globalization;
using System.Net;
using System.Text;

namespace TaskLM.Improve;

/// <summary>One point: x, y, an optional interval [Low, High] drawn as an error bar, and an optional label.</summary>
public sealed record SvgPoint(double X, double Y, double? Low = null, double? High = null, string? Label = null);

/// <summary>A named series; <see cref="Line"/> joins its points in x order.</summary>
public sealed record SvgSeries(string Name, IReadOnlyList<SvgPoint> Points, bool Line = false);

/// <summary>Writes a chart as standalone SVG text (no fonts or scripts to fetch: any browser shows it).</summary>
public static class SvgPlot
{
    static readonly string[] Colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

    public static string Chart(string title, string xLabel, string yLabel, IReadOnlyList<SvgSeries> series, bool logX = false, int width = 720, int height = 420)
    {
        const double left = 70, right = 170, top = 40, bottom = 55;
        double pw = width - left - right, ph = height - top - bottom;
        var all = series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y) && (!logX || p.X > 0)).ToList();
        double Tx(double x) => logX ? Math.Log10(x) : x;
        double x0 = all.Count > 0 ? all.Min(p => Tx(p.X)) : 0, x1 = all.Count > 0 ? all.Max(p => Tx(p.X)) : 1;
        double y0 = all.Count > 0 ? all.Min(p => p.Low ?? p.Y) : 0, y1 = all.Count > 0 ? all.Max(p => p.High ?? p.Y) : 1;
        if (x1 - x0 < 1e-12) { x0 -= 0.5; x1 += 0.5; }
        if (y1 - y0 < 1e-12) { y0 -= 0.05; y1 += 0.05; }
        double xpad = (x1 - x0) * 0.06, ypad = (y1 - y0) * 0.08;
        x0 -= xpad; x1 += xpad; y0 -= ypad; y1 += ypad;
        double Px(double x) => left + (Tx(x) - x0) / (x1 - x0) * pw;
        double Py(double y) => top + (1 - (y - y0) / (y1 - y0)) * ph;
        string N(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
        string E(string s) => WebUtility.HtmlEncode(s);

        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        sb.Append($"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n");
        sb.Append($"<text x=\"{N(left + pw / 2)}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{E(title)}</text>\n");
        sb.Append($"<rect x=\"{N(left)}\" y=\"{N(top)}\" width=\"{N(pw)}\" height=\"{N(ph)}\" fill=\"none\" stroke=\"#444\"/>\n");
        // Ticks: 5 on y; on x, 5 linear or one per decade (and 2x, 5x) on a log axis.
        for (int i = 0; i <= 4; i++)
        {
            double v = y0 + (y1 - y0) * i / 4;
            sb.Append($"<line x1=\"{N(left - 4)}\" x2=\"{N(left + pw)}\" y1=\"{N(Py(v))}\" y2=\"{N(Py(v))}\" stroke=\"#ddd\"/>");
            sb.Append($"<text x=\"{N(left - 7)}\" y=\"{N(Py(v) + 4)}\" text-anchor=\"end\">{E(Tick(v))}</text>\n");
        }
        foreach (double v in XTicks(x0, x1, logX))
        {
            double px = logX ? left + (Math.Log10(v) - x0) / (x1 - x0) * pw : Px(v);
            sb.Append($"<line x1=\"{N(px)}\" x2=\"{N(px)}\" y1=\"{N(top)}\" y2=\"{N(top + ph + 4)}\" stroke=\"#ddd\"/>");
            sb.Append($"<text x=\"{N(px)}\" y=\"{N(top + ph + 18)}\" text-anchor=\"middle\">{E(Tick(v))}</text>\n");
        }
        sb.Append($"<text x=\"{N(left + pw / 2)}\" y=\"{N(height - 12)}\" text-anchor=\"middle\">{E(xLabel + (logX ? " (log scale)" : ""))}</text>\n");
        sb.Append($"<text x=\"16\" y=\"{N(top + ph / 2)}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {N(top + ph / 2)})\">{E(yLabel)}</text>\n");
        for (int s = 0; s < series.Count; s++)
        {
            string c = Colours[s % Colours.Length];
            var pts = series[s].Points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y) && (!logX || p.X > 0)).OrderBy(p => p.X).ToList();
            if (series[s].Line && pts.Count > 1)
                sb.Append($"<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{string.Join(' ', pts.Select(p => $"{N(Px(p.X))},{N(Py(p.Y))}"))}\"/>\n");
            foreach (var p in pts)
            {
                if (p.Low is { } lo && p.High is { } hi)
                    sb.Append($"<line x1=\"{N(Px(p.X))}\" x2=\"{N(Px(p.X))}\" y1=\"{N(Py(lo))}\" y2=\"{N(Py(hi))}\" stroke=\"{c}\" stroke-width=\"1.5\"/>" +
                              $"<line x1=\"{N(Px(p.X) - 4)}\" x2=\"{N(Px(p.X) + 4)}\" y1=\"{N(Py(lo))}\" y2=\"{N(Py(lo))}\" stroke=\"{c}\"/>" +
                              $"<line x1=\"{N(Px(p.X) - 4)}\" x2=\"{N(Px(p.X) + 4)}\" y1=\"{N(Py(hi))}\" y2=\"{N(Py(hi))}\" stroke=\"{c}\"/>");
                sb.Append($"<circle cx=\"{N(Px(p.X))}\" cy=\"{N(Py(p.Y))}\" r=\"4\" fill=\"{c}\"/>");
                if (p.Label != null) sb.Append($"<text x=\"{N(Px(p.X) + 6)}\" y=\"{N(Py(p.Y) - 6)}\" font-size=\"11\">{E(p.Label)}</text>");
                sb.Append('\n');
            }
            double ly = top + 12 + 18 * s;
            sb.Append($"<circle cx=\"{N(left + pw + 16)}\" cy=\"{N(ly - 4)}\" r=\"4\" fill=\"{c}\"/><text x=\"{N(left + pw + 26)}\" y=\"{N(ly)}\">{E(series[s].Name)}</text>\n");
        }
        sb.Append("</svg>\n");
        return sb.ToString();
    }

    static string Tick(double v)
    {
        double a = Math.Abs(v);
        return a >= 1e6 ? (v / 1e6).ToString("0.#", CultureInfo.InvariantCulture) + "M"
            : a >= 1e4 ? (v / 1e3).ToString("0.#", CultureInfo.InvariantCulture) + "K"
            : a >= 100 ? v.ToString("0", CultureInfo.InvariantCulture)
            : a >= 1 ? v.ToString("0.##", CultureInfo.InvariantCulture) : v.ToString("0.###", CultureInfo.InvariantCulture);
    }

    static IEnumerable<double> XTicks(double x0, double x1, bool logX)
    {
        if (!logX) { for (int i = 0; i <= 4; i++) yield return x0 + (x1 - x0) * i / 4; yield break; }
        var ticks = new List<double>();
        for (int d = (int)Math.Floor(x0); d <= (int)Math.Ceiling(x1); d++)
            foreach (double m in new[] { 1.0, 2.0, 5.0 })
            {
                double v = m * Math.Pow(10, d);
                if (Math.Log10(v) >= x0 && Math.Log10(v) <= x1) ticks.Add(v);
            }
        // Less than a decade wide: five ticks evenly spaced on the log axis, rounded to two significant digits.
        if (ticks.Count < 3)
        {
            ticks.Clear();
            for (int i = 0; i <= 4; i++)
            {
                double v = Math.Pow(10, x0 + (x1 - x0) * (0.1 + 0.8 * i / 4));
                double mag = Math.Pow(10, Math.Floor(Math.Log10(v)) - 1);
                ticks.Add(Math.Round(v / mag) * mag);
            }
        }
        foreach (var t in ticks.Distinct()) yield return t;
    }
}
