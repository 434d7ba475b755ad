// The playground's model card (GET /api/card, GET /v1/models) for a run folder as `tasklm train` leaves it.
using System.Net;
using System.Text.Json.Nodes;
using TaskLM.Native;
using TaskLM.Serving;

namespace TaskLM.Tests.Serving;

public class ModelCardTests
{
    /// <summary>A run folder: best/ holds a BERT classifier; eval.json, report.md and plots/ sit beside it.</summary>
    static string Run(params string[] plots)
    {
        string run = Path.Combine(ServingFixtures.TempDir(), "spam");
        string best = Path.Combine(run, "best");
        Directory.CreateDirectory(best);
        foreach (var file in Directory.GetFiles(ServingFixtures.Bert("bert-cls", ["ham", "spam", "eggs"]))) File.Copy(file, Path.Combine(best, Path.GetFileName(file)));
        File.WriteAllText(Path.Combine(run, "recipe.resolved.yaml"), "task: classification\nmodel:\n  init: bert-tiny\ndata:\n  train: train.jsonl\n  max_length: 32\n");
        File.WriteAllText(Path.Combine(run, "eval.json"), """{"task":"classification","split":"test","n":12,"metrics":{"accuracy":0.75,"macro_f1":0.5}}""");
        Directory.CreateDirectory(Path.Combine(run, "plots"));
        foreach (var p in plots) File.WriteAllBytes(Path.Combine(run, "plots", p), [0x89, 0x50, 0x4E, 0x47]);
        return run;
    }

    [Fact]
    public async Task The_card_of_a_run_with_several_plots_lists_them_in_order()
    {
        // Audit BAD 1: sorting the plot names as JsonNodes threw "Failed to compare two elements" (HTTP 500).
        TorchBackend.EnsureLoaded();
        string run = Run("loss.png", "confusion_matrix.png", "lr.png");
        await using var server = await TaskLMServer.StartAsync(new ServerOptions { Port = 0 }, () => TaskLMModel.Load(run));
        await server.Ready;
        using var http = new HttpClient();
        var r = await http.GetAsync(server.Url + "/api/card");
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.OK, body);
        var card = JsonNode.Parse(body)!;
        Assert.Equal(["confusion_matrix.png", "loss.png", "lr.png"], card["plots"]!.AsArray().Select(x => (string)x!).ToArray());
        Assert.Equal("classification", (string)card["task"]!);
        // The model's id is its run's name; a served best/ is named after its run, not "best".
        var models = JsonNode.Parse(await http.GetStringAsync(server.Url + "/v1/models"))!;
        Assert.Equal("spam", (string)models["data"]![0]!["id"]!);
        using var best = TaskLMModel.Load(Path.Combine(run, "best"));
        Assert.Equal("spam-best", best.Card.Id);
    }
}
