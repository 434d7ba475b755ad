// `tasklm models pull|list|rm` as a user runs them, configured by huggingface_hub's environment variables, against the fake Hub.
using System.Text.Json.Nodes;
using TaskLM.Tests.Models;

namespace TaskLM.Tests.Hub;

public sealed class HubCliTests : IDisposable
{
    readonly string cache = Path.Combine(Path.GetTempPath(), "tasklm-hub-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(cache)) Directory.Delete(cache, recursive: true);
    }

    [Fact]
    public async Task PullListRemove()
    {
        await using var hub = await FakeHub.StartAsync();
        string commit = hub.Add("org/tiny", FakeHub.FolderFiles(BertTests.Fixture("bert-cls")), gated: true);
        var env = new Dictionary<string, string?> { ["HF_ENDPOINT"] = hub.Endpoint, ["HF_HUB_CACHE"] = cache, ["HF_TOKEN"] = FakeHub.GoodToken, ["HF_HUB_OFFLINE"] = null };

        var denied = CliRunner.Run(["models", "pull", "org/tiny"], env: new Dictionary<string, string?>(env) { ["HF_TOKEN"] = null, ["HF_HOME"] = cache });
        Assert.Equal(1, denied.ExitCode);
        Assert.Contains("HF_TOKEN", denied.Stderr);

        var pull = CliRunner.Run(["models", "pull", "org/tiny", "--json"], env);
        Assert.True(pull.ExitCode == 0, pull.Stderr);
        var o = JsonNode.Parse(pull.Stdout)!;
        Assert.Equal(commit, o["commit"]!.GetValue<string>());
        Assert.Equal("org/tiny", o["repo"]!.GetValue<string>());
        string folder = o["folder"]!.GetValue<string>();
        Assert.Equal(Path.Combine(cache, "models--org--tiny", "snapshots", commit), folder);
        Assert.Equal(FakeHub.Sha256(File.ReadAllBytes(BertTests.Fixture("bert-cls", "model.safetensors"))), o["files"]!["model.safetensors"]!.GetValue<string>());

        var human = CliRunner.Run(["models", "pull", $"hf:org/tiny@{commit}"], env);
        Assert.True(human.ExitCode == 0, human.Stderr);
        Assert.Contains(commit, human.Stdout);
        Assert.Contains(folder, human.Stdout);

        var list = CliRunner.Run(["models", "list", "--cached", "--json"], env);
        var repo = Assert.Single(JsonNode.Parse(list.Stdout)!["repos"]!.AsArray())!;
        Assert.Equal("org/tiny", repo["repo"]!.GetValue<string>());
        Assert.Equal("main", repo["revisions"]![0]!["refs"]![0]!.GetValue<string>());
        Assert.Contains("org/tiny", CliRunner.Run(["models", "list"], env).Stdout);

        var rm = CliRunner.Run(["models", "rm", "org/tiny"], env);
        Assert.True(rm.ExitCode == 0, rm.Stderr);
        Assert.False(Directory.Exists(Path.Combine(cache, "models--org--tiny")));
    }

