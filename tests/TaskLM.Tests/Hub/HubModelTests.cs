// The headline: a model pulled from a (fake) Hub, or laid out by hand as Python's huggingface_hub writes it, loads offline through TaskLM's loader and gives HF's logits.
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using TaskLM.Data.Hub;
using TaskLM.Models;
using TaskLM.Native;
using TaskLM.Tests.Models;
using static TorchSharp.torch;

namespace TaskLM.Tests.Hub;

public sealed class HubModelTests : IDisposable
{
    readonly string cache = Path.Combine(Path.GetTempPath(), "tasklm-hub-" + Guid.NewGuid().ToString("N"));

    public HubModelTests() => TorchBackend.EnsureLoaded();

    public void Dispose()
    {
        if (Directory.Exists(cache)) Directory.Delete(cache, recursive: true);
    }

    static readonly string[] Supported = ModelFamilies.All.Select(f => f.ModelType).ToArray();

    /// <summary>Loads a folder with TaskLM's loader and compares the classification logits with HF's.</summary>
    static void AssertHfLogits(string folder)
    {
        using var scope = NewDisposeScope();
        var model = ModelFactory.ForInference(folder);
        model.Module.eval();
        var expected = BertTests.Expected("bert-cls");
        using var noGrad = no_grad();
        var logits = model.Forward(BertTests.BatchOf(expected)).Logits!.to(ScalarType.Float64).data<double>().ToArray();
        var want = expected["logits"]!.AsArray().SelectMany(r => r!.AsArray().Select(v => v!.GetValue<double>())).ToArray();
        Assert.Equal(want.Length, logits.Length);
        double worst = want.Zip(logits, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst <= 1e-4, $"max |HF - ours| = {worst:E3}");
    }

    [Fact]
    public async Task PulledFromTheHubThenLoadedOfflineGivesHfLogits()
    {
        await using var hub = await FakeHub.StartAsync();
        string commit = hub.Add("google/bert-cls-tiny", FakeHub.FolderFiles(BertTests.Fixture("bert-cls")));
        var options = new HubOptions { Endpoint = hub.Endpoint, CacheDir = cache, Token = FakeHub.GoodToken, SupportedModelTypes = Supported };
        using (var online = new HubClient(options)) await online.SnapshotAsync("google/bert-cls-tiny");

        int requests = hub.Log.Count;
        using var offline = new HubClient(options with { Offline = true });
        Assert.True(HubSpec.TryParse("google/bert-cls-tiny", ModelPresets.All.Select(p => p.Name).Contains, out var spec));
        var snap = offline.Snapshot(spec);
        Assert.Equal(requests, hub.Log.Count);   // offline: not one request
        Assert.True(snap.FromCache);
        Assert.Equal(commit, snap.Commit);
        AssertHfLogits(snap.Folder);
    }

    [Fact]
    public void CacheLaidOutByPythonIsReadAsIs()
    {
        // What huggingface_hub writes: blobs named by etag, refs/main, relative symlinks (nested paths get more ../), .no_exist markers.
        string repo = Path.Combine(cache, "models--google--bert-cls-tiny");
        string commit = "0123456789abcdef0123456789abcdef01234567";
        string snap = Path.Combine(repo, "snapshots", commit);
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        Directory.CreateDirectory(Path.Combine(snap, "extra", "deep"));
        Directory.CreateDirectory(Path.Combine(repo, ".no_exist", commit));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), commit);
        File.WriteAllBytes(Path.Combine(repo, ".no_exist", commit, "tokenizer.json"), []);
        byte[] weights = File.ReadAllBytes(BertTests.Fixture("bert-cls", "model.safetensors"));
        byte[] config = File.ReadAllBytes(BertTests.Fixture("bert-cls", "config.json"));
        string weightsSha = Convert.ToHexStringLower(SHA256.HashData(weights));
        string configEtag = FakeHub.GitSha1(config);
        File.WriteAllBytes(Path.Combine(repo, "blobs", weightsSha), weights);
        File.WriteAllBytes(Path.Combine(repo, "blobs", configEtag), config);
        File.CreateSymbolicLink(Path.Combine(snap, "model.safetensors"), $"../../blobs/{weightsSha}");
        File.CreateSymbolicLink(Path.Combine(snap, "config.json"), $"../../blobs/{configEtag}");
        File.CreateSymbolicLink(Path.Combine(snap, "extra", "deep", "notes.json"), $"../../../../blobs/{configEtag}");

        // The endpoint is a closed port: any request would fail the test through a network error.
        var options = new HubOptions { Endpoint = "http://127.0.0.1:9", CacheDir = cache, Offline = true, SupportedModelTypes = Supported };
        using var client = new HubClient(options);
        var byBranch = client.Snapshot("google/bert-cls-tiny", "main");
        Assert.Equal(snap, byBranch.Folder);
        Assert.Equal(commit, byBranch.Commit);
        Assert.Equal(weightsSha, byBranch.FileSha256["model.safetensors"]);     // the LFS blob's name
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(config)), byBranch.FileSha256["config.json"]);   // hashed
        Assert.Equal(["config.json", "model.safetensors"], byBranch.FileSha256.Keys.Order());   // the model's files, as a download takes
        Assert.Equal(config, File.ReadAllBytes(Path.Combine(snap, "extra", "deep", "notes.json")));     // ../../../../blobs resolves
        // A pinned commit needs no network even when online.
        using var online = new HubClient(options with { Offline = false });
        Assert.Equal(snap, online.Snapshot("google/bert-cls-tiny", commit).Folder);
        AssertHfLogits(byBranch.Folder);

        var listed = Assert.Single(new HubCache(cache).List());
        Assert.Equal("google/bert-cls-tiny", listed.Repo);
        Assert.Equal(weights.Length + config.Length, listed.Bytes);
        var revision = Assert.Single(listed.Revisions);
        Assert.Equal(["main"], revision.Refs);
        Assert.Equal(3, revision.Files);
        Assert.Equal(weights.Length + 2 * config.Length, revision.Bytes);   // sizes of the files the links point to
    }
}
