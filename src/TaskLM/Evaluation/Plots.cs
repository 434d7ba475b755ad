// PNG plots for reports (training curves, confusion-matrix heat map), drawn with ScottPlot 5 and an embedded font.
using ScottPlot;
using SkiaSharp;

namespace TaskLM.Evaluation;

/// <summary>One line of a line chart.</summary>
public sealed record PlotSeries(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y);

/// <summary>Report plots as PNG bytes. Text uses an embedded DejaVu Sans subset, so plots render the same on
/// a machine with no fonts installed (SkiaSharp's NoDependencies native build has no fontconfig).</summary>
public static class Plots
{
    /// <summary>Font family name the embedded typeface answers to.</summary>
    public const string FontName = "TaskLM DejaVu Sans";

    private static readonly Lazy<SKTypeface> Typeface = new(() =>
    {
        using var s = typeof(Plots).Assembly.GetManifestResourceStream("TaskLM.DejaVuSans-subset.ttf")
            ?? throw new InvalidOperationException("embedded font TaskLM.DejaVuSans-subset.ttf is missing from TaskLM.dll");
        return SKTypeface.FromStream(s) ?? throw new InvalidOperationException("could not load the embedded font");
    });

    private static readonly Lazy<bool> Registered = new(() =>
    {
        Fonts.FontResolvers.Insert(0, new EmbeddedFontResolver());
        Fonts.Default = FontName;
        return true;
    });

    // Answers every font request with the embedded typeface: the same glyphs everywhere, no system lookup.
    private sealed class EmbeddedFontResolver : IFontResolver
    {
        public SKTypeface? CreateTypeface(string fontName, FontWeight weight, FontSlant slant, FontSpacing spacing) => Typeface.Value;
        public SKTypeface? CreateTypeface(string fontName, bool bold, bool italic) => Typeface.Value;
    }

    private static Plot NewPlot()
    {
        _ = Registered.Value;
        var plt = new Plot();
        plt.Font.Set(FontName);
        return plt;
    }

    /// <summary>A line chart (e.g. loss against step) as PNG bytes.</summary>
    public static byte[] LineChart(string title, string xLabel, string yLabel, IReadOnlyList<PlotSeries> series, int width = 720, int height = 400, bool logY = false)
    {
        var plt = NewPlot();
        foreach (var s in series)
        {
            if (s.X.Count == 0) continue;
            var ys = s.Y.Select(y => logY ? Math.Log10(Math.Max(y, 1e-12)) : y).ToArray();
            var line = plt.Add.ScatterLine(s.X.ToArray(), ys);
            line.LegendText = s.Name;
            line.LineWidth = 2;
            if (s.X.Count < 30) line.MarkerSize = 5;
        }
        plt.Title(title);
        plt.XLabel(xLabel);
        plt.YLabel(logY ? yLabel + " (log10)" : yLabel);
        if (series.Count > 1) plt.ShowLegend(Alignment.UpperRight);
        return plt.GetImageBytes(width, height, ImageFormat.Png);
    }

    /// <summary>Points without lines (one colour per series), plus optional line series such as a running best, as PNG
    /// bytes; <paramref name="logX"/> plots log10 of x (a log-scale hyperparameter).</summary>
    public static byte[] ScatterChart(string title, string xLabel, string yLabel, IReadOnlyList<PlotSeries> points, IReadOnlyList<PlotSeries>? lines = null, bool logX = false, int width = 720, int height = 400,
        bool integerX = false)
    {
        var plt = NewPlot();
        // Counted things (trial numbers) get whole-number ticks: "trial 2.5" was drawn.
        if (integerX) plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        int shown = 0;
        foreach (var s in points)
        {
            if (s.X.Count == 0) continue;
            var sc = plt.Add.Scatter(s.X.Select(x => logX ? Math.Log10(Math.Max(x, 1e-300)) : x).ToArray(), s.Y.ToArray());
            sc.LineWidth = 0;
            sc.MarkerSize = 8;
            sc.LegendText = s.Name;
            shown++;
        }
        foreach (var s in lines ?? [])
        {
            if (s.X.Count == 0) continue;
            var line = plt.Add.ScatterLine(s.X.Select(x => logX ? Math.Log10(Math.Max(x, 1e-300)) : x).ToArray(), s.Y.ToArray());
            line.LineWidth = 2;
            line.LegendText = s.Name;
            shown++;
        }
        plt.Title(title);
        plt.XLabel(logX ? xLabel + " (log10)" : xLabel);
        plt.YLabel(yLabel);
        if (shown > 1) plt.ShowLegend(Alignment.LowerRight);
        return plt.GetImageBytes(width, height, ImageFormat.Png);
    }

    /// <summary>A confusion matrix heat map (rows gold, columns predicted, counts written in the cells) as PNG bytes.</summary>
    public static byte[] ConfusionMatrix(IReadOnlyList<string> labels, int[,] matrix, int size = 560)
    {
        int k = labels.Count;
        if (matrix.GetLength(0) != k || matrix.GetLength(1) != k)
            throw new ArgumentException($"confusion matrix is {matrix.GetLength(0)}x{matrix.GetLength(1)} but there are {k} labels");
        var plt = NewPlot();
        // Row-normalised intensities so a rare class is as readable as a frequent one; the counts are printed.
        var data = new double[k, k];
        for (int r = 0; r < k; r++)
        {
            double sum = 0;
            for (int c = 0; c < k; c++) sum += matrix[r, c];
            for (int c = 0; c < k; c++) data[r, c] = sum == 0 ? 0 : matrix[r, c] / sum;
        }
        var hm = plt.Add.Heatmap(data);
        hm.Colormap = new ScottPlot.Colormaps.Blues().Reversed(); // dark = high fraction
        hm.ManualRange = new ScottPlot.Range(0, 1);
        plt.Add.ColorBar(hm);
        // ScottPlot draws row 0 at the top; cell (r, c) is centred at x = c, y = k - 1 - r.
        for (int r = 0; r < k; r++)
            for (int c = 0; c < k; c++)
            {
                var t = plt.Add.Text(matrix[r, c].ToString(), c, k - 1 - r);
                t.LabelFontSize = k > 12 ? 9 : 14;
                t.LabelFontColor = data[r, c] > 0.5 ? Colors.White : Colors.Black;
                t.LabelAlignment = Alignment.MiddleCenter;
            }
        var pos = Enumerable.Range(0, k).Select(i => (double)i).ToArray();
        plt.Axes.Bottom.SetTicks(pos, labels.ToArray());
        plt.Axes.Left.SetTicks(pos, labels.Reverse().ToArray());
        plt.Title("Confusion matrix (colour: fraction of the gold row)");
        plt.XLabel("predicted");
        plt.YLabel("gold");
        return plt.GetImageBytes(size + 120, size, ImageFormat.Png);
    }
}
