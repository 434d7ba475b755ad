// A fake Hugging Face Hub on 127.0.0.1 (Kestrel): the real endpoints and headers, an LFS "CDN" on a second port, and faults on demand.
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace TaskLM.Tests.Hub;

/// <summary>
/// Serves repositories as huggingface.co does: GET /api/models/{repo}/revision/{rev} (sha, siblings), HEAD/GET
/// /{repo}/resolve/{rev}/{file} with X-Repo-Commit, ETag (git sha1, weak) for small files, and for LFS files
/// (*.safetensors, *.bin) a 302 to the CDN carrying X-Linked-Etag (sha256) and X-Linked-Size; X-Error-Code on 401/404.
/// Every request is logged with its Authorization header.
/// </summary>
public sealed class FakeHub : IAsyncDisposable
{
    /// <summary>One repository: its files per commit, and the branches/tags naming commits.</summary>
    public sealed class Repo
    {
        public Dictionary<string, string> Refs { get; } = new();                        // main → commit
        public Dictionary<string, Dictionary<string, byte[]>> Commits { get; } = new(); // commit → path → bytes
        public bool Gated { get; init; }
        /// <summary>Files the listing names but resolve answers 404 for.</summary>
        public HashSet<string> Broken { get; } = new();
    }

    public sealed record Request(string Server, string Method, string Path, string? Authorization, string? Range, string? AcceptEncoding);

    public const string GoodToken = "hf_good";
    public ConcurrentDictionary<string, Repo> Repos { get; } = new();
    /// <summary>Repo ids renamed: old → new (answered with a relative 307, as the Hub does for renamed repos).</summary>
    public ConcurrentDictionary<string, string> Renamed { get; } = new();
    public ConcurrentQueue<Request> Log { get; } = new();
    public string Endpoint { get; private set; } = "";
    public string CdnEndpoint { get; private set; } = "";

    /// <summary>CDN answers that break off halfway (a connection cut); counts down.</summary>
    public int CutsLeft;
    /// <summary>Delay before every Hub (not CDN) answer.</summary>
    public TimeSpan HubDelay = TimeSpan.Zero;
    /// <summary>Pause between 16 KiB chunks of a CDN answer (a slow link).</summary>
    public TimeSpan ChunkDelay = TimeSpan.Zero;

    readonly List<WebApplication> apps = new();

    public static async Task<FakeHub> StartAsync()
    {
        var hub = new FakeHub();
        hub.Endpoint = await hub.Serve("hub", hub.HandleHub);
        hub.CdnEndpoint = await hub.Serve("cdn", hub.HandleCdn);
        return hub;
    }

