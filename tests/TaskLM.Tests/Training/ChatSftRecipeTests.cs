// recipes/chat-sft-lora.yaml end to end on the shipped tiny base and WordNet chat data: held-out loss falls and greedy
// answers take the trained "word (noun): definition.<|im_end|>" form, which the base model does not write.
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using TaskLM.Data.Tokenization;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Tests.Transfer;

namespace TaskLM.Tests.Training;

public sealed class ChatSftRecipeTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("tasklm-chatsft-run").FullName;

    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    // The trained form, ending at the end-of-turn token where generation stops (generation_config.json).
    static readonly Regex Format = new(@"^\S+ \(noun\): [^<]+<\|im_end\|>$", RegexOptions.CultureInvariant);

    static List<string> Answers(string modelDir, IReadOnlyList<string> words)
    {
        var tok = TokenizerLoader.Load(modelDir);
        var chat = HfChatTemplate.FromFolder(modelDir)!;
        using var model = ModelFactory.ForInference(modelDir);
        var prompts = words.Select(w => (IReadOnlyList<int>)tok.Encode(chat.Render([("user", $"What does the word {w} mean?")])).ToList()).ToList();
        var outs = Generation.Generate(model, prompts, new GenerationOptions { MaxNewTokens = 24 });
        return outs.Select(o => tok.Decode(o)).ToList();
    }

    [Fact]
    public void LoRA_SFT_on_the_tiny_base_lowers_held_out_loss_and_answers_in_the_trained_format()
    {
        TorchBackend.EnsureLoaded();
        string data = Path.Combine(_dir, "data"), run = Path.Combine(_dir, "run");
        var d = CliRunner.Run("data", "wordnet-chat", "--out", data, "--train", "600", "--validation", "32", "--test", "8", "--pos", "noun",
            "--data-dir", TextClassificationRecipeTests.Repo("data"));
        Assert.True(d.ExitCode == 0, d.Stderr + d.Stdout);
        // The recipe as shipped, shortened: 40 steps (1 thread: steady on a loaded 2-core box).
        var r = CliRunner.Run(["train", TextClassificationRecipeTests.Repo("recipes", "chat-sft-lora.yaml"),
            $"model.init={TextClassificationRecipeTests.Repo("models", "tasklm-llama-mini")}",
            $"data.train={Path.Combine(data, "train.jsonl")}", $"data.validation={Path.Combine(data, "validation.jsonl")}", "data.test=null",
            "training.max_steps=40", "training.eval_every=10", "training.save_every=1000", $"output_dir={run}", "--threads", "1"]);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        string log = File.ReadAllText(Path.Combine(run, "train.log"));
        Assert.Contains("chat: the tokenizer's own chat_template", log);
        Assert.Contains("data.packing: 600 training examples in", log);

        var evals = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(j => j["eval"] != null)
            .Select(j => (double)j["eval"]!["loss"]!).ToList();
        output.WriteLine("validation loss: " + string.Join(" → ", evals.Select(x => x.ToString("0.000"))));
        Assert.True(evals.Count >= 4 && evals[^1] < evals[0] - 0.1, $"held-out loss should fall: {string.Join(", ", evals)}");

        // best/ is the merged model with the template it was trained on.
        string best = Path.Combine(run, "best");
        Assert.Contains("chat_template", File.ReadAllText(Path.Combine(best, "tokenizer_config.json")));
        // ... and its end-of-turn token (<|im_end|>, 8193) first among the ids generation stops at.
        Assert.Equal(8193, (int)JsonNode.Parse(File.ReadAllText(Path.Combine(best, "generation_config.json")))!["eos_token_id"]![0]!);
        var words = File.ReadAllLines(Path.Combine(data, "test.jsonl")).Select(l => (string)JsonNode.Parse(l)!["word"]!).ToList();
        var tuned = Answers(best, words);
        var before = Answers(TextClassificationRecipeTests.Repo("models", "tasklm-llama-mini"), words);
        for (int i = 0; i < words.Count; i++) output.WriteLine($"{words[i]}: base {before[i]!.Replace("\n", "\\n")} | tuned {tuned[i].Replace("\n", "\\n")}");
        int formatted = tuned.Count(a => Format.IsMatch(a)), startsWithWord = tuned.Where((a, i) => a.StartsWith(words[i] + " ", StringComparison.Ordinal)).Count();
        output.WriteLine($"trained format: {formatted}/{words.Count}; starting with the asked word: {startsWithWord}/{words.Count}");
        Assert.Equal(0, before.Count(a => Format.IsMatch(a)));
        Assert.True(formatted >= 6, $"{formatted}/{words.Count} answers in the trained format");
    }
}
