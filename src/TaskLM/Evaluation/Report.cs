// Evaluation and run-comparison reports: Markdown with PNG files beside it, and one self-contained HTML page.
using System.Globalization;
using System.Net;
using System.Text;

namespace TaskLM.Evaluation;

/// <summary>A table in a report.</summary>
public sealed record ReportTable(string Title, IReadOnlyList<string> Header, IReadOnlyList<IReadOnlyList<string>> Rows, bool LongText = false);

/// <summary>A PNG figure in a report; <see cref="FileName"/> is its name under plots/.</summary>
public sealed record ReportFigure(string Title, string FileName, byte[] Png);

/// <summary>A report: a title, notes, and tables and figures in order. <see cref="Write"/> produces
/// report.md (figures as plots/*.png files) and report.html (figures embedded as base64 PNG, no other files needed).</summary>
public sealed class Report
{
    public required string Title { get; init; }
    public List<string> Notes { get; } = [];
    /// <summary><see cref="ReportTable"/> and <see cref="ReportFigure"/> blocks, in order.</summary>
    public List<object> Blocks { get; } = [];

    /// <summary>Writes report.md, report.html and plots/*.png into <paramref name="dir"/>; returns the HTML path.</summary>
    public string Write(string dir)
    {
        Directory.CreateDirectory(dir);
        var figures = Blocks.OfType<ReportFigure>().ToList();
        if (figures.Count > 0) Directory.CreateDirectory(Path.Combine(dir, "plots"));
        foreach (var f in figures) File.WriteAllBytes(Path.Combine(dir, "plots", f.FileName), f.Png);
        File.WriteAllText(Path.Combine(dir, "report.md"), ToMarkdown());
        var html = Path.Combine(dir, "report.html");
        File.WriteAllText(html, ToHtml());
        return html;
    }

    /// <summary>Markdown; figures link to plots/&lt;file&gt;.</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.Append("# ").AppendLine(Title).AppendLine();
        foreach (var n in Notes) sb.AppendLine(n).AppendLine();
        foreach (var b in Blocks)
        {
            if (b is ReportTable t)
            {
                sb.Append("## ").AppendLine(t.Title).AppendLine();
                sb.Append("| ").AppendJoin(" | ", t.Header.Select(Md)).AppendLine(" |");
                sb.Append('|').AppendJoin("", t.Header.Select(_ => "---|")).AppendLine();
                foreach (var row in t.Rows) sb.Append("| ").AppendJoin(" | ", row.Select(Md)).AppendLine(" |");
                sb.AppendLine();
            }
            else if (b is ReportFigure f)
                sb.Append("## ").AppendLine(f.Title).AppendLine().Append("![").Append(f.Title).Append("](plots/").Append(f.FileName).AppendLine(")").AppendLine();
        }
        return sb.ToString();
    }

    private static string Md(string s) => s.Replace("\\", "\\\\").Replace("|", "\\|").Replace("\r", "").Replace("\n", "<br>");

    /// <summary>One self-contained HTML page (inline CSS, figures as data: URIs).</summary>
    public string ToHtml()
    {
        static string H(string s) => WebUtility.HtmlEncode(s);
        var sb = new StringBuilder();
        sb.AppendLine("<!DOCTYPE html>").AppendLine("<html lang=\"en\"><head><meta charset=\"utf-8\">");
        sb.Append("<title>").Append(H(Title)).AppendLine("</title>");
        sb.AppendLine("""
            <style>
            body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
            h1 { font-size: 1.6em; border-bottom: 2px solid #3b6fb6; padding-bottom: .3em; }
            h2 { font-size: 1.2em; margin-top: 1.6em; color: #3b6fb6; }
            table { border-collapse: collapse; margin: .5em 0; font-size: .92em; }
            th, td { border: 1px solid #ccd; padding: .3em .7em; text-align: right; vertical-align: top; }
            th { background: #eef2f9; }
            td:first-child, th:first-child { text-align: left; }
            table.long th { text-align: left; }
            table.long td { text-align: left; max-width: 520px; white-space: pre-wrap; word-break: break-word; }
            tr:nth-child(even) td { background: #fafbfd; }
            img { max-width: 100%; border: 1px solid #dde; margin: .4em 0; }
            .note { color: #555; }
            </style></head><body>
            """);
        sb.Append("<h1>").Append(H(Title)).AppendLine("</h1>");
        foreach (var n in Notes) sb.Append("<p class=\"note\">").Append(H(n)).AppendLine("</p>");
        foreach (var b in Blocks)
        {
            if (b is ReportTable t)
            {
                sb.Append("<h2>").Append(H(t.Title)).AppendLine("</h2>");
                sb.Append(t.LongText ? "<table class=\"long\">" : "<table>").Append("<thead><tr>");
                foreach (var h in t.Header) sb.Append("<th>").Append(H(h)).Append("</th>");
                sb.AppendLine("</tr></thead><tbody>");
                foreach (var row in t.Rows)
                {
                    sb.Append("<tr>");
                    foreach (var c in row) sb.Append("<td>").Append(H(c)).Append("</td>");
                    sb.AppendLine("</tr>");
                }
                sb.AppendLine("</tbody></table>");
            }
            else if (b is ReportFigure f)
            {
                sb.Append("<h2>").Append(H(f.Title)).AppendLine("</h2>");
                sb.Append("<img alt=\"").Append(H(f.Title)).Append("\" src=\"data:image/png;base64,").Append(Convert.ToBase64String(f.Png)).AppendLine("\">");
            }
        }
        sb.AppendLine("</body></html>");
        return sb.ToString();
    }
}

