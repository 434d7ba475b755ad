// `tasklm quickstart` for now: a tiny character-level language model trained on bundled Moby-Dick text.
// Later issues replace it with the full pipeline (pre-trained base model, task fine-tuning, report).
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace TaskLM;

/// <summary>One logged step of the quickstart run.</summary>
public sealed record QuickstartStep(int Step, double Loss, double ElapsedSeconds);

/// <summary>Trains a small character-level MLP language model (context of <c>Context</c> characters,
/// Bengio et al. 2003 style) on the embedded text and reports its training loss as it falls.</summary>
public static class Quickstart
{
    const int Context = 16, Embed = 24, Hidden = 256;

    /// <summary>The bundled training text (Moby-Dick chapters 1-3).</summary>
    public static string LoadText()
    {
        using var s = typeof(Quickstart).Assembly.GetManifestResourceStream("TaskLM.quickstart.txt")
            ?? throw new InvalidOperationException("embedded quickstart text missing");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }

    /// <summary>Runs <paramref name="steps"/> AdamW steps and calls <paramref name="onStep"/> every
    /// <paramref name="logEvery"/> steps. Returns the logged steps.</summary>
    public static List<QuickstartStep> Run(Device device, int steps = 300, int batchSize = 64, int logEvery = 25,
        int seed = 42, Action<QuickstartStep>? onStep = null)
    {
        string text = LoadText();
        char[] vocab = text.Distinct().OrderBy(c => c).ToArray();
        var index = vocab.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => (long)p.i);
        long[] ids = text.Select(c => index[c]).ToArray();

        torch.manual_seed(seed);
        var rng = new Random(seed);
        using var data = tensor(ids);
        using var model = Sequential(
            ("wte", Embedding(vocab.Length, Embed)),
            ("flatten", Flatten()),
            ("fc", Linear(Context * Embed, Hidden)),
            ("act", Tanh()),
            ("head", Linear(Hidden, vocab.Length)));
        model.to(device);
        using var opt = optim.AdamW(model.parameters(), lr: 3e-3, weight_decay: 0.01);
        var log = new List<QuickstartStep>();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        double running = double.NaN;
        for (int step = 1; step <= steps; step++)
        {
            using var scope = NewDisposeScope();
            // (B, Context) windows and the (B,) character that follows each.
            long[] starts = Enumerable.Range(0, batchSize).Select(_ => (long)rng.Next(ids.Length - Context - 1)).ToArray();
            var offsets = arange(Context).unsqueeze(0) + tensor(starts).unsqueeze(1);  // (B, Context)
            var x = data[offsets].to(device);
            var y = data[tensor(starts) + Context].to(device);
            var logits = model.call(x);                                              // (B, V)
            var loss = functional.cross_entropy(logits, y);
            opt.zero_grad();
            loss.backward();
            opt.step();
            double l = loss.item<float>();
            running = double.IsNaN(running) ? l : 0.9 * running + 0.1 * l;
            if (step % logEvery == 0 || step == 1)
            {
                var s = new QuickstartStep(step, step == 1 ? l : running, sw.Elapsed.TotalSeconds);
                log.Add(s);
                onStep?.Invoke(s);
            }
        }
        return log;
    }
}
