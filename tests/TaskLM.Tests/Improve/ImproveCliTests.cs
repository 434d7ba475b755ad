// The improvement loop end to end on the shipped spam corpus with tiny models: compare (2 models, every column, and the
// measured speed `tasklm models` then shows), learning-curve (3 stratified nested fractions), augment (eda and lm rows
// that `tasklm data clean` keeps next to the real data), refine (one promotion, one refusal for forgetting).
using System.Text.Json.Nodes;
using System.Xml.Linq;
using TaskLM.Improve;
using TaskLM.Training;
using TaskLM.Tests.Cli;

namespace TaskLM.Tests.Improve;

[Collection(RecipeCollection.Name)]
public class ImproveCliTests
{
    static readonly string Spam = Path.Combine(RecipeWorkspace.RecipesDir, "spam.yaml");

    /// <summary>Mixed samples of the spam splits (they list all ham first) and a disjoint "new data" sample of the training split.</summary>
    static readonly Lazy<(string train, string val, string test, string fresh)> Small = new(() =>
    {
        RecipeWorkspace.Prepare(Spam);
        string dir = Path.Combine(RecipeWorkspace.Dir, "improve-small");
        Directory.CreateDirectory(dir);
        string splits = Path.Combine(RecipeWorkspace.Dir, "data/spam-assassin/splits");
        var train = File.ReadAllLines(Path.Combine(splits, "train.jsonl"));
        new Random(7).Shuffle(train);
        string Write(string name, IEnumerable<string> rows) { string p = Path.Combine(dir, name); File.WriteAllLines(p, rows); return p; }
        string Sample(string split, int n)
        {
            var rows = File.ReadAllLines(Path.Combine(splits, split + ".jsonl"));
            new Random(7).Shuffle(rows);
            return Write(split + ".jsonl", rows.Take(n));
        }
        return (Write("train.jsonl", train.Take(320)), Sample("validation", 120), Sample("test", 120), Write("new.jsonl", train.Skip(320).Take(200)));
    });

    static List<string> Data() => [$"data.train={Small.Value.train}", $"data.validation={Small.Value.val}", $"data.test={Small.Value.test}"];

    static readonly string[] OneLayer = ["model.config.n_layer=1", "model.config.n_embd=32", "model.config.n_head=2"];

    static List<string> Short(int steps, int evalEvery) =>
        ["data.max_length=32", "training.batch_size=4", "training.eval_batch_size=64", $"training.max_steps={steps}", $"training.eval_every={evalEvery}",
         "training.save_every=0", "training.tensorboard=false"];

    // Refine needs a champion that has learned something and challengers that move: 64 tokens, batches of 16.
    static List<string> Longer(int steps, int evalEvery) =>
        ["data.max_length=64", "training.batch_size=16", "training.eval_batch_size=64", $"training.max_steps={steps}", $"training.eval_every={evalEvery}",
         "training.save_every=0", "training.tensorboard=false"];

    static CliResult Tasklm(IEnumerable<string> args, Dictionary<string, string?>? env = null) =>
        CliRunner.Run([.. args, "--threads", "1"], env, timeoutSeconds: 900, workingDirectory: RecipeWorkspace.Dir);

    static string Fresh(string name)
    {
        string d = Path.Combine(RecipeWorkspace.Dir, "improve", name);
        if (Directory.Exists(d)) Directory.Delete(d, recursive: true);
        return d;
    }

    static void AssertSvg(string path)
    {
        Assert.True(File.Exists(path), path);
        var svg = XDocument.Load(path).Root!;   // well-formed XML
        Assert.Equal("svg", svg.Name.LocalName);
        Assert.Contains(svg.Descendants(), e => e.Name.LocalName == "circle");
    }

