// Scraping against a local HTTP server: robots.txt obeyed, 503 retried, sitemap read, main text extracted.
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

namespace TaskLM.Tests.Data;

/// <summary>A tiny site on 127.0.0.1 that counts every request per path.</summary>
internal sealed class LocalSite : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly CancellationTokenSource _stop = new();
    private int _flaky;
    public ConcurrentDictionary<string, int> Hits { get; } = new();
    public string Root { get; }

    public LocalSite()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Root = $"http://127.0.0.1:{port}";
        _listener.Prefixes.Add(Root + "/");
        _listener.Start();
        _ = Task.Run(Serve);
    }

    private static string Page(string title, string body) =>
        $"<!DOCTYPE html><html><head><title>{title}</title><script>var x = 1;</script></head><body>"
        + "<nav><a href=\"/\">Home</a> | <a href=\"/a\">A</a></nav>"
        + $"<article><h1>{title}</h1>{body}</article><footer>Copyright footer text</footer></body></html>";

    private async Task Serve()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext ctx;
            try { ctx = await _listener.GetContextAsync(); } catch { return; }
            string path = ctx.Request.Url!.AbsolutePath;
            Hits.AddOrUpdate(path, 1, (_, n) => n + 1);
            var (status, type, body) = path switch
            {
                "/robots.txt" => (200, "text/plain", "User-agent: *\nDisallow: /private\nAllow: /private/ok\n\nUser-agent: OtherBot\nDisallow: /\n"),
                "/" => (200, "text/html", Page("Home", "<p>Welcome to the home page of a tiny test site.</p>"
                    + "<p><a href=\"/a\">Page A</a> <a href=\"/private/secret\">Secret</a> <a href=\"/flaky\">Flaky</a> <a href=\"https://elsewhere.example/\">Out</a></p>")),
                "/a" => (200, "text/html; charset=utf-8", Page("Page A", "<p>Alpha page text about apples and anchors.</p><p><a href=\"/b#frag\">B</a></p>")),
                "/b" => (200, "text/html", Page("Page B", "<p>Beta page text.</p>")),
                "/flaky" => Interlocked.Increment(ref _flaky) == 1 ? (503, "text/plain", "busy") : (200, "text/html", Page("Flaky", "<p>Worked on the second try.</p>")),
                "/private/secret" => (200, "text/html", Page("Secret", "<p>must never be fetched</p>")),
                "/sitemap.xml" => (200, "application/xml", "<?xml version=\"1.0\"?><urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">"
                    + $"<url><loc>{Root}/a</loc></url><url><loc>{Root}/b</loc></url><url><loc>{Root}/private/secret</loc></url></urlset>"),
                _ => (404, "text/plain", "not found"),
            };
            var bytes = Encoding.UTF8.GetBytes(body);
            ctx.Response.StatusCode = status;
            ctx.Response.ContentType = type;
            ctx.Response.ContentLength64 = bytes.Length;
            await ctx.Response.OutputStream.WriteAsync(bytes);
            ctx.Response.Close();
        }
    }

    public void Dispose() { _stop.Cancel(); _listener.Close(); }
}

public class ScrapeTests
{
    private static ScrapeOptions Fast(int depth) => new()
    {
        MaxDepth = depth, PerHostDelay = TimeSpan.Zero, RetryDelay = TimeSpan.FromMilliseconds(20), Timeout = TimeSpan.FromSeconds(10),
    };

    [Fact]
    public async Task CrawlObeysRobotsRetriesA503AndStaysOnTheDomain()
    {
        using var site = new LocalSite();
        using var scraper = new Scraper(Fast(depth: 2));
        var pages = new List<ScrapedPage>();
        await foreach (var p in scraper.CrawlAsync([site.Root + "/"])) pages.Add(p);

        Assert.Equal(["/", "/a", "/flaky", "/b"], pages.Select(p => new Uri(p.Url).AbsolutePath));
        Assert.False(site.Hits.ContainsKey("/private/secret"));
        Assert.Equal([site.Root + "/private/secret"], scraper.Report.DisallowedByRobots);
        Assert.Equal(2, site.Hits["/flaky"]);
        Assert.Equal(1, scraper.Report.Retries);
        Assert.Equal(1, site.Hits["/robots.txt"]);

        var a = pages[1];
        Assert.Equal("Page A", a.Title);
        Assert.Equal("Page A\n\nAlpha page text about apples and anchors.\n\nB", a.Text); // no nav, footer or script
        Assert.Contains("Worked on the second try.", pages[2].Text);
    }

