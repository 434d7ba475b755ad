// A model spec that names a Hugging Face Hub repository (`hf:org/name@rev`, `org/name@rev`, a bare Hub name), and the rule that tells it from a folder or a preset.
using System.Diagnostics.CodeAnalysis;
using System.Text.RegularExpressions;

namespace TaskLM.Data.Hub;

/// <summary>
/// A Hub repository and revision named by a model spec. The naming rule (docs/models-by-name.md):
/// <list type="number">
/// <item><c>hf:org/name[@rev]</c> or <c>hf:name[@rev]</c> always means the Hub;</item>
/// <item><c>org/name[@rev]</c> (one slash) means the Hub unless it is an existing local folder or file;</item>
/// <item>a bare <c>name[@rev]</c> (<c>bert-base-uncased</c>, <c>distilgpt2</c>) means the Hub unless it is an existing
/// local folder or file, or a TaskLM preset name (gpt2, gpt2-tiny, bert-mini, ...) — so <c>gpt2</c> is TaskLM's
/// random-init preset and <c>hf:gpt2</c> the Hub's GPT-2.</item>
/// </list>
/// Paths (starting with ".", "/", "~", or with more than one slash or a backslash) are never Hub ids.
/// </summary>
public sealed record HubSpec
{
    /// <summary>Repository id, <c>org/name</c> or a legacy bare <c>name</c>.</summary>
    public required string RepoId { get; init; }

    /// <summary>Branch, tag or 40-hex commit; "main" when the spec names none.</summary>
    public string Revision { get; init; } = "main";

    /// <summary>True when the spec was a bare name without <c>hf:</c>.</summary>
    public bool IsBareName { get; init; }

    /// <summary>True when the spec said <c>hf:</c>; otherwise a not-found error explains the naming rule (the user may
    /// have meant a local folder or a preset).</summary>
    public bool IsExplicit { get; init; }

    /// <summary>The prefix that always means the Hub.</summary>
    public const string Prefix = "hf:";

    /// <summary>What a not-found bare name is told: how TaskLM reads names.</summary>
    public const string NamingRule =
        "a model spec means the Hugging Face Hub when it is hf:NAME, or ORG/NAME that is not a local folder, or a bare NAME that is " +
        "neither a local folder nor a TaskLM preset (gpt2, bert-mini, ...); write hf:NAME to force the Hub, ./NAME for a folder";

    // HF repo names: letters, digits, '-', '_', '.'; no "--" or ".." inside, not starting/ending with '-' or '.'; at most 96 chars.
    static readonly Regex Part = new(@"^(?!.*(--|\.\.))[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$", RegexOptions.CultureInvariant);

    /// <summary>
    /// Reads <paramref name="spec"/> as a Hub reference by the naming rule above; false when it means a local path or a
    /// preset (<paramref name="isPreset"/> tells TaskLM's preset names). A spec starting with <c>hf:</c> that is not a
    /// valid repo id throws <see cref="FormatException"/> (it can mean nothing else).
    /// </summary>
    public static bool TryParse(string spec, Func<string, bool> isPreset, [NotNullWhen(true)] out HubSpec? result)
    {
        result = null;
        if (string.IsNullOrWhiteSpace(spec)) return false;
        spec = spec.Trim();
        if (spec.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
        {
            result = Split(spec[Prefix.Length..], bare: false)?.With(explicitly: true) ?? throw new FormatException(
                $"'{spec}': not a Hub repository id (expected hf:ORG/NAME[@REVISION] or hf:NAME[@REVISION]; names use letters, digits, '-', '_', '.')");
            return true;
        }
        if (Directory.Exists(spec) || File.Exists(spec)) return false;
        if (spec.StartsWith('.') || spec.StartsWith('/') || spec.StartsWith('~') || spec.Contains('\\')) return false;
        var parsed = Split(spec, bare: !spec.Contains('/'));
        if (parsed == null) return false;
        if (parsed.IsBareName && (isPreset(spec) || isPreset(parsed.RepoId))) return false;
        result = parsed;
        return true;
    }

    /// <summary>A Hub reference from text that can only mean the Hub (e.g. `tasklm models pull`): an optional
    /// <c>hf:</c>, then <c>ORG/NAME[@REV]</c> or <c>NAME[@REV]</c>.</summary>
    public static HubSpec Parse(string spec)
    {
        string s = spec.Trim();
        if (s.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase)) s = s[Prefix.Length..];
        return Split(s, bare: false)?.With(explicitly: true) ?? throw new FormatException(
            $"'{spec}': not a Hub repository id (expected ORG/NAME[@REVISION]; names use letters, digits, '-', '_', '.')");
    }

    static HubSpec? Split(string s, bool bare)
    {
        string repo = s, revision = "main";
        int at = s.IndexOf('@');
        if (at >= 0)
        {
            repo = s[..at];
            revision = s[(at + 1)..];
            if (revision.Length == 0 || revision.Contains('@') || revision.Contains("..") || revision.StartsWith('/')) return null;
        }
        var parts = repo.Split('/');
        if (parts.Length > 2 || parts.Any(p => p.Length == 0 || p.Length > 96 || !Part.IsMatch(p))) return null;
        return new HubSpec { RepoId = repo, Revision = revision, IsBareName = bare };
    }

    HubSpec With(bool explicitly) => this with { IsExplicit = explicitly };

    /// <summary><c>hf:org/name@rev</c>.</summary>
    public override string ToString() => $"{Prefix}{RepoId}@{Revision}";
}
