// Hub cache housekeeping and settings: links for nested paths, list and remove by revision, options from the environment, the naming rule.
using TaskLM.Data.Hub;
using TaskLM.Tests.Models;

namespace TaskLM.Tests.Hub;

public sealed class HubCacheTests : IDisposable
{
    readonly string cache = Path.Combine(Path.GetTempPath(), "tasklm-hub-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(cache)) Directory.Delete(cache, recursive: true);
    }

    [Fact]
    public void NestedPathsLinkWithOneMoreDotDotPerFolder()
    {
        var c = new HubCache(cache);
        string commit = new('a', 40);
        Directory.CreateDirectory(Path.GetDirectoryName(c.BlobPath("org/m", "e1"))!);
        File.WriteAllText(c.BlobPath("org/m", "e1"), "x");
        c.Link("org/m", commit, "sub/dir/file.json", "e1");
        c.Link("org/m", commit, "top.json", "e1");
        c.Link("org/m", commit, "top.json", "e1");   // again: replaced, not an error
        string snap = c.SnapshotFolder("org/m", commit);
        Assert.Equal("../../../../blobs/e1", new FileInfo(Path.Combine(snap, "sub", "dir", "file.json")).LinkTarget);
        Assert.Equal("../../blobs/e1", new FileInfo(Path.Combine(snap, "top.json")).LinkTarget);
        Assert.Equal("x", File.ReadAllText(Path.Combine(snap, "sub", "dir", "file.json")));
    }

    [Fact]
    public async Task RemoveOneRevisionKeepsSharedBlobsThenTheLastTakesTheRepo()
    {
        await using var hub = await FakeHub.StartAsync();
        var v1 = FakeHub.FolderFiles(BertTests.Fixture("bert-cls"), withExtras: false);
        string c1 = hub.Add("org/m", v1, false, "v1");
        var v2 = new Dictionary<string, byte[]>(v1) { ["vocab.txt"] = "[PAD]\n[UNK]\n"u8.ToArray() };
        v2["model.safetensors"] = [.. v1["model.safetensors"].Take(1000)];  // not a loadable model; the cache does not care
        string c2 = hub.Add("org/m", v2, false, "main");
        using var client = new HubClient(new HubOptions { Endpoint = hub.Endpoint, CacheDir = cache });
        await client.SnapshotAsync("org/m", "v1");
        await client.SnapshotAsync("org/m", "main");

        var cacheView = new HubCache(cache);
        var repo = Assert.Single(cacheView.List());
        Assert.Equal(2, repo.Revisions.Count);
        Assert.Contains(repo.Revisions, r => r.Commit == c1 && r.Refs.SequenceEqual(["v1"]));
        Assert.Contains(repo.Revisions, r => r.Commit == c2 && r.Refs.SequenceEqual(["main"]));

        long freed = cacheView.Remove("org/m", "v1");
        Assert.Equal(v1["model.safetensors"].Length, freed);   // config.json's blob is shared with main and stays
        Assert.False(Directory.Exists(cacheView.SnapshotFolder("org/m", c1)));
        Assert.False(File.Exists(Path.Combine(cacheView.RepoFolder("org/m"), "refs", "v1")));
        Assert.Equal(v2["config.json"], File.ReadAllBytes(Path.Combine(cacheView.SnapshotFolder("org/m", c2), "config.json")));
        var e = Assert.Throws<HubException>(() => cacheView.Remove("org/m", "v1"));
        Assert.Contains("main", e.Message);   // names what is cached

        cacheView.Remove("org/m", c2);
        Assert.False(Directory.Exists(cacheView.RepoFolder("org/m")));
        Assert.False(Directory.Exists(Path.Combine(cache, ".locks", "models--org--m")));
        Assert.Empty(cacheView.List());
    }

