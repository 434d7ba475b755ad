// A polite crawler: robots.txt, per-host rate limit, retries with backoff and timeouts (Polly), same-domain depth.
using System.IO.Compression;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace TaskLM.Data.Corpus;

/// <summary>Crawl settings.</summary>
public sealed class ScrapeOptions
{
    /// <summary>User-Agent header; its product token ("TaskLM") picks the robots.txt group.</summary>
    public string UserAgent { get; set; } = "TaskLM/0.1 (+data scrape)";

    /// <summary>Link depth to follow from each start URL: 0 = only the start URLs.</summary>
    public int MaxDepth { get; set; }

    /// <summary>Follow links only to the start URLs' hosts.</summary>
    public bool SameDomain { get; set; } = true;

    /// <summary>Stop after this many pages.</summary>
    public int MaxPages { get; set; } = 1000;

    /// <summary>Least time between two requests to one host (robots.txt Crawl-delay wins when longer).</summary>
    public TimeSpan PerHostDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Timeout of one attempt (headers and body).</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Retries after the first attempt on network errors, timeouts, 408, 429 and 5xx.</summary>
    public int Retries { get; set; } = 3;

    /// <summary>First retry delay; doubles each retry.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Honour robots.txt.</summary>
    public bool RespectRobots { get; set; } = true;
}

/// <summary>One scraped page, as written to pages.jsonl.</summary>
public sealed record ScrapedPage(string Url, string Title, string Text, DateTimeOffset FetchedAt)
{
    /// <summary>{"url", "title", "text", "fetched_at"} with an ISO 8601 UTC time.</summary>
    public JsonObject ToJson() => new()
    {
        ["url"] = Url, ["title"] = Title, ["text"] = Text,
        ["fetched_at"] = FetchedAt.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture),
    };
}

/// <summary>What the crawl did besides the pages: every URL not turned into a page, with why.</summary>
public sealed class ScrapeReport
{
    /// <summary>Pages written.</summary>
    public int Fetched { get; set; }

    /// <summary>URLs robots.txt forbids.</summary>
    public List<string> DisallowedByRobots { get; } = [];

    /// <summary>URLs that failed, with the reason (status code, error), after retries.</summary>
    public List<(string Url, string Reason)> Failed { get; } = [];

    /// <summary>URLs skipped because their content is not HTML or text.</summary>
    public List<(string Url, string ContentType)> NotHtml { get; } = [];

    /// <summary>Requests retried (all URLs together).</summary>
    public int Retries { get; set; }

    /// <summary>URLs not visited because <see cref="ScrapeOptions.MaxPages"/> was reached.</summary>
    public int LeftOverAtLimit { get; set; }
}

/// <summary>Fetches pages politely and extracts their main text. One request at a time; each host waits
/// <see cref="ScrapeOptions.PerHostDelay"/> between requests.</summary>
public sealed class Scraper : IDisposable
{
    private readonly ScrapeOptions _o;
    private readonly HttpClient _http;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;
    private readonly Dictionary<string, RobotsTxt> _robots = [];
    private readonly Dictionary<string, string> _robotsErrors = [];
    private readonly Dictionary<string, DateTime> _nextRequest = [];

    /// <summary>What happened, filled in as the crawl runs.</summary>
    public ScrapeReport Report { get; } = new();

