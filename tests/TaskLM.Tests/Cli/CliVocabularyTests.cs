// One CLI vocabulary: the model is `--model SPEC` on every verb that takes one, other inputs positional, every output
// `--out`, overrides key=value, short usage errors that name the problem, help that says `tasklm`, model options only on
// model verbs, tables that never wrap in a pipe.
using System.Text.Json.Nodes;

namespace TaskLM.Tests.Cli;

public class CliVocabularyTests
{
    static readonly string[][] Verbs =
    [
        ["logits"], ["generate"], ["evaluate"], ["train"], ["report"], ["tokenize"], ["tokenizer", "train"],
        ["data", "import"], ["data", "clean"], ["data", "split"], ["data", "scrape"], ["data", "encode"], ["data", "brown-pos"],
        ["data", "brown-genre"], ["tune"], ["quickstart"], ["export"], ["compare"], ["learning-curve"], ["augment"], ["predict"],
    ];

    static string Help(params string[] verb) => CliRunner.Run([.. verb, "--help"]).Stdout;

    static void AssertUsageError(CliResult r, string verb, params string[] words)
    {
        Assert.NotEqual(0, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.InRange(lines.Length, 1, 6);   // the error, up to three more explained ("also: ..."), a count, the help hint
        Assert.StartsWith("error: ", lines[0]);
        Assert.Equal($"see 'tasklm {verb}--help'", lines[^1].Trim());
        foreach (var w in words) Assert.Contains(w, r.Stderr);
        Assert.DoesNotContain("Usage:", r.Stderr + r.Stdout);   // never the whole help
    }

    [Fact]
    public void EveryVerbsHelpSaysTasklmAndWritesItsOutputWithOut()
    {
        var root = CliRunner.Run("--help");
        Assert.Contains("tasklm [command] [options]", root.Stdout);
        Assert.DoesNotContain("TaskLM.Cli", root.Stdout);
        foreach (var verb in Verbs)
        {
            string help = Help(verb);
            Assert.Contains($"tasklm {string.Join(" ", verb)}", help);
            Assert.DoesNotContain("TaskLM.Cli", help);
            foreach (var old in new[] { "--output", "--out-dir", "--set ", "--input ", "--study-dir" }) Assert.DoesNotContain(old, help);
        }
        foreach (var writes in new[] { ["logits"], ["evaluate"], ["report"], ["tokenizer", "train"], ["data", "import"], ["data", "clean"], ["data", "split"], ["data", "scrape"], ["data", "encode"], ["data", "brown-pos"],
            ["data", "brown-genre"], ["tune"], ["quickstart"], ["export"], ["compare"], ["learning-curve"], ["augment"], new[] { "predict" } })
            Assert.Contains("--out ", Help(writes));
    }

    [Fact]
    public void ModelOptionsAreListedOnlyOnVerbsThatRunAModel()
    {
        foreach (var verb in new[] { ["data", "split"], ["data", "clean"], ["tokenize"], ["metrics", "bleu"], ["report"], ["recipes"], ["recipe", "validate"], ["recipe", "copy"], ["models", "pull"], ["models", "list"], new[] { "models", "rm" } })
            Assert.DoesNotContain("--device", Help(verb));
        foreach (var verb in new[] { ["train"], ["evaluate"], ["logits"], ["generate"], ["models"], new[] { "env" } })
            Assert.Contains("--device", Help(verb));
        Assert.Contains("--threads", Help("data", "encode"));   // its worker count
        AssertUsageError(CliRunner.Run("data", "split", "in.jsonl", "--out", "x", "--device", "cpu"), "data split ", "unknown option '--device'");
    }

    [Fact]
    public void WrongOptionsAndValuesAreAFewLinesNamingThem()
    {
        AssertUsageError(CliRunner.Run("data", "split", "in.jsonl", "--out", "x", "--ratio", "0.5,0.5"), "data split ", "unknown option '--ratio'", "did you mean '--ratios'?");
        AssertUsageError(CliRunner.Run("trian", "r.yaml"), "", "unknown command 'trian'", "did you mean 'train'?");
        AssertUsageError(CliRunner.Run("generate", "m", "--prompt-ids", "1", "--top-k", "abc"), "generate ", "--top-k expects an integer, got 'abc'");
        AssertUsageError(CliRunner.Run("data", "split", "in.jsonl"), "data split ", "missing option --out");
        AssertUsageError(CliRunner.Run("logits"), "logits ", "missing option --model");
        AssertUsageError(CliRunner.Run("evaluate", "run-folder"), "evaluate ", "missing DATA");
        AssertUsageError(CliRunner.Run("logits", "m", "in.json", "extra.json", "--out", "o.json"), "logits ", "unexpected argument 'extra.json'");
        // The other problems are shown, not counted; an unknown option swallowed as a positional value is named first;
        // an option-looking token among train's key=value overrides is the unknown option it is.
        AssertUsageError(CliRunner.Run("trian", "r.yaml"), "", "also: unknown command 'r.yaml'");
        Assert.DoesNotContain("more problem", CliRunner.Run("trian", "r.yaml").Stderr);
        var txt = CliRunner.Run("predict", "--model", "m", "--txt", "hello");
        AssertUsageError(txt, "predict ", "unknown option '--txt' (did you mean '--text'?)", "also: unexpected argument 'hello'");
        Assert.StartsWith("error: unknown option '--txt'", txt.Stderr);
        AssertUsageError(CliRunner.Run("train", "r.yaml", "--thread", "1"), "train ", "unknown option '--thread' (did you mean '--threads'?)");
    }

    [Fact]
    public void UsageLinesNameThePositionalInputsAsTheArgumentsSectionDoes()
    {
        foreach (var (verb, name) in new[] { ("logits", "<INPUT>"), ("evaluate", "<DATA>"), ("refine", "<DATA>") })
        {
            string help = Help(verb);
            Assert.Contains($"tasklm {verb} --model <SPEC> [{name}...]", help);
            Assert.DoesNotContain("<inputs>", help);
            Assert.DoesNotContain("<MODEL", help);
        }
        Assert.Contains("tasklm generate --model <SPEC> [options]", Help("generate"));
    }

    /// <summary>Every verb that takes a model, with the least else it needs to get as far as resolving it.</summary>
    static readonly string[][] ModelVerbs =
    [
        ["logits", "IN", "--out", "OUT"], ["generate", "--prompt-ids", "1,2"], ["evaluate", "DATA"], ["predict", "--text", "hi"],
        ["serve", "--port", "0"], ["export", "--format", "hf", "--out", "OUT"], ["refine", "DATA"], ["models", "import"],
        ["bench", "predict"], ["bench", "train"], ["bench", "generate"],
    ];

    static string[] VerbOf(string[] args) => args.TakeWhile(a => !a.StartsWith('-') && a is not ("IN" or "DATA" or "OUT")).ToArray();

    [Fact]
    public void EveryVerbThatTakesAModelShowsModelSpecInItsHelp()
    {
        foreach (var args in ModelVerbs.Append(["quickstart"]))
        {
            string[] verb = VerbOf(args);
            string help = Help(verb);
            Assert.Contains(help.Split('\n'), l => l.TrimStart().StartsWith("--model", StringComparison.Ordinal) && l.Contains("<SPEC>"));
        }
        // Where the model is required, the usage line shows it as the one way to give it; the older positional
        // spelling (still read) is never shown.
        foreach (var args in ModelVerbs.Where(a => a[0] != "bench" || a[1] == "predict"))
        {
            string[] verb = VerbOf(args);
            string help = Help(verb);
            Assert.Contains($"tasklm {string.Join(" ", verb)} --model <SPEC> ", help);
            Assert.DoesNotContain("MODEL", help);
            Assert.DoesNotContain("RUN", help);
        }
    }

    [Fact]
    public void EveryVerbThatTakesAModelAcceptsModel()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-vocab").FullName;
        try
        {
            string input = Path.Combine(dir, "in.json"), data = Path.Combine(dir, "data.jsonl"), missing = Path.Combine(dir, "no-such-model");
            File.WriteAllText(input, "{\"input_ids\": [[1, 2, 3]]}");
            File.WriteAllText(data, "{\"text\": \"hello\", \"label\": \"a\"}\n");
            foreach (var args in ModelVerbs)
            {
                string[] verb = VerbOf(args);
                var rest = args.Skip(verb.Length).Select(a => a switch { "IN" => input, "DATA" => data, "OUT" => Path.Combine(dir, "out"), _ => a });
                // A model that does not exist: the verb took --model and went on to resolve it (no usage error).
                var r = CliRunner.Run([.. verb, "--model", missing, .. rest, "--device", "cpu", "--threads", "1"], timeoutSeconds: 120);
                string what = string.Join(" ", verb);
                Assert.True(r.ExitCode != 0, $"{what}: {r.Stdout}");
                Assert.Contains("no-such-model", r.Stderr);
                Assert.DoesNotContain("unknown option", r.Stderr);
                Assert.DoesNotContain("missing option --model", r.Stderr);
                Assert.DoesNotContain("see 'tasklm", r.Stderr);
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void TheModelPositionallyStillWorksAndGivenTwiceMustAgree()
    {
        string model = Path.Combine(AppContext.BaseDirectory, "fixtures", "hf", "gpt2-tiny");
        string[] rest = ["--prompt-ids", "1,2", "--max-new-tokens", "3", "--json", "--device", "cpu", "--threads", "1"];
        static string NewIds(CliResult r)
        {
            Assert.True(r.ExitCode == 0, r.Stderr);
            return JsonNode.Parse(r.Stdout)!["new_ids"]!.ToJsonString();
        }
        string withOption = NewIds(CliRunner.Run(["generate", "--model", model, .. rest]));
        Assert.Equal(withOption, NewIds(CliRunner.Run(["generate", model, .. rest])));                      // scripts of the older form
        Assert.Equal(withOption, NewIds(CliRunner.Run(["generate", "--model", model, model + "/", .. rest])));   // both, the same model
        AssertUsageError(CliRunner.Run(["generate", "--model", model, "gpt2-mini", .. rest]), "generate ", "the model is given twice", "'gpt2-mini'", "--model");
        AssertUsageError(CliRunner.Run("evaluate", "--model", model, "other-run", "data.jsonl"), "evaluate ", "the model is given twice", "'other-run'");
    }

    [Fact]
    public void EvaluateTakesRecipeOverridesPositionallyAsTrainDoes()
    {
        string dir = Directory.CreateTempSubdirectory("tasklm-vocab").FullName;
        try
        {
            string data = Path.Combine(dir, "test.jsonl");
            File.WriteAllText(data, "{\"input_ids\": [1, 2, 3], \"labels\": 0}\n");
            var r = CliRunner.Run("evaluate", Path.Combine(AppContext.BaseDirectory, "fixtures", "hf", "gpt2-cls"), data, "data.text_colum=body", "--device", "cpu", "--threads", "1");
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("data.text_colum", r.Stderr);
            Assert.Contains("did you mean 'data.text_column'", r.Stderr);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void BlackBoxSpellingsOfLogitsStillWork()
    {
        // DESIGN's contract `tasklm logits --model M --input I --output O` keeps working (hidden from help).
        var exp = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures", "hf", "gpt2-cls.expected.json")))!;
        string dir = Directory.CreateTempSubdirectory("tasklm-vocab").FullName;
        try
        {
            string input = Path.Combine(dir, "in.json"), output = Path.Combine(dir, "out.json");
            File.WriteAllText(input, new JsonObject { ["input_ids"] = exp["input_ids"]!.DeepClone(), ["attention_mask"] = exp["attention_mask"]!.DeepClone() }.ToJsonString());
            var r = CliRunner.Run("logits", "--model", Path.Combine(AppContext.BaseDirectory, "fixtures", "hf", "gpt2-cls"), "--input", input, "--output", output, "--device", "cpu", "--threads", "1");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Equal(3, JsonNode.Parse(File.ReadAllText(output))!["logits"]!.AsArray().Count);

            // Older spellings of other verbs keep working too, hidden from help: --input/--output, --out-dir, --set.
            string txt = Path.Combine(dir, "a.txt");
            File.WriteAllText(txt, "Call me Ishmael.");
            var enc = CliRunner.Run("data", "encode", "--input", txt, "--output", Path.Combine(dir, "a.tok"));
            Assert.True(enc.ExitCode == 0, enc.Stderr);
            Assert.True(File.Exists(Path.Combine(dir, "a.tok")));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void TablesDoNotWrapInAPipeAndHonourColumns()
    {
        // stdout is a pipe here; without COLUMNS no cell is split ("gpt2-tiny" stays whole on its row).
        var piped = CliRunner.Run(["models", "--threads", "1"], env: new Dictionary<string, string?> { ["COLUMNS"] = null });
        Assert.True(piped.ExitCode == 0, piped.Stderr);
        foreach (var name in new[] { "gpt2-tiny", "gpt2-medium", "bert-medium" })
            Assert.Contains(piped.Stdout.Split('\n'), l => l.Contains($" {name} "));
        var narrow = CliRunner.Run(["models", "--threads", "1"], env: new Dictionary<string, string?> { ["COLUMNS"] = "60" });
        Assert.True(narrow.ExitCode == 0, narrow.Stderr);
        Assert.All(narrow.Stdout.Split('\n'), l => Assert.True(l.TrimEnd('\r').Length <= 60, $"{l.Length} > 60: {l}"));
    }

    [Fact]
    public void SharedOptionsAreDeclaredOnceWithOneMeaning()
    {
        static string Line(string help, string option) => help.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith(option + " "));
        static string Description(string line) => string.Join(' ', line.Split("  ", StringSplitOptions.RemoveEmptyEntries).Skip(1)).Trim();
        string clean = Help("data", "clean"), split = Help("data", "split"), encode = Help("data", "encode"), tok = Help("tokenizer", "train");
        foreach (var o in new[] { "--near-threshold", "--shingles", "--shingle-size" })
            Assert.Equal(Description(Line(clean, o)), Description(Line(split, o)));
        var text = Description(Line(clean, "--text-column"));
        Assert.All(new[] { split, encode, tok }, h => Assert.Equal(text, Description(Line(h, "--text-column"))));
        Assert.Equal(Description(Line(Help("data", "list"), "--data-dir")), Description(Line(Help("data", "brown-pos"), "--data-dir")));
    }
}
