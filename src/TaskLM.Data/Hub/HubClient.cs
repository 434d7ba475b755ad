// Downloads a model's files from the Hugging Face Hub into huggingface_hub's cache (HEAD resolve, CDN redirects, locks, atomic blobs), or reads them offline.
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using TaskLM.Hf;

namespace TaskLM.Data.Hub;

/// <summary>
/// A Hugging Face Hub client that speaks huggingface_hub's protocol and cache layout, so Python and TaskLM share one
/// cache. <see cref="SnapshotAsync(string, string, IProgress{HubProgress}?, CancellationToken)"/> returns a snapshot
/// folder holding only the files a model needs (<see cref="HubFiles"/>):
/// <list type="number">
/// <item>a 40-hex revision whose snapshot is complete in the cache: no network;</item>
/// <item>offline (HF_HUB_OFFLINE=1): the cache only, or an error naming what is missing;</item>
/// <item>else GET /api/models/{repo}/revision/{rev} (commit and file listing), then per file HEAD
/// /{repo}/resolve/{commit}/{file} (etag, size; an absolute redirect to another host is the CDN, fetched without the
/// token), a download under a per-blob lock into a unique .incomplete file, size and sha256 checks, an atomic rename
/// into blobs/, and a relative symlink in snapshots/. Connection errors and timeouts fall back to the cached snapshot
/// with a warning.</item>
/// </list>
/// </summary>
public sealed class HubClient : IDisposable
{
    readonly HubOptions options;
    readonly HttpClient http;