    [Fact]
    public async Task DepthZeroFetchesOnlyTheStartUrls()
    {
        using var site = new LocalSite();
        using var scraper = new Scraper(Fast(depth: 0));
        var pages = new List<ScrapedPage>();
        await foreach (var p in scraper.CrawlAsync([site.Root + "/", site.Root + "/missing"])) pages.Add(p);
        Assert.Single(pages);
        Assert.Equal((site.Root + "/missing", "HTTP 404"), scraper.Report.Failed.Single());
    }

    [Fact]
    public void ScrapeVerbReadsASitemapAndWritesPagesJsonl()
    {
        using var site = new LocalSite();
        string dir = Directory.CreateTempSubdirectory("tasklm-scrape-").FullName;
        try
        {
            string output = Path.Combine(dir, "pages.jsonl");
            var r = CliRunner.Run("data", "scrape", "--sitemap", site.Root + "/sitemap.xml", "--out", output, "--delay", "0", "--retry-delay", "0.02");
            Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
            Assert.Contains("robots.txt disallows", r.Stdout);
            var rows = File.ReadAllLines(output).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
            Assert.Equal([site.Root + "/a", site.Root + "/b"], rows.Select(x => (string)x["url"]!));
            Assert.Equal(["url", "title", "text", "fetched_at"], rows[0].Select(kv => kv.Key));
            Assert.Equal("Page B", (string)rows[1]["title"]!);
            Assert.True(DateTimeOffset.TryParse((string)rows[0]["fetched_at"]!, out _));
            Assert.False(site.Hits.ContainsKey("/private/secret"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    // Examples from RFC 9309 §2.2.2-2.2.3 and Google's robots.txt documentation ("URL matching based on path values").
    [InlineData("Disallow: /fish", "/fish.html", false)]
    [InlineData("Disallow: /fish", "/Fish.asp", true)]
    [InlineData("Disallow: /fish/", "/fish", true)]
    [InlineData("Disallow: /*.php$", "/filename.php", false)]
    [InlineData("Disallow: /*.php$", "/filename.php?parameters", true)]
    [InlineData("Disallow: /fish*.php", "/fishheads/catfish.php?parameters", false)]
    [InlineData("Allow: /p\nDisallow: /", "/page", true)]               // longest match wins
    [InlineData("Allow: /folder\nDisallow: /folder", "/folder/page", true)] // tie: allow
    [InlineData("Allow: /page\nDisallow: /*.htm", "/page.htm", false)]  // the longer pattern wins
    [InlineData("Disallow: /%7Ejoe/", "/~joe/index.html", false)]       // percent-encoding of unreserved chars
    [InlineData("Disallow:", "/anything", true)]                         // empty disallow = allow all
    public void RobotsMatchingFollowsTheStandard(string rules, string path, bool allowed)
    {
        var robots = RobotsTxt.Parse("User-agent: *\n" + rules + "\n");
        Assert.Equal(allowed, robots.IsAllowed("TaskLM/0.1", path));
    }

    [Fact]
    public void RobotsPicksTheMostSpecificUserAgentGroup()
    {
        var robots = RobotsTxt.Parse("""
            # comment
            User-agent: *
            Disallow: /

            User-agent: tasklm
            User-agent: otherbot
            Disallow: /private
            Crawl-delay: 2.5

            Sitemap: https://example.com/sitemap.xml
            """);
        Assert.True(robots.IsAllowed("TaskLM/0.1 (+data scrape)", "/public"));
        Assert.False(robots.IsAllowed("TaskLM/0.1", "/private/x"));
        Assert.False(robots.IsAllowed("SomeoneElse/1.0", "/public"));
        Assert.True(robots.IsAllowed("SomeoneElse/1.0", "/robots.txt"));
        Assert.Equal(2.5, robots.CrawlDelay("TaskLM"));
        Assert.Equal(["https://example.com/sitemap.xml"], robots.Sitemaps);
    }
}