/// <summary>Builds reports from eval results and run folders.</summary>
public static class ReportBuilder
{
    /// <summary>Adds an evaluation's blocks: metric table (with confidence intervals), per-class table,
    /// confusion-matrix heat map, worst examples and generation samples. <paramref name="prefix"/> keeps
    /// figure file names apart when several runs share a report.</summary>
    public static void AddEval(Report report, EvalResult e, string prefix = "", string? heading = null)
    {
        string H(string s) => heading == null ? s : $"{heading}: {s}";
        bool withCi = e.Intervals.Count > 0;
        var rows = e.Metrics.Select(kv =>
        {
            var row = new List<string> { kv.Key, EvalResult.Format(kv.Value) };
            if (withCi)
                row.Add(e.Intervals.TryGetValue(kv.Key, out var ci)
                    ? $"[{EvalResult.Format(ci.Low)}, {EvalResult.Format(ci.High)}] ({ci.Confidence * 100:0}%, {ci.Samples} resamples)" : "");
            return (IReadOnlyList<string>)row;
        }).ToList();
        var meta = string.Join(", ", new[] { e.Task, e.Split == null ? null : $"split {e.Split}", e.N == null ? null : $"n = {e.N}" }.Where(x => x != null));
        report.Blocks.Add(new ReportTable(H("Metrics" + (meta.Length > 0 ? $" ({meta})" : "")), withCi ? ["metric", "value", "bootstrap CI"] : ["metric", "value"], rows));
        if (e.Baseline != null) report.Blocks.Add(BaselineComparison.Table(e, H("Model vs baseline")));
        if (e.PerClass is { Count: > 0 } pc)
            report.Blocks.Add(new ReportTable(H("Per class"), ["class", "precision", "recall", "f1", "support"],
                pc.Select(kv => (IReadOnlyList<string>)[kv.Key, EvalResult.Format(kv.Value.Precision), EvalResult.Format(kv.Value.Recall),
                    EvalResult.Format(kv.Value.F1), kv.Value.Support.ToString(CultureInfo.InvariantCulture)]).ToList()));
        if (e.ConfusionLabels != null && e.ConfusionMatrix != null)
            report.Blocks.Add(new ReportFigure(H("Confusion matrix"), prefix + "confusion_matrix.png", Plots.ConfusionMatrix(e.ConfusionLabels, e.ConfusionMatrix)));
        if (e.WorstExamples.Count > 0)
            report.Blocks.Add(new ReportTable(H("Worst examples"), ["#", "text", "gold", "predicted", "loss"],
                e.WorstExamples.Select((w, i) => (IReadOnlyList<string>)[(i + 1).ToString(CultureInfo.InvariantCulture), w.Text, w.Gold ?? "", w.Pred ?? "",
                    w.Loss is double l ? EvalResult.Format(l) : ""]).ToList(), LongText: true));
        if (e.Samples.Count > 0)
            report.Blocks.Add(new ReportTable(H("Generation samples"), ["#", "prompt", "output", "reference"],
                e.Samples.Select((s, i) => (IReadOnlyList<string>)[(i + 1).ToString(CultureInfo.InvariantCulture), s.Prompt, s.Output, s.Reference ?? ""]).ToList(), LongText: true));
    }