    [Fact]
    public void Compare_checks_every_model_before_training_and_a_model_that_fails_is_an_error()
    {
        // Audit BAD 2: a typo'd preset was found after the other model trained, and the run exited 0 recommending it.
        string dir = Fresh("compare-typo");
        var r = Tasklm(["compare", Spam, "--models", "gpt2-tiny,gpt9-huge", "--budget", "2steps", "--out", dir, .. Data(), .. Short(100, 2)]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("gpt9-huge: unknown model preset 'gpt9-huge'", r.Stderr);
        Assert.Contains("nothing was trained", r.Stderr);
        Assert.False(Directory.Exists(Path.Combine(dir, "runs")));
        // --keep-going compares the model that can run; the failure is still a row, named on stderr, and exit 1.
        var k = Tasklm(["compare", Spam, "--models", "gpt2-tiny,gpt9-huge", "--budget", "2steps", "--out", dir, "--keep-going", "--json", .. Data(), .. Short(100, 2)]);
        Assert.Equal(1, k.ExitCode);
        Assert.Contains("error: gpt9-huge:", k.Stderr);
        var json = JsonNode.Parse(k.Stdout)!.AsObject();
        Assert.Equal(1, (int)json["failed"]!);
        Assert.NotEqual("gpt9-huge", json["recommendation"]!["model"]!.GetValue<string>());
        Assert.NotNull(json["rows"]![1]!["error"]);
    }

    [Fact]
    public void Compare_two_models_writes_every_column_and_models_then_shows_the_measured_speed()
    {
        string dir = Fresh("compare");
        string speeds = Path.Combine(dir + "-speeds.jsonl");
        if (File.Exists(speeds)) File.Delete(speeds);
        var env = new Dictionary<string, string?> { [MeasuredSpeeds.PathEnv] = speeds };
        // gpt2-tiny at its own shape (so its speed is recorded for `tasklm models`) and the shipped encoder.
        var r = Tasklm(["compare", Spam, "--models", "gpt2-tiny,models/tasklm-bert-mini", "--budget", "4steps", "--out", dir, "--json", .. Data(), .. Short(100, 2)], env);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonNode.Parse(r.Stdout)!.AsObject();
        var onDisk = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "compare.json")))!;
        Assert.Equal(json.ToJsonString(), onDisk.ToJsonString());
        var rows = json["rows"]!.AsArray().Select(x => x!.AsObject()).ToList();
        Assert.Equal(["gpt2-tiny", "models/tasklm-bert-mini"], rows.Select(x => x["model"]!.GetValue<string>()));
        foreach (var row in rows)
        {
            Assert.Null(row["error"]);
            foreach (var c in Compare.Columns) Assert.True(row[c] != null, $"{row["model"]}: column {c} missing");
            double v = Io.D(row["value"]), lo = Io.D(row["ci_low"]), hi = Io.D(row["ci_high"]);
            Assert.InRange(v, 0, 1);
            Assert.True(lo <= v && v <= hi, $"{lo} <= {v} <= {hi}");
            Assert.Equal(4, (int)Io.D(row["steps"]));                       // the same budget for both
            Assert.Equal(120, (int)Io.D(row["test_n"]));
            foreach (var k in new[] { "parameters", "train_wall_s", "train_tokens_per_s", "latency_ms_batch1", "throughput_batch1", "throughput_batch32", "peak_rss_bytes" })
                Assert.True(Io.D(row[k]) > 0, $"{row["model"]}: {k} = {row[k]}");
            Assert.True(Directory.Exists(Path.Combine(row["run_dir"]!.GetValue<string>(), "best")));
        }
        // The parameter counts are the models' own: gpt2-tiny (GPT-2 vocabulary) is the larger here.
        Assert.True(Io.D(rows[0]["parameters"]) > Io.D(rows[1]["parameters"]));
        // A model, or the in-run baseline when it beats every model (these 4-step models may well lose to it).
        Assert.Contains(json["recommendation"]!["model"]!.GetValue<string>(), rows.Select(x => x["model"]!.GetValue<string>()).Append(Compare.BaselineName));
        Assert.False(string.IsNullOrWhiteSpace(json["recommendation"]!["reason"]!.GetValue<string>()));
        string md = File.ReadAllText(Path.Combine(dir, "compare.md"));
        Assert.Contains("| gpt2-tiny |", md);
        Assert.Contains("| models/tasklm-bert-mini |", md);
        AssertSvg(Path.Combine(dir, "plots", "metric-vs-parameters.svg"));
        AssertSvg(Path.Combine(dir, "plots", "metric-vs-latency.svg"));

        // `tasklm models` shows gpt2-tiny's measured speed (the only preset measured) and estimates the rest.
        var m = Tasklm(["models", "--json"], env);
        Assert.True(m.ExitCode == 0, m.Stderr);
        var presets = JsonNode.Parse(m.Stdout)!["presets"]!.AsArray();
        var tiny = presets.First(p => p!["name"]!.GetValue<string>() == "gpt2-tiny")!;
        Assert.Equal("measured", tiny["tokens_per_second_source"]!.GetValue<string>());
        Assert.Equal(Io.D(rows[0]["train_tokens_per_s"]), Io.D(tiny["train_tokens_per_second"]), 1);
        Assert.All(presets.Where(p => p!["name"]!.GetValue<string>() != "gpt2-tiny"), p => Assert.Equal("estimate", p!["tokens_per_second_source"]!.GetValue<string>()));
    }

    [Fact]
    public void Learning_curve_trains_three_nested_stratified_fractions_for_model_and_baseline()
    {
        string dir = Fresh("curve");
        var r = Tasklm(["learning-curve", Spam, "--fractions", "0.25,0.5,1", "--metric", "macro_f1", "--out", dir, "--json", .. Data(), .. OneLayer, .. Short(6, 3)]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonNode.Parse(r.Stdout)!.AsObject();
        var points = json["points"]!.AsArray();
        Assert.Equal([0.25, 0.5, 1.0], points.Select(p => Io.D(p!["fraction"])));
        // Stratified: ceil(f · n_label) rows of each label of the 320-row sample.
        var all = File.ReadAllLines(Small.Value.train).Select(l => JsonNode.Parse(l)!["label"]!.GetValue<string>()).ToList();
        int ham = all.Count(x => x == "ham"), spam = all.Count - ham;
        Assert.Equal(new[] { 0.25, 0.5, 1.0 }.Select(f => (int)Math.Ceiling(f * ham) + (int)Math.Ceiling(f * spam)), points.Select(p => (int)Io.D(p!["train_examples"])));
        // Nested: the 25% sample is inside the 50% one, which is inside the whole file.
        HashSet<string> Ids(string f) => File.ReadAllLines(Path.Combine(dir, "data", $"train-f{f}-s42.jsonl")).Select(l => JsonNode.Parse(l)!["id"]!.GetValue<string>()).ToHashSet();
        Assert.True(Ids("0.25").IsSubsetOf(Ids("0.5")));
        Assert.True(Ids("0.5").IsSubsetOf(Ids("1")));
        Assert.Equal(320, Ids("1").Count);
        foreach (var p in points.Concat(json["baseline_points"]!.AsArray()))
            Assert.True(Io.D(p!["low"]) <= Io.D(p["mean"]) && Io.D(p["mean"]) <= Io.D(p["high"]));
        Assert.Equal(3, json["runs"]!.AsArray().Count);
        Assert.NotNull(json["verdict"]!["rising"]);
        Assert.NotNull(json["baseline_verdict"]!["rising"]);
        AssertSvg(Path.Combine(dir, "plots", "learning-curve.svg"));
        Assert.Contains(json["verdict"]!["text"]!.GetValue<string>(), File.ReadAllText(Path.Combine(dir, "learning-curve.md")));
    }

    [Fact]
    public void Learning_curve_without_a_validation_file_holds_one_out_once_for_every_fraction()
    {
        // Audit: each fraction's run held out its own share of its subset (34 rows at 25%) while the baseline fitted on
        // every row; now one validation set is held out of the training file first, and the fractions come from the rest.
        string dir = Fresh("curve-val");
        var r = Tasklm(["learning-curve", Spam, "--fractions", "0.5,1", "--metric", "macro_f1", "--out", dir, "--json",
            $"data.train={Small.Value.train}", "data.validation=null", "data.validation_split=0.1", $"data.test={Small.Value.test}", .. OneLayer, .. Short(2, 2)]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        string val = Path.Combine(dir, "data", "validation.jsonl");
        HashSet<string> Ids(string path) => File.ReadAllLines(path).Select(l => JsonNode.Parse(l)!["id"]!.GetValue<string>()).ToHashSet();
        var held = Ids(val);
        Assert.Equal(32, held.Count);   // 10% of the 320-row sample, stratified
        foreach (var f in new[] { "0.5", "1" })
        {
            Assert.Empty(Ids(Path.Combine(dir, "data", $"train-f{f}-s42.jsonl")).Intersect(held));
            Assert.Contains(val, File.ReadAllText(Path.Combine(dir, "runs", $"f{f}-s42", "recipe.resolved.yaml")));
        }
        Assert.Equal(288, (int)Io.D(JsonNode.Parse(r.Stdout)!["points"]![1]!["train_examples"]));
    }

    /// <summary>Runs `tasklm data clean` over real training rows, the test split and the new rows (in that order) and
    /// returns the removed rows: the new rows must survive data clean's own checks against the real data.</summary>
    static List<JsonObject> CleanRemoves(string dir, string newRows)
    {
        string all = Path.Combine(dir, "real-then-new.jsonl");
        File.WriteAllLines(all, File.ReadAllLines(Small.Value.train).Concat(File.ReadAllLines(Small.Value.test)).Concat(File.ReadAllLines(newRows)));
        string removed = Path.Combine(dir, "removed.jsonl");
        var c = CliRunner.Run(["data", "clean", all, "--out", Path.Combine(dir, "cleaned.jsonl"), "--removed", removed, "--json"], workingDirectory: RecipeWorkspace.Dir);
        Assert.True(c.ExitCode == 0, c.Stderr);
        return File.ReadAllLines(removed).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
    }

    [Fact]
    public void Augment_eda_writes_seeded_new_rows_that_data_clean_keeps()
    {
        string dir = Fresh("augment-eda");
        Directory.CreateDirectory(dir);
        string outA = Path.Combine(dir, "a.jsonl"), outB = Path.Combine(dir, "b.jsonl");
        var r = CliRunner.Run(["augment", Small.Value.train, "--out", outA, "--method", "eda", "--per-example", "2", "--against", Small.Value.test, "--only-new", "--json"], workingDirectory: RecipeWorkspace.Dir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var report = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(640, (int)Io.D(report["candidates"]));
        var rows = File.ReadAllLines(outA).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal((int)Io.D(report["new_rows"]), rows.Count);
        Assert.True(rows.Count > 600, $"{rows.Count} of 640 EDA rows kept");   // a 10% edit of an e-mail is rarely a near-duplicate
        var real = File.ReadAllLines(Small.Value.train).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        foreach (var row in rows)
        {
            Assert.Equal("eda", row["augmented"]!.GetValue<string>());
            var src = real[(int)Io.D(row["source_row"]) - 1];
            Assert.Equal(src["label"]!.GetValue<string>(), row["label"]!.GetValue<string>());   // the label travels with its text
            Assert.NotEqual(src["text"]!.GetValue<string>(), row["text"]!.GetValue<string>());
        }
        Assert.DoesNotContain(CleanRemoves(dir, outA), x => x["augmented"] != null);
        // Seeded: the same call writes the same rows; another seed writes others.
        Assert.Equal(0, CliRunner.Run(["augment", Small.Value.train, "--out", outB, "--method", "eda", "--per-example", "2", "--against", Small.Value.test, "--only-new"], workingDirectory: RecipeWorkspace.Dir).ExitCode);
        Assert.Equal(File.ReadAllText(outA), File.ReadAllText(outB));
        Assert.Equal(0, CliRunner.Run(["augment", Small.Value.train, "--out", outB, "--method", "eda", "--per-example", "2", "--only-new", "--seed", "7"], workingDirectory: RecipeWorkspace.Dir).ExitCode);
        Assert.NotEqual(File.ReadAllText(outA), File.ReadAllText(outB));
    }

    [Fact]
    public void Augment_lm_fine_tunes_the_shipped_decoder_and_keeps_confident_rows_that_data_clean_keeps()
    {
        string dir = Fresh("augment-lm");
        Directory.CreateDirectory(dir);
        // 60 real rows (both labels), one epoch, short generations: the mechanics, not the quality.
        var lines = File.ReadAllLines(Small.Value.train);
        string input = Path.Combine(dir, "real.jsonl");
        File.WriteAllLines(input, lines.Where(l => l.Contains("\"label\":\"spam\"")).Take(30).Concat(lines.Where(l => l.Contains("\"label\":\"ham\"")).Take(30)));
        string outPath = Path.Combine(dir, "lm.jsonl");
        var r = Tasklm(["augment", input, "--out", outPath, "--method", "lm", "--per-example", "1", "--generator-epochs", "1", "--max-new-tokens", "24",
            "--min-confidence", "0.4", "--against", Small.Value.test, "--json"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var report = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(60, (int)Io.D(report["generated"]));
        Assert.True(Directory.Exists(Path.Combine(dir, "lm.lm", "generator", "checkpoints")));
        var written = File.ReadAllLines(outPath).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal(60, written.Count(x => x["augmented"] == null));   // the real rows first, as they were
        var fresh = written.Where(x => x["augmented"] != null).ToList();
        Assert.True(fresh.Count > 0, "no generated row was kept");
        // Every generated row is accounted for: kept, below the confidence threshold, empty, or removed by the checks.
        int removed = report["removed_by_cleaning"]!.AsObject().Sum(kv => (int)Io.D(kv.Value));
        Assert.Equal(60, fresh.Count + (int)Io.D(report["below_confidence"]) + (int)Io.D(report["empty"]) + removed);
        Assert.All(fresh, x => Assert.True(Io.D(x["confidence"]) >= 0.4));
        Assert.All(fresh, x => Assert.Contains(x["label"]!.GetValue<string>(), new[] { "ham", "spam" }));
        File.WriteAllLines(Path.Combine(dir, "new-only.jsonl"), fresh.Select(x => x.ToJsonString()));
        Assert.DoesNotContain(CleanRemoves(dir, Path.Combine(dir, "new-only.jsonl")), x => x["augmented"] != null);
    }

    [Fact]
    public void Refine_promotes_a_challenger_that_learns_the_new_data_and_refuses_one_that_forgets_the_old()
    {
        string root = Fresh("refine");
        var t = Tasklm(["train", Spam, .. Data(), .. OneLayer, .. Longer(40, 20), $"output_dir={root}"]);
        Assert.True(t.ExitCode == 0, t.Stderr);

        // 1: more data of the same kind, with replay: better on the new split, not worse on the old → promoted.
        var r1 = Tasklm(["refine", "--model", root, "--data", Small.Value.fresh, "--metric", "macro_f1", "--json", .. Longer(30, 10)]);
        Assert.True(r1.ExitCode == 0, r1.Stderr);
        var a = JsonNode.Parse(r1.Stdout)!;
        Assert.True(a["decision"]!.GetValue<string>() == "promote", a["reason"]!.ToString());
        Assert.Equal("best", a["champion_model"]!.GetValue<string>().Split('/', '\\')[^1]);
        // The 200 new rows: stratified test split, a validation slice, the rest trains (with replayed old rows beside it).
        var rows = a["rows"]!;
        Assert.Equal(200, (int)(Io.D(rows["new_train"]) + Io.D(rows["new_validation"]) + Io.D(rows["new_test"])));
        Assert.Equal(Io.D(rows["validation"]), Io.D(rows["new_validation"]) + Io.D(rows["old_validation"]));
        Assert.InRange((int)Io.D(rows["new_test"]), 38, 42);
        Assert.True(Io.D(rows["replayed"]) > 0);
        var champion = JsonNode.Parse(File.ReadAllText(Path.Combine(root, "champion.json")))!;
        Assert.Equal(1, (int)Io.D(champion["refinement"]));
        Assert.True(File.Exists(Path.Combine(root, champion["model"]!.GetValue<string>(), "config.json")));

        // 2: the new data's labels flipped (a conflicting source), no replay: it learns them and forgets the old task → refused.
        string flipped = Path.Combine(Path.GetDirectoryName(root)!, "flipped.jsonl");
        File.WriteAllLines(flipped, File.ReadAllLines(Small.Value.fresh).Select(l =>
        {
            var o = JsonNode.Parse(l)!.AsObject();
            o["label"] = o["label"]!.GetValue<string>() == "spam" ? "ham" : "spam";
            return o.ToJsonString();
        }));
        var r2 = Tasklm(["refine", "--model", root, "--data", flipped, "--replay", "0", "--metric", "macro_f1", "--json", .. Longer(40, 20)]);
        Assert.True(r2.ExitCode == 0, r2.Stderr);
        var b = JsonNode.Parse(r2.Stdout)!;
        Assert.True(b["decision"]!.GetValue<string>() == "refuse", b["reason"]!.ToString());
        Assert.Contains("forgetting", b["reason"]!.GetValue<string>());
        Assert.True(Io.D(b["scores"]!["new_test"]!["difference"]!["estimate"]) > 0);     // it did learn the new labels
        Assert.Equal(0, (int)Io.D(b["rows"]!["replayed"]));
        // It started from the promoted champion, and the champion stays.
        Assert.Equal(Path.GetFullPath(Path.Combine(root, "refinements", "1", "run", "best")),
            Path.GetFullPath(Path.Combine(root, "refinements", "2", b["champion_model"]!.GetValue<string>())));
        Assert.Equal(champion.ToJsonString(), JsonNode.Parse(File.ReadAllText(Path.Combine(root, "champion.json")))!.ToJsonString());

        var lineage = JsonNode.Parse(File.ReadAllText(Path.Combine(root, "lineage.json")))!;
        Assert.Equal(["promote", "refuse"], lineage["refinements"]!.AsArray().Select(x => x!["decision"]!.GetValue<string>()));
        foreach (int n in new[] { 1, 2 })
        {
            var rec = JsonNode.Parse(File.ReadAllText(Path.Combine(root, "refinements", n.ToString(), "refinement.json")))!;
            Assert.Equal(n == 1 ? "promote" : "refuse", rec["decision"]!.GetValue<string>());
            Assert.True(File.Exists(Path.Combine(root, "refinements", n.ToString(), "report.md")));
        }
        // The run's report carries the lineage once, with both decisions.
        string report = File.ReadAllText(Path.Combine(root, "report.md"));
        Assert.Equal(1, report.Split("## Refinements").Length - 1);
        Assert.Contains("| 1 | promote |", report);
        Assert.Contains("| 2 | refuse |", report);
    }
}