    [Fact]
    public void OptionsFromTheEnvironmentFollowHuggingfaceHubsOrder()
    {
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        HubOptions From(params (string, string)[] vars) => HubOptions.FromEnvironment(n => vars.FirstOrDefault(v => v.Item1 == n).Item2);

        var none = From();
        Assert.Equal(Path.Combine(home, ".cache", "huggingface", "hub"), none.CacheDir);
        Assert.Equal("https://huggingface.co", none.Endpoint);
        Assert.False(none.Offline);
        Assert.Equal(TimeSpan.FromSeconds(10), none.Timeout);
        Assert.Equal(Path.Combine("/x", "huggingface", "hub"), From(("XDG_CACHE_HOME", "/x")).CacheDir);
        Assert.Equal(Path.Combine("/h", "hub"), From(("XDG_CACHE_HOME", "/x"), ("HF_HOME", "/h")).CacheDir);
        Assert.Equal("/c", From(("HF_HOME", "/h"), ("HF_HUB_CACHE", "/c")).CacheDir);
        Assert.Equal(Path.Combine(home, "c"), From(("HF_HUB_CACHE", "~/c")).CacheDir);
        Assert.Equal("/old", From(("HF_HOME", "/h"), ("HUGGINGFACE_HUB_CACHE", "/old")).CacheDir);
        Assert.True(From(("HF_HUB_OFFLINE", "1")).Offline);
        Assert.False(From(("HF_HUB_OFFLINE", "0")).Offline);
        Assert.Equal("http://mirror", From(("HF_ENDPOINT", "http://mirror/")).Endpoint);
        Assert.Equal(TimeSpan.FromSeconds(3), From(("HF_HUB_ETAG_TIMEOUT", "3")).Timeout);

        // Token: HF_TOKEN, else $HF_HOME/token.
        Directory.CreateDirectory(cache);
        File.WriteAllText(Path.Combine(cache, "token"), "hf_from_file\n");
        Assert.Equal("hf_from_file", From(("HF_HOME", cache)).Token);
        Assert.Equal("hf_env", From(("HF_HOME", cache), ("HF_TOKEN", "hf_env")).Token);
        Assert.Null(From(("HF_HOME", Path.Combine(cache, "none"))).Token);
    }

    static bool IsPreset(string name) => TaskLM.Models.ModelPresets.All.Any(p => p.Name == name);

    [Theory]
    [InlineData("hf:gpt2", "gpt2", "main")]
    [InlineData("hf:openai-community/gpt2@v1.0", "openai-community/gpt2", "v1.0")]
    [InlineData("google-bert/bert-base-uncased", "google-bert/bert-base-uncased", "main")]
    [InlineData("org/name@0123456789abcdef0123456789abcdef01234567", "org/name", "0123456789abcdef0123456789abcdef01234567")]
    [InlineData("org/name@refs/pr/1", "org/name", "refs/pr/1")]
    [InlineData("distilgpt2", "distilgpt2", "main")]
    [InlineData("bert-base-uncased@main", "bert-base-uncased", "main")]
    public void SpecsThatMeanTheHub(string spec, string repo, string revision)
    {
        Assert.True(HubSpec.TryParse(spec, IsPreset, out var hub));
        Assert.Equal(repo, hub.RepoId);
        Assert.Equal(revision, hub.Revision);
        Assert.Equal(!spec.StartsWith("hf:") && !spec.Contains('/'), hub.IsBareName);
        Assert.Equal(spec.StartsWith("hf:"), hub.IsExplicit);
    }

    [Theory]
    [InlineData("gpt2")]          // TaskLM's preset (random init); hf:gpt2 is the Hub's
    [InlineData("bert-mini")]
    [InlineData("gpt2-tiny")]
    [InlineData("./org/name")]
    [InlineData("/abs/path")]
    [InlineData("runs/x/best")]   // more than one slash: a path
    [InlineData("~/models/x")]
    [InlineData("")]
    public void SpecsThatDoNot(string spec) => Assert.False(HubSpec.TryParse(spec, IsPreset, out _));

    [Fact]
    public void AnExistingFolderIsNeverTheHub()
    {
        string folder = Path.Combine(cache, "org", "name");
        Directory.CreateDirectory(folder);
        string cwd = Environment.CurrentDirectory;
        Assert.False(HubSpec.TryParse(folder, IsPreset, out _));
        Assert.Throws<FormatException>(() => HubSpec.TryParse("hf:org/na me", IsPreset, out _));
        Assert.Throws<FormatException>(() => HubSpec.Parse("org/name@"));
        Assert.Equal("hf:org/name@main", HubSpec.Parse("org/name").ToString());
    }
}