    /// <summary>Adds training curves read from metrics.jsonl: loss, learning rate, and each eval metric
    /// against step; with several runs each plot overlays one line per run.</summary>
    public static void AddTrainingCurves(Report report, IReadOnlyList<RunData> runs)
    {
        List<PlotSeries> Series(Func<MetricsLine, double?> pick) => runs
            .Select(r => { var pts = r.Steps.Where(s => pick(s) is double v && double.IsFinite(v)).ToList(); return new PlotSeries(r.Name, pts.Select(s => (double)s.Step).ToList(), pts.Select(s => pick(s)!.Value).ToList()); })
            .Where(s => s.X.Count > 0).ToList();
        var loss = Series(s => s.Loss);
        if (loss.Count > 0) report.Blocks.Add(new ReportFigure("Training loss", "loss.png", Plots.LineChart("Training loss", "step", "loss", loss)));
        var lr = Series(s => s.Lr);
        if (lr.Count > 0) report.Blocks.Add(new ReportFigure("Learning rate", "lr.png", Plots.LineChart("Learning rate", "step", "lr", lr)));
        var evalKeys = runs.SelectMany(r => r.Evals.SelectMany(e => e.Metrics.Keys)).Distinct().ToList();
        foreach (var key in evalKeys)
        {
            var series = runs.Select(r =>
            {
                var pts = r.Evals.Where(e => e.Metrics.ContainsKey(key)).ToList();
                return new PlotSeries(r.Name, pts.Select(e => (double)e.Step).ToList(), pts.Select(e => e.Metrics[key]).ToList());
            }).Where(s => s.X.Count > 0).ToList();
            var file = "eval_" + string.Concat(key.Select(c => char.IsLetterOrDigit(c) ? c : '_')) + ".png";
            report.Blocks.Add(new ReportFigure($"Eval {key}", file, Plots.LineChart($"Eval {key}", "step", key, series)));
        }
    }

    /// <summary>The report of one run (its eval.json and curves) or a side-by-side comparison of several:
    /// one metric table with a column per run (the best value per row marked *), overlaid curves, then each run's details.</summary>
    public static Report ForRuns(IReadOnlyList<RunData> runs)
    {
        if (runs.Count == 0) throw new ArgumentException("no runs to report");
        var names = runs.Select(r => r.Name).ToList();
        var report = new Report { Title = runs.Count == 1 ? $"TaskLM run {runs[0].Name}" : $"TaskLM runs compared: {string.Join(", ", names)}" };
        foreach (var r in runs)
        {
            var last = r.Steps.LastOrDefault();
            report.Notes.Add($"{r.Name}: {r.Steps.Count} logged steps" + (last == null ? "" : $", last step {last.Step}" + (last.Loss is double l ? $" (loss {EvalResult.Format(l)})" : ""))
                + $", {r.Evals.Count} eval points" + (r.Eval == null ? ", no eval.json" : ""));
        }
        if (runs.Count == 1)
        {
            if (runs[0].Eval is EvalResult e) AddEval(report, e);
            AddTrainingCurves(report, runs);
            return report;
        }
        var metricNames = runs.Where(r => r.Eval != null).SelectMany(r => r.Eval!.Metrics.Keys).Distinct().ToList();
        if (metricNames.Count > 0)
        {
            var rows = new List<IReadOnlyList<string>>();
            foreach (var m in metricNames)
            {
                var vals = runs.Select(r => r.Eval != null && r.Eval.Metrics.TryGetValue(m, out var v) ? v : (double?)null).ToList();
                bool lowerBetter = LowerIsBetter(m);
                var present = vals.Where(v => v != null).Select(v => v!.Value).ToList();
                double? best = present.Count > 1 ? (lowerBetter ? present.Min() : present.Max()) : null;
                var row = new List<string> { m };
                for (int i = 0; i < runs.Count; i++)
                {
                    var v = vals[i];
                    var cell = v is double d ? EvalResult.Format(d) + (best == d ? " *" : "") : "–";
                    if (v != null && runs[i].Eval!.Intervals.TryGetValue(m, out var ci)) cell += $" [{EvalResult.Format(ci.Low)}, {EvalResult.Format(ci.High)}]";
                    row.Add(cell);
                }
                rows.Add(row);
            }
            report.Blocks.Add(new ReportTable("Metrics side by side (* = best)", ["metric", .. names], rows));
        }
        AddTrainingCurves(report, runs);
        for (int i = 0; i < runs.Count; i++)
            if (runs[i].Eval is EvalResult e) AddEval(report, e, prefix: $"run{i + 1}_", heading: runs[i].Name);
        return report;
    }

    /// <summary>Metrics where smaller is better (losses, perplexity, error rates, bits).</summary>
    public static bool LowerIsBetter(string metric) =>
        metric.Contains("loss", StringComparison.OrdinalIgnoreCase) || metric.Contains("perplexity", StringComparison.OrdinalIgnoreCase)
        || metric.StartsWith("bits_", StringComparison.OrdinalIgnoreCase) || metric.Contains("error", StringComparison.OrdinalIgnoreCase)
        || metric.EndsWith("runtime", StringComparison.OrdinalIgnoreCase);
}