    [Fact]
    public async Task AVerbTakesAHubIdThenWorksOfflineWithHfLogits()
    {
        // `tasklm logits --model org/name`: resolved through ModelSource's Hub source, downloaded once, then read
        // from the cache with HF_HUB_OFFLINE=1 and no Hub at all; the logits are Hugging Face's.
        string commit;
        var env = new Dictionary<string, string?> { ["HF_HUB_CACHE"] = cache, ["HF_TOKEN"] = null, ["HF_HOME"] = cache, ["HF_HUB_OFFLINE"] = null };
        var expected = BertTests.Expected("bert-cls");
        string input = Path.Combine(cache, "in.json"), output = Path.Combine(cache, "out.json");
        Directory.CreateDirectory(cache);
        File.WriteAllText(input, new JsonObject
        {
            ["input_ids"] = expected["input_ids"]!.DeepClone(), ["attention_mask"] = expected["attention_mask"]!.DeepClone(),
            ["token_type_ids"] = expected["token_type_ids"]!.DeepClone(),
        }.ToJsonString());
        await using (var hub = await FakeHub.StartAsync())
        {
            commit = hub.Add("org/bert-cls", FakeHub.FolderFiles(BertTests.Fixture("bert-cls")));
            env["HF_ENDPOINT"] = hub.Endpoint;
            var online = CliRunner.Run(["logits", "--model", "org/bert-cls", "--input", input, "--out", output, "--device", "cpu", "--threads", "1"], env);
            Assert.True(online.ExitCode == 0, online.Stderr + online.Stdout);
            Assert.Contains("downloaded model.safetensors", online.Stderr);
        }
        File.Delete(output);
        env["HF_HUB_OFFLINE"] = "1";
        var offline = CliRunner.Run(["logits", "--model", $"hf:org/bert-cls@{commit}", "--input", input, "--out", output, "--device", "cpu", "--threads", "1"], env);
        Assert.True(offline.ExitCode == 0, offline.Stderr + offline.Stdout);
        var got = JsonNode.Parse(File.ReadAllText(output))!["logits"]!.AsArray().SelectMany(r => r!.AsArray().Select(v => v!.GetValue<double>())).ToArray();
        var want = expected["logits"]!.AsArray().SelectMany(r => r!.AsArray().Select(v => v!.GetValue<double>())).ToArray();
        Assert.Equal(want.Length, got.Length);
        Assert.True(want.Zip(got, (a, b) => Math.Abs(a - b)).Max() <= 1e-4);

        // Offline, a model never pulled: the error names it and the naming rule.
        var missing = CliRunner.Run(["logits", "--model", "org/never-pulled", "--input", input, "--out", output], env);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("HF_HUB_OFFLINE=1", missing.Stderr);
        Assert.Contains("org/never-pulled", missing.Stderr);
        // A mistyped preset is a bare Hub name by the rule: the error still suggests the preset, and states the rule.
        var typo = CliRunner.Run(["logits", "--model", "gpt2-tinyy", "--input", input, "--out", output], env);
        Assert.Equal(1, typo.ExitCode);
        Assert.Contains("unknown model preset 'gpt2-tinyy' (did you mean 'gpt2-tiny'?)", typo.Stderr);
        Assert.Contains("hf:NAME", typo.Stderr);
    }

    [Fact]
    public async Task InterruptedPullLeavesNothingHalfWrittenAndARerunFinishes()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        await using var hub = await FakeHub.StartAsync();
        string commit = hub.Add("org/tiny", FakeHub.FolderFiles(BertTests.Fixture("bert-cls")));
        hub.ChunkDelay = TimeSpan.FromMilliseconds(300);   // ~4 s for the weights: time to interrupt
        string blobs = Path.Combine(cache, "models--org--tiny", "blobs");
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { CliRunner.CliDll, "models", "pull", "org/tiny" }) psi.ArgumentList.Add(a);
        psi.Environment["HF_ENDPOINT"] = hub.Endpoint;
        psi.Environment["HF_HUB_CACHE"] = cache;
        psi.Environment.Remove("HF_HUB_OFFLINE");
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!p.HasExited && DateTime.UtcNow < deadline && !(Directory.Exists(blobs) && Directory.EnumerateFiles(blobs, "*.incomplete").Any())) Thread.Sleep(20);
        Assert.False(p.HasExited, "the pull finished before it could be interrupted");
        // SIGTERM, not SIGINT (a background test host may pass SIGINT ignored to its children); the same cancellation.
        Assert.Equal(0, CliRunner.Kill(p.Id, 15));
        Assert.True(p.WaitForExit(30_000), "the pull did not stop");
        Assert.Equal(143, p.ExitCode);
        Assert.Contains("interrupted: org/tiny is not complete", await stderr);
        Assert.Empty(Directory.EnumerateFiles(cache, "*.incomplete", SearchOption.AllDirectories));
        Assert.False(File.Exists(Path.Combine(cache, "models--org--tiny", "snapshots", commit, "model.safetensors")));

        hub.ChunkDelay = TimeSpan.Zero;
        var rerun = CliRunner.Run(["models", "pull", "org/tiny"], new Dictionary<string, string?> { ["HF_ENDPOINT"] = hub.Endpoint, ["HF_HUB_CACHE"] = cache, ["HF_HUB_OFFLINE"] = null });
        Assert.True(rerun.ExitCode == 0, rerun.Stderr);
        Assert.True(File.Exists(Path.Combine(cache, "models--org--tiny", "snapshots", commit, "model.safetensors")));
    }
}
