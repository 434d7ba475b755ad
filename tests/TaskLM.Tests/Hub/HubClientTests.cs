// The Hub client against a fake Hub over real HTTP: layout written, CDN without token, errors, faults, offline, concurrency, cancellation.
using System.Text;
using TaskLM.Data.Hub;
using TaskLM.Tests.Models;

namespace TaskLM.Tests.Hub;

public sealed class HubClientTests : IAsyncLifetime
{
    FakeHub hub = null!;
    readonly string cache = Path.Combine(Path.GetTempPath(), "tasklm-hub-" + Guid.NewGuid().ToString("N"));
    readonly List<string> warnings = new();

    public async Task InitializeAsync() => hub = await FakeHub.StartAsync();

    public async Task DisposeAsync()
    {
        await hub.DisposeAsync();
        if (Directory.Exists(cache)) Directory.Delete(cache, recursive: true);
    }

    HubOptions Options(string? token = FakeHub.GoodToken) => new()
    {
        Endpoint = hub.Endpoint, CacheDir = cache, Token = token, Timeout = TimeSpan.FromSeconds(5), Warn = m => { lock (warnings) warnings.Add(m); },
    };

    string Repo(string repoId) => Path.Combine(cache, HubCache.RepoFolderName(repoId));

    static IEnumerable<string> Incomplete(string root) =>
        Directory.Exists(root) ? Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Where(f => f.Contains(".incomplete") || f.EndsWith(".tmp")) : [];

    [Fact]
    public async Task PullWritesPythonsLayoutAndOnlyTheModelFiles()
    {
        var files = FakeHub.FolderFiles(BertTests.Fixture("gpt2-tiny"));
        string commit = hub.Add("org/tiny-gpt2", files);
        using var client = new HubClient(Options());
        var reports = new List<HubProgress>();
        var snap = await client.SnapshotAsync("org/tiny-gpt2", "main", new SyncProgress(reports.Add));

        Assert.Equal(commit, snap.Commit);
        Assert.Equal(Path.Combine(Repo("org/tiny-gpt2"), "snapshots", commit), snap.Folder);
        Assert.False(snap.FromCache);
        // Only what a model needs: no README, flax or onnx files.
        var names = Directory.EnumerateFiles(snap.Folder, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(snap.Folder, f)).Order().ToArray();
        Assert.Equal(new[] { "config.json", "generation_config.json", "model.safetensors" }, names);
        Assert.Equal(commit, File.ReadAllText(Path.Combine(Repo("org/tiny-gpt2"), "refs", "main")));
        // Relative links to blobs named by etag: sha256 for LFS, git sha1 otherwise.
        string weightsSha = FakeHub.Sha256(files["model.safetensors"]);
        Assert.Equal($"../../blobs/{weightsSha}", new FileInfo(Path.Combine(snap.Folder, "model.safetensors")).LinkTarget);
        Assert.Equal($"../../blobs/{FakeHub.GitSha1(files["config.json"])}", new FileInfo(Path.Combine(snap.Folder, "config.json")).LinkTarget);
        Assert.Equal(files["model.safetensors"], File.ReadAllBytes(Path.Combine(snap.Folder, "model.safetensors")));
        // Files the rule looked for and the commit lacks are recorded as Python records them.
        Assert.True(File.Exists(Path.Combine(Repo("org/tiny-gpt2"), ".no_exist", commit, "tokenizer.json")));
        Assert.True(File.Exists(Path.Combine(cache, ".locks", "models--org--tiny-gpt2", weightsSha + ".lock")));
        // Provenance: sha256 of every file.
        Assert.Equal(weightsSha, snap.FileSha256["model.safetensors"]);
        Assert.Equal(FakeHub.Sha256(files["config.json"]), snap.FileSha256["config.json"]);
        Assert.Equal(commit, snap.Provenance()["commit"]!.GetValue<string>());
        // The token went to the Hub, never to the CDN, which served the weights.
        Assert.All(hub.To("hub"), r => Assert.Equal("Bearer " + FakeHub.GoodToken, r.Authorization));
        var cdn = hub.To("cdn");
        Assert.Single(cdn, r => r.Method == "GET");
        Assert.All(cdn, r => Assert.Null(r.Authorization));
        // Sizes and etags of the file itself, never of a compressed form.
        Assert.All(hub.Log, r => Assert.Equal("identity", r.AcceptEncoding));
        var last = reports.Last(r => r.File == "model.safetensors");
        Assert.Equal(files["model.safetensors"].Length, last.Bytes);
        Assert.Equal(files["model.safetensors"].Length, last.Total);
        Assert.Empty(Incomplete(cache));

        // A second pull of the commit needs no network at all.
        int before = hub.Log.Count;
        var again = await client.SnapshotAsync("org/tiny-gpt2", commit);
        Assert.True(again.FromCache);
        Assert.Equal(before, hub.Log.Count);
        Assert.Equal(snap.FileSha256, again.FileSha256);
    }