    async Task<string> Serve(string name, RequestDelegate handler)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.Run(async ctx =>
        {
            Log.Enqueue(new Request(name, ctx.Request.Method, ctx.Request.Path.Value!, ctx.Request.Headers.Authorization.FirstOrDefault(), ctx.Request.Headers.Range.FirstOrDefault(), ctx.Request.Headers.AcceptEncoding.FirstOrDefault()));
            await handler(ctx);
        });
        await app.StartAsync();
        apps.Add(app);
        return app.Urls.First().TrimEnd('/');
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var app in apps) { await app.StopAsync(); await app.DisposeAsync(); }
    }

    /// <summary>Adds a commit of <paramref name="repoId"/> holding <paramref name="files"/>, pointed to by <paramref name="refs"/>; returns the commit hash.</summary>
    public string Add(string repoId, IReadOnlyDictionary<string, byte[]> files, bool gated = false, params string[] refs)
    {
        var repo = Repos.GetOrAdd(repoId, _ => new Repo { Gated = gated });
        string commit = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20));
        repo.Commits[commit] = files.ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (string r in refs.Length == 0 ? ["main"] : refs) repo.Refs[r] = commit;
        return commit;
    }

    /// <summary>The files of a fixture folder, plus files a model does not need (they must not be downloaded).</summary>
    public static Dictionary<string, byte[]> FolderFiles(string folder, bool withExtras = true)
    {
        var files = Directory.EnumerateFiles(folder).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);
        if (withExtras)
        {
            files["README.md"] = Encoding.UTF8.GetBytes("# a model card\n");
            files["flax_model.msgpack"] = new byte[1000];
            files["onnx/model.onnx"] = new byte[2000];
        }
        return files;
    }

    public static bool IsLfs(string path) => path.EndsWith(".safetensors") || path.EndsWith(".bin") || path.EndsWith(".msgpack") || path.EndsWith(".onnx");
    public static string Sha256(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));
    public static string GitSha1(byte[] b) => Convert.ToHexStringLower(SHA1.HashData(Encoding.ASCII.GetBytes($"blob {b.Length}\0").Concat(b).ToArray()));

    async Task HandleHub(HttpContext ctx)
    {
        if (HubDelay > TimeSpan.Zero)
            try { await Task.Delay(HubDelay, ctx.RequestAborted); } catch (OperationCanceledException) { return; }
        string path = ctx.Request.Path.Value!;
        bool api = path.StartsWith("/api/models/");
        string rest = api ? path["/api/models/".Length..] : path[1..];
        string marker = api ? "/revision/" : "/resolve/";
        int at = rest.IndexOf(marker, StringComparison.Ordinal);
        if (at < 0) { ctx.Response.StatusCode = 404; return; }
        string repoId = rest[..at];
        string after = rest[(at + marker.Length)..];
        if (Renamed.TryGetValue(repoId, out string? renamed))
        {
            ctx.Response.StatusCode = 307;
            ctx.Response.Headers.Location = (api ? "/api/models/" : "/") + renamed + marker + after;   // relative, same host
            return;
        }
        if (!Repos.TryGetValue(repoId, out var repo))
        {
            // The Hub answers an unknown repo like a private one: 401 without a token, 404 with one.
            Fail(ctx, ctx.Request.Headers.Authorization.Count == 0 ? 401 : 404, "RepoNotFound", "Repository Not Found");
            return;
        }
        if (repo.Gated && ctx.Request.Headers.Authorization.FirstOrDefault() != "Bearer " + GoodToken)
        {
            Fail(ctx, 401, "GatedRepo", $"Access to model {repoId} is restricted. You must have access to it and be authenticated to access it.");
            return;
        }
        string revision, file = "";
        if (api) revision = Uri.UnescapeDataString(after);
        else
        {
            int slash = after.IndexOf('/');
            revision = Uri.UnescapeDataString(after[..slash]);
            file = Uri.UnescapeDataString(after[(slash + 1)..]);
        }
        string? commit = repo.Commits.ContainsKey(revision) ? revision : repo.Refs.GetValueOrDefault(revision);
        if (commit == null) { Fail(ctx, 404, "RevisionNotFound", $"Invalid rev id: {revision}"); return; }
        var files = repo.Commits[commit];
        if (api)
        {
            var siblings = new JsonArray(files.Keys.Select(f => (JsonNode)new JsonObject { ["rfilename"] = f }).ToArray());
            await ctx.Response.WriteAsJsonAsync(new JsonObject { ["id"] = repoId, ["sha"] = commit, ["siblings"] = siblings });
            return;
        }
        ctx.Response.Headers["X-Repo-Commit"] = commit;
        if (!files.TryGetValue(file, out byte[]? bytes) || repo.Broken.Contains(file))
        {
            Fail(ctx, 404, "EntryNotFound", $"{file} does not exist on \"{revision}\"");
            return;
        }
        if (IsLfs(file))
        {
            string sha = Sha256(bytes);
            ctx.Response.StatusCode = 302;
            ctx.Response.Headers["X-Linked-Etag"] = $"\"{sha}\"";
            ctx.Response.Headers["X-Linked-Size"] = bytes.Length.ToString();
            ctx.Response.Headers.ETag = "\"redirect-etag-not-the-file\"";
            ctx.Response.Headers.Location = $"{CdnEndpoint}/repos/{sha}?signed=1";
            cdn[sha] = bytes;
            return;
        }
        ctx.Response.Headers.ETag = $"W/\"{GitSha1(bytes)}\"";
        ctx.Response.ContentLength = bytes.Length;
        if (ctx.Request.Method == "GET") await ctx.Response.Body.WriteAsync(bytes);
    }

    readonly ConcurrentDictionary<string, byte[]> cdn = new();

    async Task HandleCdn(HttpContext ctx)
    {
        string sha = ctx.Request.Path.Value!["/repos/".Length..];
        if (!cdn.TryGetValue(sha, out byte[]? bytes)) { ctx.Response.StatusCode = 403; return; }
        long from = 0;
        if (ctx.Request.Headers.Range.FirstOrDefault() is string range && range.StartsWith("bytes=") && range.EndsWith('-'))
        {
            from = long.Parse(range[6..^1]);
            ctx.Response.StatusCode = 206;
            ctx.Response.Headers.ContentRange = $"bytes {from}-{bytes.Length - 1}/{bytes.Length}";
        }
        ctx.Response.ContentLength = bytes.Length - from;
        if (ctx.Request.Method != "GET") return;
        bool cut = Interlocked.Decrement(ref CutsLeft) >= 0;
        long end = cut ? from + (bytes.Length - from) / 2 : bytes.Length;
        try
        {
            for (long pos = from; pos < end; pos += 16384)
            {
                await ctx.Response.Body.WriteAsync(bytes.AsMemory((int)pos, (int)Math.Min(16384, end - pos)), ctx.RequestAborted);
                if (ChunkDelay > TimeSpan.Zero) { await ctx.Response.Body.FlushAsync(ctx.RequestAborted); await Task.Delay(ChunkDelay, ctx.RequestAborted); }
            }
            if (cut) { await ctx.Response.Body.FlushAsync(); ctx.Abort(); }
        }
        catch (OperationCanceledException) { }
    }

    static void Fail(HttpContext ctx, int status, string code, string message)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.Headers["X-Error-Code"] = code;
        ctx.Response.Headers["X-Error-Message"] = message;
    }

    /// <summary>Requests one server received.</summary>
    public List<Request> To(string server) => Log.Where(r => r.Server == server).ToList();
}