    /// <summary>A client with the given settings (default: <see cref="HubOptions.FromEnvironment"/>).</summary>
    public HubClient(HubOptions? options = null)
    {
        this.options = options ?? HubOptions.FromEnvironment();
        Cache = new HubCache(this.options.CacheDir);
        // Redirects are followed by hand: relative ones keep the headers, another host (the CDN) gets no token.
        http = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None, ConnectTimeout = this.options.Timeout,
        }) { Timeout = Timeout.InfiniteTimeSpan };
        http.DefaultRequestHeaders.UserAgent.ParseAdd("tasklm/1.0 (huggingface_hub-compatible)");
    }

    /// <summary>The cache this client reads and writes.</summary>
    public HubCache Cache { get; }

    /// <inheritdoc/>
    public void Dispose() => http.Dispose();

    /// <summary>Synchronous <see cref="SnapshotAsync(HubSpec, IProgress{HubProgress}?, CancellationToken)"/>.</summary>
    public HubSnapshot Snapshot(HubSpec spec, IProgress<HubProgress>? progress = null, CancellationToken ct = default) =>
        SnapshotAsync(spec, progress, ct).GetAwaiter().GetResult();

    /// <summary>Synchronous <see cref="SnapshotAsync(string, string, IProgress{HubProgress}?, CancellationToken)"/>.</summary>
    public HubSnapshot Snapshot(string repoId, string revision = "main", IProgress<HubProgress>? progress = null, CancellationToken ct = default) =>
        SnapshotAsync(repoId, revision, progress, ct).GetAwaiter().GetResult();

    /// <summary>The snapshot a parsed spec names. When the spec did not say <c>hf:</c>, an error that means "not
    /// found" (or not reachable) adds the naming rule: the user may have meant a local folder or a preset.</summary>
    public async Task<HubSnapshot> SnapshotAsync(HubSpec spec, IProgress<HubProgress>? progress = null, CancellationToken ct = default)
    {
        try { return await SnapshotAsync(spec.RepoId, spec.Revision, progress, ct).ConfigureAwait(false); }
        catch (HubException e) when (!spec.IsExplicit && e.Kind is HubErrorKind.RepoNotFound or HubErrorKind.Unauthorized or HubErrorKind.NotCached or HubErrorKind.Network)
        {
            string why = spec.IsBareName ? "no local folder or TaskLM preset has that name" : "no local folder has that name";
            throw new HubException(e.Kind, $"{e.Message}. Note: '{spec.RepoId}' was read as a Hugging Face Hub id because {why}; {HubSpec.NamingRule}", e);
        }
    }

    /// <summary>
    /// The model files of <paramref name="repoId"/> at <paramref name="revision"/> (branch, tag or commit) in the local
    /// cache, downloaded when needed. <paramref name="progress"/> hears each download; cancelling leaves no partial
    /// file in the snapshot. Throws <see cref="HubException"/> with a message that says what to do.
    /// </summary>
    public async Task<HubSnapshot> SnapshotAsync(string repoId, string revision = "main", IProgress<HubProgress>? progress = null, CancellationToken ct = default)
    {
        if (HubCache.IsCommit(revision) && Cached(repoId, revision) is { } pinned) return pinned;
        if (options.Offline) return CachedOrExplain(repoId, revision, "offline mode (HF_HUB_OFFLINE=1)");
        try
        {
            return await DownloadSnapshotAsync(repoId, revision, progress, ct).ConfigureAwait(false);
        }
        catch (HubUnreachable e)
        {
            if (Cached(repoId, revision) is { } fallback)
            {
                options.Warn($"{e.Message}; using the cached snapshot of {repoId}@{revision} (commit {fallback.Commit[..7]})");
                return fallback;
            }
            throw new HubException(HubErrorKind.Network, $"{e.Message}, and {repoId}@{revision} is not in the cache {Cache.Root}. " +
                "Check the connection (HF_ENDPOINT if you use a mirror) and try again", e.InnerException);
        }
    }

    async Task<HubSnapshot> DownloadSnapshotAsync(string repoId, string revision, IProgress<HubProgress>? progress, CancellationToken ct)
    {
        var (commit, listing) = await RepoInfoAsync(repoId, revision, ct).ConfigureAwait(false);
        var queue = new Queue<string>(HubFiles.Select(listing, repoId));
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        string folder = Cache.SnapshotFolder(repoId, commit);
        while (queue.TryDequeue(out string? file))
        {
            hashes[file] = await FetchFileAsync(repoId, commit, file, progress, ct).ConfigureAwait(false);
            string local = Path.Combine(folder, file);
            if (file == "config.json" && options.SupportedModelTypes is { } supported) EnsureSupported(folder, supported, repoId);
            if (HubFiles.IsIndex(file)) foreach (string shard in HubFiles.Shards(local)) queue.Enqueue(shard);
        }
        foreach (string absent in HubFiles.Absent(listing)) Cache.MarkNoExist(repoId, commit, absent);
        Cache.WriteRef(repoId, revision, commit);
        return new HubSnapshot { Folder = folder, Repo = repoId, Revision = revision, Commit = commit, FileSha256 = hashes };
    }

    /// <summary>The cached snapshot a revision means, when complete; else null.</summary>
    HubSnapshot? Cached(string repoId, string revision)
    {
        if (Cache.ResolveCommit(repoId, revision) is not string commit) return null;
        string folder = Cache.SnapshotFolder(repoId, commit);
        if (HubFiles.Missing(folder).Count > 0) return null;
        if (options.SupportedModelTypes is { } supported) EnsureSupported(folder, supported, repoId);
        // The same files a download would take (a snapshot Python filled may hold more).
        var files = HubFiles.Select(HubCache.Files(folder), repoId).ToList();
        files.AddRange(files.Where(HubFiles.IsIndex).SelectMany(i => HubFiles.Shards(Path.Combine(folder, i))).ToList());
        var hashes = files.Distinct().ToDictionary(f => f, f => HubCache.FileSha256(Path.Combine(folder, f)), StringComparer.Ordinal);
        return new HubSnapshot { Folder = folder, Repo = repoId, Revision = revision, Commit = commit, FileSha256 = hashes, FromCache = true };
    }

    /// <summary>The cached snapshot, or an error naming what the cache lacks and why the Hub was not asked.</summary>
    HubSnapshot CachedOrExplain(string repoId, string revision, string why)
    {
        if (Cached(repoId, revision) is { } hit) return hit;
        string? commit = Cache.ResolveCommit(repoId, revision);
        string lacks = commit == null
            ? $"no cached revision '{revision}' of {repoId} in {Cache.Root}"
            : $"the cached snapshot {repoId}@{revision} (commit {commit[..7]}) lacks {string.Join(", ", HubFiles.Missing(Cache.SnapshotFolder(repoId, commit)))}";
        throw new HubException(HubErrorKind.NotCached, $"{why}: {lacks}. Pull it once with a connection (tasklm models pull {repoId}@{revision}), " +
            "or unset HF_HUB_OFFLINE");
    }

    /// <summary>
    /// Refuses a folder whose config.json names a model_type outside <paramref name="supported"/> (an adapter folder,
    /// without config.json, passes: its base model is checked when loaded).
    /// </summary>
    public static void EnsureSupported(string folder, IReadOnlyCollection<string> supported, string? repo = null)
    {
        if (!File.Exists(Path.Combine(folder, HfConfig.FileName))) return;
        var config = HfConfig.Load(folder);
        string? modelType = config.Str("model_type");
        if (modelType != null && supported.Contains(modelType)) return;
        string archs = config.Json["architectures"] is JsonArray ? " (" + string.Join(", ", config.Architectures) + ")" : "";
        throw new HubException(HubErrorKind.UnsupportedArchitecture,
            $"{repo ?? folder}: model_type '{modelType ?? "(none)"}'{archs} is not an architecture TaskLM can load; supported model types: {string.Join(", ", supported)}");
    }

    // ---- protocol ----

    async Task<(string Commit, IReadOnlyCollection<string> Files)> RepoInfoAsync(string repoId, string revision, CancellationToken ct)
    {
        string url = $"{options.Endpoint}/api/models/{repoId}/revision/{Uri.EscapeDataString(revision)}";
        using var response = await SendAsync(HttpMethod.Get, url, followOtherHosts: true, rangeFrom: null, ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode) throw Failure(response, repoId, revision, file: null);
        string body;
        using (var timeout = Deadline(ct))
        {
            try { body = await response.Content.ReadAsStringAsync(timeout.Token).ConfigureAwait(false); }
            catch (Exception e) when (IsNetwork(e, ct)) { throw Unreachable(url, e); }
        }
        var json = JsonNode.Parse(body);
        string commit = json?["sha"]?.GetValue<string>() is string sha && HubCache.IsCommit(sha) ? sha
            : throw new HubException(HubErrorKind.Network, $"{url}: the answer has no commit (\"sha\"); is {options.Endpoint} a Hugging Face Hub?");
        var files = (json?["siblings"] as JsonArray ?? []).Select(s => s?["rfilename"]?.GetValue<string>()).OfType<string>().ToHashSet(StringComparer.Ordinal);
        return (commit, files);
    }

    /// <summary>One file into the cache (blob + snapshot link); returns its SHA-256.</summary>
    async Task<string> FetchFileAsync(string repoId, string commit, string file, IProgress<HubProgress>? progress, CancellationToken ct)
    {
        string pointer = Path.Combine(Cache.SnapshotFolder(repoId, commit), file);
        if (HubCache.Present(pointer)) return HubCache.FileSha256(pointer);   // already there (a broken link is not)

        string url = $"{options.Endpoint}/{repoId}/resolve/{commit}/{Uri.EscapeDataString(file).Replace("%2F", "/")}";
        var meta = await HeadAsync(url, repoId, commit, file, ct).ConfigureAwait(false);
        string blob = Cache.BlobPath(repoId, meta.Etag);
        if (!File.Exists(blob))
        {
            await using var held = await LockAsync(Cache.LockPath(repoId, meta.Etag), ct).ConfigureAwait(false);
            if (!File.Exists(blob))   // another process may have finished it while we waited
                await DownloadAsync(meta.Location ?? url, blob, file, meta.Size, meta.Etag, progress, ct).ConfigureAwait(false);
        }
        Cache.Link(repoId, commit, file, meta.Etag);
        return HubCache.IsSha256(meta.Etag) ? meta.Etag : HubCache.FileSha256(pointer);
    }

    sealed record FileMeta(string Etag, long? Size, string? Location);

    async Task<FileMeta> HeadAsync(string url, string repoId, string commit, string file, CancellationToken ct)
    {
        using var response = await SendAsync(HttpMethod.Head, url, followOtherHosts: false, rangeFrom: null, ct).ConfigureAwait(false);
        int status = (int)response.StatusCode;
        if (status >= 400) throw Failure(response, repoId, commit, file);
        string? etag = Header(response, "X-Linked-Etag") ?? Header(response, "ETag");
        if (etag == null) throw new HubException(HubErrorKind.Network, $"{url}: no ETag in the answer; is {options.Endpoint} a Hugging Face Hub?");
        etag = etag.StartsWith("W/", StringComparison.Ordinal) ? etag[2..] : etag;
        etag = etag.Trim('"');
        bool redirect = status is >= 300 and < 400;
        long? size = long.TryParse(Header(response, "X-Linked-Size"), out long linked) ? linked : redirect ? null : response.Content.Headers.ContentLength;
        // A redirect left unfollowed is to another host: the CDN the bytes come from; else the URL reached after
        // relative redirects (a renamed repository).
        string? location = redirect && response.Headers.Location is Uri loc ? new Uri(new Uri(url), loc).AbsoluteUri : response.RequestMessage?.RequestUri?.AbsoluteUri;
        return new FileMeta(etag, size, location);
    }

    /// <summary>
    /// Downloads into a unique <c>{blob}.{random}.incomplete</c> file, resuming with a Range request after a dropped
    /// connection (3 tries), checks size and (for LFS files) SHA-256, then renames into place. The incomplete file is
    /// removed on any failure or cancellation, so the blob either exists whole or not at all.
    /// </summary>
    async Task DownloadAsync(string url, string blob, string file, long? size, string etag, IProgress<HubProgress>? progress, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        string tmp = $"{blob}.{Guid.NewGuid().ToString("N")[..8]}.incomplete";   // as huggingface_hub names it
        try
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            await using (var output = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                var clock = Stopwatch.StartNew();
                long reported = -1, reportedBytes = -1;
                void Report(bool force)
                {
                    if (progress == null || output.Length == reportedBytes || (!force && clock.ElapsedMilliseconds - reported < 100)) return;
                    reported = clock.ElapsedMilliseconds;
                    reportedBytes = output.Length;
                    double rate = output.Length / Math.Max(clock.Elapsed.TotalSeconds, 1e-3);
                    TimeSpan? eta = size is long n && rate > 0 ? TimeSpan.FromSeconds((n - output.Length) / rate) : null;
                    progress.Report(new HubProgress(file, output.Length, size, rate, eta));
                }
                Report(force: true);
                for (int attempt = 1; ; attempt++)
                {
                    try
                    {
                        await ReceiveAsync(url, output, hash, () => Report(force: false), ct).ConfigureAwait(false);
                        break;
                    }
                    catch (HubUnreachable) when (attempt < 3)
                    {
                        await Task.Delay(200 * attempt, ct).ConfigureAwait(false);
                    }
                    catch (HubUnreachable e)
                    {
                        throw new HubUnreachable($"the download of {file} broke off after {output.Length:N0} bytes, 3 times ({e.Message})", e.InnerException);
                    }
                }
                Report(force: true);
                if (size is long expected && output.Length != expected)
                    throw new HubException(HubErrorKind.BadContent, $"{file}: downloaded {output.Length:N0} bytes, the Hub announced {expected:N0}; run the pull again");
            }
            if (HubCache.IsSha256(etag) && Convert.ToHexStringLower(hash.GetHashAndReset()) is var got && got != etag)
                throw new HubException(HubErrorKind.BadContent, $"{file}: SHA-256 {got} does not match the Hub's {etag}; run the pull again");
            File.Move(tmp, blob, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>One GET of the file's bytes appended to <paramref name="output"/> (a Range request when it already holds some).</summary>
    async Task ReceiveAsync(string url, FileStream output, IncrementalHash hash, Action onBytes, CancellationToken ct)
    {
        long have = output.Length;
        using var response = await SendAsync(HttpMethod.Get, url, followOtherHosts: true, rangeFrom: have > 0 ? have : null, ct).ConfigureAwait(false);
        int status = (int)response.StatusCode;
        string host = response.RequestMessage?.RequestUri?.Authority ?? url;
        if (status >= 500) throw new HubUnreachable($"HTTP {status} from {host}", null);
        if (status >= 400) throw new HubException(HubErrorKind.Network, $"{url}: HTTP {status} from {host} while downloading; run the pull again");
        if (have > 0 && response.StatusCode != HttpStatusCode.PartialContent)
        {
            // The server ignored the range: start over (the hash too).
            output.SetLength(0);
            hash.GetHashAndReset();
        }
        await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var buffer = new byte[1 << 16];
        while (true)
        {
            int n;
            using (var timeout = Deadline(ct))
            {
                try { n = await body.ReadAsync(buffer, timeout.Token).ConfigureAwait(false); }
                catch (Exception e) when (IsNetwork(e, ct)) { throw Unreachable(url, e); }
            }
            if (n == 0) return;
            await output.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            hash.AppendData(buffer, 0, n);
            onBytes();
        }
    }

    /// <summary>
    /// Sends a request with <c>Accept-Encoding: identity</c> and the token, following redirects by hand: relative ones
    /// (same host) keep every header; one to another host (the CDN) is followed without the token when
    /// <paramref name="followOtherHosts"/>, else returned as is (HEAD reads the file's metadata from it).
    /// Connection errors and timeouts become <see cref="HubUnreachable"/>.
    /// </summary>
    async Task<HttpResponseMessage> SendAsync(HttpMethod method, string url, bool followOtherHosts, long? rangeFrom, CancellationToken ct)
    {
        var uri = new Uri(url);
        bool sendToken = options.Token != null && uri.Authority == new Uri(options.Endpoint).Authority;   // the token is for the Hub only
        for (int hop = 0; hop < 10; hop++)
        {
            using var request = new HttpRequestMessage(method, uri);
            request.Headers.AcceptEncoding.ParseAdd("identity");
            if (sendToken) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", options.Token);
            if (rangeFrom is long from) request.Headers.Range = new RangeHeaderValue(from, null);
            HttpResponseMessage response;
            using (var timeout = Deadline(ct))
            {
                try { response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false); }
                catch (Exception e) when (IsNetwork(e, ct)) { throw Unreachable(uri.AbsoluteUri, e); }
            }
            if ((int)response.StatusCode is 301 or 302 or 303 or 307 or 308 && response.Headers.Location is Uri location)
            {
                var next = location.IsAbsoluteUri ? location : new Uri(uri, location);
                bool sameHost = next.Scheme == uri.Scheme && next.Authority == uri.Authority;
                if (!sameHost && !followOtherHosts) return response;
                response.Dispose();
                if (!sameHost) sendToken = false;   // never hand the Hub token to a CDN
                uri = next;
                continue;
            }
            return response;
        }
        throw new HubException(HubErrorKind.Network, $"{url}: more than 10 redirects");
    }

    CancellationTokenSource Deadline(CancellationToken ct)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(options.Timeout);
        return cts;
    }

    /// <summary>A network failure (not the caller's cancellation).</summary>
    static bool IsNetwork(Exception e, CancellationToken ct) =>
        !ct.IsCancellationRequested && e is HttpRequestException or IOException or OperationCanceledException;

    HubUnreachable Unreachable(string url, Exception e)
    {
        var host = new Uri(url).Authority;
        string what = e is OperationCanceledException ? $"no answer from {host} within {options.Timeout.TotalSeconds:0.#} s" : $"{host} could not be reached ({e.Message})";
        return new HubUnreachable(what, e);
    }

    /// <summary>A server error (5xx) lets the caller fall back to the cache; anything else is the user's to act on.</summary>
    Exception Failure(HttpResponseMessage response, string repoId, string revision, string? file) =>
        (int)response.StatusCode >= 500 ? new HubUnreachable($"HTTP {(int)response.StatusCode} from {response.RequestMessage?.RequestUri?.Authority}", null)
            : Error(response, repoId, revision, file);

    /// <summary>The error a failed answer means, with what to do about it.</summary>
    HubException Error(HttpResponseMessage response, string repoId, string revision, string? file)
    {
        int status = (int)response.StatusCode;
        string? code = Header(response, "X-Error-Code");
        string said = Header(response, "X-Error-Message") is string m ? $" (the Hub says: {m})" : "";
        string tokenHelp = options.Token == null
            ? "set HF_TOKEN to an access token of an account that may read it (from " + options.Endpoint + "/settings/tokens), or write the token to $HF_HOME/token"
            : "the token sent (HF_TOKEN or $HF_HOME/token) does not grant access: check it, and that its account may read the repository";
        if (code == "GatedRepo")
            return new HubException(HubErrorKind.Unauthorized, $"{repoId} is a gated repository: accept its terms on {options.Endpoint}/{repoId}, then {tokenHelp}{said}");
        if (code == "RepoNotFound" || (status == 404 && file == null && code == null))
            return new HubException(HubErrorKind.RepoNotFound, $"repository {repoId} was not found on {options.Endpoint}; check the name " +
                $"(ORG/NAME), or if it is private, {tokenHelp}{said}");
        if (status is 401 or 403)
            return new HubException(HubErrorKind.Unauthorized, $"{repoId}: access denied (HTTP {status}): the repository is private or gated; {tokenHelp}{said}");
        if (code == "RevisionNotFound")
            return new HubException(HubErrorKind.RevisionNotFound, $"{repoId}: revision '{revision}' was not found (a branch, tag or commit of the repository){said}");
        if (code == "EntryNotFound" || status == 404)
            return new HubException(HubErrorKind.EntryNotFound, $"{repoId}: file '{file}' was not found at revision '{revision}'{said}");
        return new HubException(HubErrorKind.Network, $"{response.RequestMessage?.RequestUri}: unexpected HTTP {status}{said}");
    }

    static string? Header(HttpResponseMessage r, string name) =>
        r.Headers.TryGetValues(name, out var v) || r.Content.Headers.TryGetValues(name, out v) ? v.FirstOrDefault() : null;

    /// <summary>An exclusive OS lock on a blob's lock file (FileShare.None: flock on Unix, as Python's filelock),
    /// waited for while another process downloads the same blob.</summary>
    static async Task<FileStream> LockAsync(string path, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        while (true)
        {
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) { await Task.Delay(100, ct).ConfigureAwait(false); }
        }
    }

    /// <summary>The Hub could not be reached, timed out, or dropped the connection: the caller may fall back to the cache.</summary>
    sealed class HubUnreachable(string message, Exception? inner) : Exception(message, inner);
}