    /// <summary>A scraper; <paramref name="handler"/> replaces the network (tests).</summary>
    public Scraper(ScrapeOptions options, HttpMessageHandler? handler = null)
    {
        _o = options;
        _http = handler != null ? new HttpClient(handler) : new HttpClient(new SocketsHttpHandler
        {
            AutomaticDecompression = DecompressionMethods.All,
            AllowAutoRedirect = true,
            MaxAutomaticRedirections = 5,
        });
        _http.Timeout = System.Threading.Timeout.InfiniteTimeSpan; // Polly's per-attempt timeout governs
        _http.DefaultRequestHeaders.UserAgent.ParseAdd(options.UserAgent);
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage>();
        if (options.Retries > 0)
            builder.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                ShouldHandle = new PredicateBuilder<HttpResponseMessage>()
                    .Handle<HttpRequestException>()
                    .Handle<TimeoutRejectedException>()
                    .HandleResult(r => (int)r.StatusCode >= 500 || r.StatusCode is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests),
                MaxRetryAttempts = options.Retries,
                Delay = options.RetryDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = false,
                OnRetry = args => { Report.Retries++; args.Outcome.Result?.Dispose(); return default; },
            });
        // Added after the retry, so the timeout is per attempt.
        _pipeline = builder.AddTimeout(options.Timeout).Build();
    }

    /// <summary>Crawls from <paramref name="seeds"/> breadth-first, yielding each page with text as it is fetched.</summary>
    public async IAsyncEnumerable<ScrapedPage> CrawlAsync(IEnumerable<string> seeds, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var queue = new Queue<(Uri Url, int Depth)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var hosts = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (string s in seeds)
        {
            if (!Uri.TryCreate(s.Trim(), UriKind.Absolute, out var u) || (u.Scheme != Uri.UriSchemeHttp && u.Scheme != Uri.UriSchemeHttps))
                throw new ArgumentException($"not an http(s) URL: '{s}'");
            u = new UriBuilder(u) { Fragment = "" }.Uri;
            if (seen.Add(u.AbsoluteUri)) queue.Enqueue((u, 0));
            hosts.Add(u.Authority);
        }

        while (queue.Count > 0)
        {
            if (Report.Fetched >= _o.MaxPages) { Report.LeftOverAtLimit = queue.Count; yield break; }
            var (url, depth) = queue.Dequeue();
            if (_o.RespectRobots && !(await RobotsFor(url, ct)).IsAllowed(_o.UserAgent, url.PathAndQuery))
            {
                if (_robotsErrors.TryGetValue(url.Scheme + "://" + url.Authority, out var why))
                    Report.Failed.Add((url.AbsoluteUri, $"{why} (while fetching robots.txt; RFC 9309: an unreachable robots.txt means no page is fetched)"));
                else Report.DisallowedByRobots.Add(url.AbsoluteUri);
                continue;
            }
            var (status, contentType, body, error) = await GetAsync(url, ct);
            if (error != null || status is < 200 or >= 300)
            {
                Report.Failed.Add((url.AbsoluteUri, error ?? $"HTTP {status}"));
                continue;
            }
            ExtractedPage page;
            if (contentType.Contains("html", StringComparison.OrdinalIgnoreCase)) page = ContentExtractor.Extract(body!, url);
            else if (contentType.StartsWith("text/plain", StringComparison.OrdinalIgnoreCase)) page = new ExtractedPage("", CleaningText.Whitespace(body!), []);
            else { Report.NotHtml.Add((url.AbsoluteUri, contentType)); continue; }

            Report.Fetched++;
            yield return new ScrapedPage(url.AbsoluteUri, page.Title, page.Text, DateTimeOffset.UtcNow);

            if (depth >= _o.MaxDepth) continue;
            foreach (var link in page.Links)
            {
                if (_o.SameDomain && !hosts.Contains(link.Authority)) continue;
                if (seen.Add(link.AbsoluteUri)) queue.Enqueue((link, depth + 1));
            }
        }
    }

    /// <summary>Page URLs listed by a sitemap (a &lt;urlset&gt;, or a &lt;sitemapindex&gt; whose sitemaps are read in
    /// turn, up to 50; gzip'd sitemaps are unpacked). robots.txt applies to the sitemap itself too.</summary>
    public async Task<List<string>> ReadSitemapAsync(string sitemapUrl, CancellationToken ct = default)
    {
        var urls = new List<string>();
        var todo = new Queue<string>([sitemapUrl]);
        int read = 0;
        while (todo.Count > 0 && read < 50)
        {
            var u = new Uri(todo.Dequeue());
            read++;
            if (_o.RespectRobots && !(await RobotsFor(u, ct)).IsAllowed(_o.UserAgent, u.PathAndQuery))
            {
                if (_robotsErrors.TryGetValue(u.Scheme + "://" + u.Authority, out var why)) Report.Failed.Add((u.AbsoluteUri, $"{why} (while fetching robots.txt)"));
                else Report.DisallowedByRobots.Add(u.AbsoluteUri);
                continue;
            }
            var (status, _, body, error, bytes) = await GetBytesAsync(u, ct);
            if (error != null || status is < 200 or >= 300) { Report.Failed.Add((u.AbsoluteUri, error ?? $"HTTP {status}")); continue; }
            if (bytes!.Length > 2 && bytes[0] == 0x1f && bytes[1] == 0x8b)
            {
                using var gz = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
                using var reader = new StreamReader(gz);
                body = await reader.ReadToEndAsync(ct);
            }
            XDocument xml;
            try { xml = XDocument.Parse(body!); }
            catch (System.Xml.XmlException e) { throw new InvalidDataException($"{u}: not a sitemap ({e.Message})", e); }
            var root = xml.Root!;
            foreach (var loc in root.Descendants().Where(e => e.Name.LocalName == "loc"))
            {
                string v = loc.Value.Trim();
                if (v.Length == 0) continue;
                if (root.Name.LocalName == "sitemapindex") todo.Enqueue(v); else urls.Add(v);
            }
        }
        return urls;
    }

    private async Task<RobotsTxt> RobotsFor(Uri url, CancellationToken ct)
    {
        string key = url.Scheme + "://" + url.Authority;
        if (_robots.TryGetValue(key, out var r)) return r;
        var (status, _, body, error) = await GetAsync(new Uri(key + "/robots.txt"), ct);
        // RFC 9309: 4xx = no restrictions; unreachable or 5xx (after retries) = assume complete disallow.
        if (error != null || status >= 500)
        {
            r = RobotsTxt.Parse("User-agent: *\nDisallow: /");
            // Say why, so the report does not blame robots.txt for a host that could not be reached at all.
            _robotsErrors[key] = error ?? $"robots.txt answered HTTP {status}";
        }
        else if (status >= 400) r = RobotsTxt.AllowAll;
        else r = RobotsTxt.Parse(body ?? "");
        _robots[key] = r;
        return r;
    }

    private async Task<(int Status, string ContentType, string? Body, string? Error)> GetAsync(Uri url, CancellationToken ct)
    {
        var (status, type, body, error, _) = await GetBytesAsync(url, ct);
        return (status, type, body, error);
    }

    private async Task<(int Status, string ContentType, string? Body, string? Error, byte[]? Bytes)> GetBytesAsync(Uri url, CancellationToken ct)
    {
        try
        {
            using var resp = await _pipeline.ExecuteAsync(async token =>
            {
                await WaitTurn(url, token);
                var r = await _http.GetAsync(url, HttpCompletionOption.ResponseContentRead, token);
                return r;
            }, ct);
            byte[] bytes = await resp.Content.ReadAsByteArrayAsync(ct);
            string type = resp.Content.Headers.ContentType?.MediaType ?? "";
            var enc = System.Text.Encoding.UTF8;
            try { if (resp.Content.Headers.ContentType?.CharSet is { Length: > 0 } cs) enc = System.Text.Encoding.GetEncoding(cs.Trim('"')); }
            catch (ArgumentException) { /* unknown charset: UTF-8 */ }
            return ((int)resp.StatusCode, type, enc.GetString(bytes), null, bytes);
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutRejectedException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            string why = e switch
            {
                TimeoutRejectedException => $"timed out after {_o.Timeout.TotalSeconds:0.#}s",
                HttpRequestException { HttpRequestError: HttpRequestError.NameResolutionError } => $"host '{url.Host}' could not be resolved (DNS lookup failed)",
                HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError } => $"could not connect to {url.Authority} ({e.Message})",
                _ => e.Message,
            };
            return (0, "", null, why, null);
        }
    }

    // Per-host politeness: wait until this host's next slot, then book the one after.
    private async Task WaitTurn(Uri url, CancellationToken ct)
    {
        string host = url.Authority;
        double delay = _o.PerHostDelay.TotalSeconds;
        if (_robots.TryGetValue(url.Scheme + "://" + host, out var r) && r.CrawlDelay(_o.UserAgent) is { } cd) delay = Math.Max(delay, cd);
        var now = DateTime.UtcNow;
        if (_nextRequest.TryGetValue(host, out var next) && next > now) await Task.Delay(next - now, ct);
        _nextRequest[host] = DateTime.UtcNow.AddSeconds(delay);
    }

    /// <inheritdoc/>
    public void Dispose() => _http.Dispose();
}
