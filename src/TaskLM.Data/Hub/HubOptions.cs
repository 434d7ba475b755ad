// Where the Hugging Face Hub client talks to and caches into: endpoint, cache folder, token, offline, timeout (huggingface_hub's environment variables).
namespace TaskLM.Data.Hub;

/// <summary>
/// Settings of a <see cref="HubClient"/>. Build them from the process environment with <see cref="FromEnvironment"/>
/// (the same variables Python's huggingface_hub reads), or set them directly (tests, embedding applications), so no
/// caller has to change process-wide environment variables.
/// </summary>
public sealed record HubOptions
{
    /// <summary>The Hub's base URL (HF_ENDPOINT), without a trailing slash.</summary>
    public string Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>The cache root holding <c>models--org--name</c> folders (HF_HUB_CACHE, ...; see <see cref="FromEnvironment"/>).</summary>
    public required string CacheDir { get; init; }

    /// <summary>Access token sent as <c>authorization: Bearer</c> (HF_TOKEN, else the token file), or null.</summary>
    public string? Token { get; init; }

    /// <summary>Only the cache: no request leaves the machine (HF_HUB_OFFLINE=1).</summary>
    public bool Offline { get; init; }

    /// <summary>How long to wait for a connection, response headers, or the next bytes of a download
    /// (HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT, default 10 s). A timeout falls back to the cache.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The model_type values the caller can load (e.g. "gpt2", "bert"), checked on config.json before any
    /// weights are downloaded; null accepts any.</summary>
    public IReadOnlyCollection<string>? SupportedModelTypes { get; init; }

    /// <summary>Receives warnings (e.g. "Hub unreachable, using the cached snapshot"); default: standard error.</summary>
    public Action<string> Warn { get; init; } = m => Console.Error.WriteLine("warning: " + m);

    /// <summary>https://huggingface.co</summary>
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>
    /// The settings huggingface_hub would use in this environment: cache root HF_HUB_CACHE, else $HF_HOME/hub, else
    /// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub; endpoint HF_ENDPOINT; token HF_TOKEN, else the
    /// file $HF_HOME/token (HF_HOME default ~/.cache/huggingface); HF_HUB_OFFLINE=1 (or true/yes/on); timeout
    /// HF_HUB_ETAG_TIMEOUT (seconds). <paramref name="env"/> replaces the process environment (tests).
    /// </summary>
    public static HubOptions FromEnvironment(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        string? Get(string name) => env(name) is { Length: > 0 } v ? v : null;
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string xdgCache = Get("XDG_CACHE_HOME") ?? Path.Combine(home, ".cache");
        string hfHome = Expand(Get("HF_HOME"), home) ?? Path.Combine(xdgCache, "huggingface");
        string cache = Expand(Get("HF_HUB_CACHE") ?? Get("HUGGINGFACE_HUB_CACHE"), home) ?? Path.Combine(hfHome, "hub");   // the second: its older name

        string? token = Get("HF_TOKEN")?.Trim();
        if (token == null)
        {
            string tokenFile = Expand(Get("HF_TOKEN_PATH"), home) ?? Path.Combine(hfHome, "token");
            if (File.Exists(tokenFile)) token = File.ReadAllText(tokenFile).Trim() is { Length: > 0 } t ? t : null;
        }
        double seconds = double.TryParse(Get("HF_HUB_ETAG_TIMEOUT"), System.Globalization.CultureInfo.InvariantCulture, out double s) && s > 0 ? s : 10;
        return new HubOptions
        {
            Endpoint = (Get("HF_ENDPOINT") ?? DefaultEndpoint).TrimEnd('/'),
            CacheDir = cache,
            Token = token,
            Offline = Get("HF_HUB_OFFLINE")?.ToLowerInvariant() is "1" or "true" or "yes" or "on",
            Timeout = TimeSpan.FromSeconds(seconds),
        };
    }

    /// <summary>A leading ~ expanded to the home folder (as Python's os.path.expanduser), or null.</summary>
    static string? Expand(string? path, string home) =>
        path is null ? null : path == "~" ? home : path.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(home, path[2..]) : path;
}
