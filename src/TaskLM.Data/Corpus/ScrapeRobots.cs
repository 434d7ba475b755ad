// robots.txt (RFC 9309): user-agent groups, Allow/Disallow with * and $, longest match wins, Crawl-delay, Sitemap.
using System.Text;

namespace TaskLM.Data.Corpus;

/// <summary>A parsed robots.txt. The group for a crawler is the one whose user-agent token is the longest
/// case-insensitive match inside the crawler's product token (else the "*" group); groups that name the same
/// agent are merged. Among that group's rules the longest matching path pattern decides, Allow winning ties;
/// no matching rule means allowed.</summary>
public sealed class RobotsTxt
{
    private sealed class Group
    {
        public readonly List<string> Agents = [];
        public readonly List<(bool Allow, string Pattern)> Rules = [];
        public double? CrawlDelay;
    }

    private readonly List<Group> _groups = [];

    /// <summary>Sitemap URLs the file lists.</summary>
    public IReadOnlyList<string> Sitemaps { get; }

    /// <summary>A robots.txt that allows everything (no file, or a 4xx answer, per RFC 9309).</summary>
    public static RobotsTxt AllowAll { get; } = Parse("");

    private RobotsTxt(List<Group> groups, List<string> sitemaps) { _groups = groups; Sitemaps = sitemaps; }

    /// <summary>Parses robots.txt text; unknown lines are ignored, as the RFC asks.</summary>
    public static RobotsTxt Parse(string text)
    {
        var groups = new List<Group>();
        var sitemaps = new List<string>();
        Group? current = null;
        bool lastWasAgent = false;
        foreach (string raw in text.Split('\n'))
        {
            string line = raw;
            int hash = line.IndexOf('#');
            if (hash >= 0) line = line[..hash];
            line = line.Trim();
            int colon = line.IndexOf(':');
            if (colon <= 0) continue;
            string key = line[..colon].Trim().ToLowerInvariant();
            string value = line[(colon + 1)..].Trim();
            switch (key)
            {
                case "user-agent":
                    // Consecutive user-agent lines share one group.
                    if (current == null || !lastWasAgent) { current = new Group(); groups.Add(current); }
                    current.Agents.Add(value.ToLowerInvariant());
                    lastWasAgent = true;
                    continue;
                case "allow" or "disallow":
                    // An empty Disallow means "nothing disallowed": it adds no rule.
                    if (current != null && value.Length > 0) current.Rules.Add((key == "allow", value));
                    break;
                case "crawl-delay":
                    if (current != null && double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double d) && d >= 0)
                        current.CrawlDelay = d;
                    break;
                case "sitemap":
                    if (value.Length > 0) sitemaps.Add(value);
                    break;
            }
            lastWasAgent = false;
        }
        return new RobotsTxt(groups, sitemaps);
    }

    /// <summary>Whether <paramref name="userAgent"/> may fetch <paramref name="pathAndQuery"/> (e.g. "/a/b?c=1").</summary>
    public bool IsAllowed(string userAgent, string pathAndQuery)
    {
        if (pathAndQuery.Length == 0) pathAndQuery = "/";
        if (pathAndQuery == "/robots.txt") return true;
        var rules = RulesFor(userAgent).SelectMany(g => g.Rules);
        int bestLen = -1; bool allowed = true;
        foreach (var (allow, pattern) in rules)
        {
            if (!Matches(pattern, pathAndQuery)) continue;
            int len = pattern.Length;
            if (len > bestLen || (len == bestLen && allow)) { bestLen = len; allowed = allow; }
        }
        return allowed;
    }

    /// <summary>Crawl-delay in seconds for <paramref name="userAgent"/>, if the file sets one.</summary>
    public double? CrawlDelay(string userAgent) => RulesFor(userAgent).Select(g => g.CrawlDelay).FirstOrDefault(d => d != null);

    private List<Group> RulesFor(string userAgent)
    {
        // The product token is the name before any "/version": "TaskLM/1.0 (...)" → "tasklm".
        string product = userAgent.Split('/', ' ')[0].ToLowerInvariant();
        int best = 0;
        var chosen = new List<Group>();
        foreach (var g in _groups)
            foreach (string a in g.Agents)
            {
                if (a == "*" || a.Length == 0 || !product.Contains(a, StringComparison.Ordinal)) continue;
                if (a.Length > best) { best = a.Length; chosen.Clear(); }
                if (a.Length == best && !chosen.Contains(g)) chosen.Add(g);
            }
        if (chosen.Count > 0) return chosen;
        return _groups.Where(g => g.Agents.Contains("*")).ToList();
    }

    /// <summary>RFC 9309 matching: the pattern matches a prefix of the path; '*' matches any run of characters;
    /// a final '$' anchors the end. Percent-encodings are compared case-insensitively by decoding unreserved ones.</summary>
    public static bool Matches(string pattern, string path)
    {
        pattern = NormalisePercent(pattern); path = NormalisePercent(path);
        bool anchored = pattern.EndsWith('$');
        if (anchored) pattern = pattern[..^1];
        return Match(pattern, 0, path, 0, anchored);
    }

    private static bool Match(string p, int pi, string s, int si, bool anchored)
    {
        while (pi < p.Length)
        {
            if (p[pi] == '*')
            {
                while (pi < p.Length && p[pi] == '*') pi++;
                if (pi == p.Length) return true;
                for (int k = si; k <= s.Length; k++) if (Match(p, pi, s, k, anchored)) return true;
                return false;
            }
            if (si >= s.Length || p[pi] != s[si]) return false;
            pi++; si++;
        }
        return !anchored || si == s.Length;
    }

    private static string NormalisePercent(string s)
    {
        if (!s.Contains('%')) return s;
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '%' && i + 2 < s.Length && Uri.IsHexDigit(s[i + 1]) && Uri.IsHexDigit(s[i + 2]))
            {
                char c = (char)Convert.ToInt32(s.Substring(i + 1, 2), 16);
                if (char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' or '~') sb.Append(c);
                else sb.Append('%').Append(char.ToUpperInvariant(s[i + 1])).Append(char.ToUpperInvariant(s[i + 2]));
                i += 2;
            }
            else sb.Append(s[i]);
        }
        return sb.ToString();
    }
}
