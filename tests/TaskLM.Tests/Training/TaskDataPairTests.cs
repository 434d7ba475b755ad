// Classification examples of a text pair are what HF's tokenizer(text, pair, max_length=..., truncation=True) gives:
// the cases of fixtures/tokenization/hf_wordpiece_model_inputs.json, computed by HF tokenizers 0.23 on tok-wordpiece.
// (Before, task data truncated a token at a time from the longer side, which differs from HF when the two tie.)
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;
using TaskLM.Recipes;
using TaskLM.Tasks;

namespace TaskLM.Tests.Training;

public class TaskDataPairTests
{
    [Fact]
    public void Pair_examples_truncate_and_type_as_HF_does()
    {
        var tok = TokenizerLoader.Load(Tokenization.HfParityTests.Hf("tok-wordpiece"));
        var cases = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenization", "hf_wordpiece_model_inputs.json")))!["cases"]!
            .AsArray().Where(c => c!["pair"] != null && c["max_length"] != null && (c["strategy"]?.GetValue<string>() ?? "longest_first") == "longest_first").ToList();
        Assert.True(cases.Count >= 3, "the fixture should hold several truncated pairs");
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-pairs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            foreach (var c in cases)
            {
                string file = Path.Combine(dir, "pairs.jsonl");
                File.WriteAllText(file, new JsonObject { ["text"] = c!["text"]!.GetValue<string>(), ["pair"] = c["pair"]!.GetValue<string>(), ["label"] = "yes" }.ToJsonString() + "\n");
                var data = new DataSection { TextColumn = "text", TextPairColumn = "pair", LabelColumn = "label", MaxLength = c["max_length"]!.GetValue<int>() };
                var ex = TaskData.Load("classification", data, file, tok, null).Examples.Single();
                Assert.Equal(c["ids"]!.AsArray().Select(x => (int)x!), ex.InputIds);
                Assert.Equal(c["type_ids"]!.AsArray().Select(x => (int)x!), ex.TokenTypeIds!);
            }
        }
        finally { Directory.Delete(dir, true); }
    }
}