    [Fact]
    public async Task ShardedCheckpointBringsItsShards()
    {
        var files = FakeHub.FolderFiles(BertTests.Fixture("bert-cls"), withExtras: false);
        byte[] weights = files["model.safetensors"];
        files.Remove("model.safetensors");
        files["model-00001-of-00002.safetensors"] = weights;
        files["model-00002-of-00002.safetensors"] = Encoding.UTF8.GetBytes("second shard");
        files["model.safetensors.index.json"] = Encoding.UTF8.GetBytes(
            """{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}}""");
        hub.Add("org/sharded", files);
        using var client = new HubClient(Options());
        var snap = await client.SnapshotAsync("org/sharded");
        Assert.Equal(files.Keys.Order(), snap.FileSha256.Keys.Order());
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(snap.Folder, "model-00001-of-00002.safetensors")));
        using var offline = new HubClient(Options() with { Offline = true });
        Assert.Equal(snap.FileSha256, (await offline.SnapshotAsync("org/sharded")).FileSha256);
    }

    [Fact]
    public async Task AdapterRepoBringsItsAdapterFiles()
    {
        var files = FakeHub.FolderFiles(BertTests.Fixture("lora-adapter"));
        hub.Add("org/lora", files);
        using var client = new HubClient(Options());
        var snap = await client.SnapshotAsync("org/lora");
        Assert.Equal(["adapter_config.json", "adapter_model.safetensors"], snap.FileSha256.Keys.Order());
        Assert.Equal(files["adapter_model.safetensors"], File.ReadAllBytes(Path.Combine(snap.Folder, "adapter_model.safetensors")));
    }

    [Fact]
    public async Task RelativeRedirectKeepsTheToken()
    {
        hub.Add("org/new-name", FakeHub.FolderFiles(BertTests.Fixture("bert-cls"), withExtras: false));
        hub.Renamed["org/old-name"] = "org/new-name";
        using var client = new HubClient(Options());
        var snap = await client.SnapshotAsync("org/old-name");
        Assert.True(File.Exists(Path.Combine(snap.Folder, "model.safetensors")));
        Assert.Contains(hub.To("hub"), r => r.Path.Contains("org/new-name") && r.Authorization == "Bearer " + FakeHub.GoodToken);
    }

    [Fact]
    public async Task GatedRepoWithoutTokenSaysHowToSetHfToken()
    {
        hub.Add("org/gated", FakeHub.FolderFiles(BertTests.Fixture("bert-cls"), withExtras: false), gated: true);
        using var anonymous = new HubClient(Options(token: null));
        var e = await Assert.ThrowsAsync<HubException>(() => anonymous.SnapshotAsync("org/gated"));
        Assert.Equal(HubErrorKind.Unauthorized, e.Kind);
        Assert.Contains("gated", e.Message);
        Assert.Contains("HF_TOKEN", e.Message);
        using var wrong = new HubClient(Options(token: "hf_wrong"));
        e = await Assert.ThrowsAsync<HubException>(() => wrong.SnapshotAsync("org/gated"));
        Assert.Contains("HF_TOKEN", e.Message);
        Assert.False(Directory.Exists(Path.Combine(Repo("org/gated"), "snapshots")));
        using var client = new HubClient(Options());
        Assert.True(File.Exists(Path.Combine((await client.SnapshotAsync("org/gated")).Folder, "model.safetensors")));
    }

    [Fact]
    public async Task NotFoundTellsRepoRevisionAndFileApart()
    {
        string commit = hub.Add("org/model", FakeHub.FolderFiles(BertTests.Fixture("bert-cls"), withExtras: false));
        using var client = new HubClient(Options());
        var repo = await Assert.ThrowsAsync<HubException>(() => client.SnapshotAsync("org/nope"));
        Assert.Equal(HubErrorKind.RepoNotFound, repo.Kind);
        Assert.Contains("repository org/nope was not found", repo.Message);
        // Without a token the Hub answers 401 RepoNotFound: still "not found", with the hint about private repos.
        using var anonymous = new HubClient(Options(token: null));
        repo = await Assert.ThrowsAsync<HubException>(() => anonymous.SnapshotAsync("org/nope"));
        Assert.Equal(HubErrorKind.RepoNotFound, repo.Kind);
        Assert.Contains("HF_TOKEN", repo.Message);

        var rev = await Assert.ThrowsAsync<HubException>(() => client.SnapshotAsync("org/model", "v9"));
        Assert.Equal(HubErrorKind.RevisionNotFound, rev.Kind);
        Assert.Contains("revision 'v9'", rev.Message);

        hub.Repos["org/model"].Broken.Add("model.safetensors");
        var file = await Assert.ThrowsAsync<HubException>(() => client.SnapshotAsync("org/model"));
        Assert.Equal(HubErrorKind.EntryNotFound, file.Kind);
        Assert.Contains("'model.safetensors'", file.Message);
        Assert.False(File.Exists(Path.Combine(Repo("org/model"), "snapshots", commit, "model.safetensors")));
    }

    [Fact]
    public async Task ConnectionCutOnceIsResumedWithARange()
    {
        var files = FakeHub.FolderFiles(BertTests.Fixture("bert-cls"), withExtras: false);
        hub.Add("org/model", files);
        hub.CutsLeft = 1;
        using var client = new HubClient(Options());
        var snap = await client.SnapshotAsync("org/model");
        Assert.Equal(files["model.safetensors"], File.ReadAllBytes(Path.Combine(snap.Folder, "model.safetensors")));
        Assert.Contains(hub.To("cdn"), r => r.Range != null && r.Range.StartsWith("bytes="));
        Assert.Empty(Incomplete(cache));
    }

    [Fact]
    public async Task ConnectionCutEveryTimeFailsCleanlyThenARerunSucceeds()
    {
        var files = FakeHub.FolderFiles(BertTests.Fixture("bert-cls"), withExtras: false);
        string commit = hub.Add("org/model", files);
        hub.CutsLeft = 1000;
        using var client = new HubClient(Options());
        var e = await Assert.ThrowsAsync<HubException>(() => client.SnapshotAsync("org/model"));
        Assert.Equal(HubErrorKind.Network, e.Kind);
        Assert.Contains("model.safetensors", e.Message);
        // Nothing half-written: no weights link, no blob, no .incomplete file.
        Assert.False(File.Exists(Path.Combine(Repo("org/model"), "snapshots", commit, "model.safetensors")));
        Assert.False(File.Exists(Path.Combine(Repo("org/model"), "blobs", FakeHub.Sha256(files["model.safetensors"]))));
        Assert.Empty(Incomplete(cache));

        hub.CutsLeft = 0;
        var snap = await client.SnapshotAsync("org/model");
        Assert.Equal(files["model.safetensors"], File.ReadAllBytes(Path.Combine(snap.Folder, "model.safetensors")));
    }

    [Fact]
    public async Task AStalledDownloadTimesOutInsteadOfHanging()
    {
        var files = FakeHub.FolderFiles(BertTests.Fixture("bert-cls"), withExtras: false);
        string commit = hub.Add("org/model", files);
        hub.ChunkDelay = TimeSpan.FromSeconds(12);   // one 16 KiB chunk, then silence
        using var client = new HubClient(Options() with { Timeout = TimeSpan.FromSeconds(1.5) });
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<HubException>(() => client.SnapshotAsync("org/model"));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"took {sw.Elapsed}");   // below the 12 s stall, three tries included
        Assert.Contains("within 1.5 s", e.Message);
        // On a loaded machine the metadata request itself may be the one that times out; otherwise the stalled body is.
        if (!e.Message.Contains("no answer from", StringComparison.Ordinal))
        {
            Assert.Contains("broke off", e.Message);
            Assert.Equal(3, hub.To("cdn").Count(r => r.Method == "GET"));   // resumed twice with a Range, then gave up
        }
        Assert.False(File.Exists(Path.Combine(Repo("org/model"), "snapshots", commit, "model.safetensors")));
        Assert.Empty(Incomplete(cache));
    }

    [Fact]
    public async Task SlowHubFallsBackToTheCacheWithAWarningElseFailsClearly()
    {
        hub.Add("org/model", FakeHub.FolderFiles(BertTests.Fixture("bert-cls"), withExtras: false));
        hub.HubDelay = TimeSpan.FromSeconds(3);
        using var client = new HubClient(Options() with { Timeout = TimeSpan.FromMilliseconds(500) });
        var e = await Assert.ThrowsAsync<HubException>(() => client.SnapshotAsync("org/model"));
        Assert.Equal(HubErrorKind.Network, e.Kind);
        Assert.Contains("within 0.5 s", e.Message);
        Assert.Contains("not in the cache", e.Message);

        hub.HubDelay = TimeSpan.Zero;
        using var patient = new HubClient(Options());   // a loaded test machine may take longer than 0.5 s to serve the files
        var online = await patient.SnapshotAsync("org/model");
        hub.HubDelay = TimeSpan.FromSeconds(10);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var cached = await client.SnapshotAsync("org/model");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(6), $"fallback took {sw.Elapsed}");   // the 0.5 s timeout, not the 10 s server
        Assert.True(cached.FromCache);
        Assert.Equal(online.Folder, cached.Folder);
        Assert.Contains(warnings, w => w.Contains("within 0.5 s") && w.Contains("using the cached snapshot"));
    }

    [Fact]
    public async Task OfflineReadsOnlyTheCacheAndNamesWhatIsMissing()
    {
        var files = FakeHub.FolderFiles(BertTests.Fixture("bert-cls"), withExtras: false);
        hub.Add("org/model", files);
        using var offline = new HubClient(Options() with { Offline = true });
        var e = await Assert.ThrowsAsync<HubException>(() => offline.SnapshotAsync("org/model"));
        Assert.Equal(HubErrorKind.NotCached, e.Kind);
        Assert.Contains("HF_HUB_OFFLINE=1", e.Message);
        Assert.Contains("no cached revision 'main' of org/model", e.Message);
        Assert.Empty(hub.Log);

        using var online = new HubClient(Options());
        var snap = await online.SnapshotAsync("org/model");
        int requests = hub.Log.Count;
        Assert.Equal(snap.Folder, (await offline.SnapshotAsync("org/model")).Folder);
        // The weights' blob gone (a broken link): offline names the file.
        File.Delete(Path.Combine(Repo("org/model"), "blobs", FakeHub.Sha256(files["model.safetensors"])));
        e = await Assert.ThrowsAsync<HubException>(() => offline.SnapshotAsync("org/model"));
        Assert.Contains("lacks model.safetensors", e.Message);
        Assert.Equal(requests, hub.Log.Count);
        // Online, the broken link is repaired.
        await online.SnapshotAsync("org/model");
        Assert.Equal(files["model.safetensors"], File.ReadAllBytes(Path.Combine(snap.Folder, "model.safetensors")));
    }

    [Fact]
    public async Task TwoConcurrentPullsOfTheSameRepoBothSucceedWithOneDownload()
    {
        var files = FakeHub.FolderFiles(BertTests.Fixture("bert-cls"), withExtras: false);
        hub.Add("org/model", files);
        hub.ChunkDelay = TimeSpan.FromMilliseconds(30);   // ~14 chunks: long enough to overlap
        using var a = new HubClient(Options());
        using var b = new HubClient(Options());
        var both = await Task.WhenAll(Task.Run(() => a.SnapshotAsync("org/model")), Task.Run(() => b.SnapshotAsync("org/model")));
        Assert.Equal(both[0].Folder, both[1].Folder);
        Assert.Equal(files["model.safetensors"], File.ReadAllBytes(Path.Combine(both[0].Folder, "model.safetensors")));
        Assert.Single(hub.To("cdn"), r => r.Method == "GET");   // the second waited on the blob's lock, then used the blob
        Assert.Empty(Incomplete(cache));
    }

    [Fact]
    public async Task CancellingLeavesNothingHalfWritten()
    {
        var files = FakeHub.FolderFiles(BertTests.Fixture("bert-cls"), withExtras: false);
        string commit = hub.Add("org/model", files);
        hub.ChunkDelay = TimeSpan.FromMilliseconds(100);
        using var client = new HubClient(Options());
        using var cts = new CancellationTokenSource();
        var reports = new List<HubProgress>();
        var progress = new SyncProgress(p => { reports.Add(p); if (p.File == "model.safetensors" && p.Bytes > 0) cts.Cancel(); });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.SnapshotAsync("org/model", "main", progress, cts.Token));
        Assert.False(File.Exists(Path.Combine(Repo("org/model"), "snapshots", commit, "model.safetensors")));
        Assert.False(File.Exists(Path.Combine(Repo("org/model"), "refs", "main")));
        Assert.Empty(Incomplete(cache));
        var seen = reports.Last(r => r.File == "model.safetensors");
        Assert.Equal(files["model.safetensors"].Length, seen.Total);
        Assert.True(seen.BytesPerSecond > 0);
        Assert.NotNull(seen.Eta);
    }

    [Fact]
    public async Task UnsupportedArchitectureIsRefusedBeforeTheWeights()
    {
        hub.Add("org/bert", FakeHub.FolderFiles(BertTests.Fixture("bert-cls"), withExtras: false));
        using var client = new HubClient(Options() with { SupportedModelTypes = ["gpt2"] });
        var e = await Assert.ThrowsAsync<HubException>(() => client.SnapshotAsync("org/bert"));
        Assert.Equal(HubErrorKind.UnsupportedArchitecture, e.Kind);
        Assert.Contains("model_type 'bert' (BertForSequenceClassification)", e.Message);
        Assert.Contains("gpt2", e.Message);
        Assert.Empty(hub.To("cdn"));
    }

    [Fact]
    public async Task RepoWithoutWeightsOrConfigIsRefusedWithItsListing()
    {
        hub.Add("org/dataset-like", new Dictionary<string, byte[]> { ["README.md"] = [1], ["data.csv"] = [2] });
        using var client = new HubClient(Options());
        var e = await Assert.ThrowsAsync<HubException>(() => client.SnapshotAsync("org/dataset-like"));
        Assert.Equal(HubErrorKind.BadContent, e.Kind);
        Assert.Contains("data.csv", e.Message);
    }

    [Fact]
    public async Task BareNameNotFoundExplainsTheNamingRule()
    {
        using var client = new HubClient(Options());
        Assert.True(HubSpec.TryParse("no-such-model", _ => false, out var spec));
        var e = await Assert.ThrowsAsync<HubException>(() => client.SnapshotAsync(spec));
        Assert.Equal(HubErrorKind.RepoNotFound, e.Kind);
        Assert.Contains("hf:NAME", e.Message);
        Assert.Contains("no local folder or TaskLM preset has that name", e.Message);
        // A slash spec that is not found may be a mistyped folder: said too; with hf: it can only be the Hub.
        Assert.True(HubSpec.TryParse("models/tasklm-bert-mnii", _ => false, out spec));
        e = await Assert.ThrowsAsync<HubException>(() => client.SnapshotAsync(spec));
        Assert.Contains("no local folder has that name", e.Message);
        Assert.True(HubSpec.TryParse("hf:org/nope", _ => false, out spec));
        e = await Assert.ThrowsAsync<HubException>(() => client.SnapshotAsync(spec));
        Assert.DoesNotContain("Note:", e.Message);
    }

    /// <summary>An IProgress that reports on the caller's thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    sealed class SyncProgress(Action<HubProgress> report) : IProgress<HubProgress>
    {
        public void Report(HubProgress value) { lock (this) report(value); }
    }
}
