// `tasklm models pull|list|rm`: models by name from the Hugging Face Hub, in huggingface_hub's shared cache (docs/models-by-name.md).
using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using TaskLM.Data.Hub;
using TaskLM.Models;

namespace TaskLM.Cli.Commands;

/// <summary>The Hub subcommands of <c>tasklm models</c> (which alone still prints the preset table).</summary>
public static class ModelHubCommands
{
    /// <summary>Adds pull, list and rm under <paramref name="models"/>.</summary>
    public static void AddTo(Command models)
    {
        models.Subcommands.Add(Pull());
        models.Subcommands.Add(List());
        models.Subcommands.Add(Remove());
    }

    static Command Pull()
    {
        var cmd = new Command("pull", "Download a model from the Hugging Face Hub into the shared cache (HF_HUB_CACHE / HF_HOME; HF_TOKEN for gated or private repos) and print its snapshot folder and commit");
        var spec = new Argument<string>("REPO") { Description = "ORG/NAME[@REVISION] (hf: prefix optional; a bare NAME is a Hub name here)" };
        var revision = new Option<string?>("--revision") { Description = "Branch, tag or commit (default: the @REVISION of REPO, else main)" };
        var json = Global.JsonOption();
        cmd.Arguments.Add(spec);
        cmd.Options.Add(revision);
        cmd.Options.Add(json);
        cmd.SetAction(async (p, ct) =>
        {
            var hub = HubSpec.Parse(p.GetValue(spec)!);
            if (p.GetValue(revision) is string r) hub = hub with { Revision = r };
            var options = HubOptions.FromEnvironment() with { SupportedModelTypes = ModelFamilies.All.Select(f => f.ModelType).ToArray() };
            using var client = new HubClient(options);
            // Ctrl-C/SIGTERM cancel the download: the client removes the file it was writing (files already complete
            // stay in the cache), then we exit 130/143. A second signal ends the process at once.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            int signal = 0;
            void OnSignal(PosixSignalContext c)
            {
                if (Interlocked.CompareExchange(ref signal, c.Signal == PosixSignal.SIGTERM ? 143 : 130, 0) != 0) return;
                c.Cancel = true;
                stop.Cancel();
            }
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
            try { return await PullAsync(p, client, hub, stop.Token); }
            catch (OperationCanceledException) when (signal != 0)
            {
                Console.Error.WriteLine($"interrupted: {hub.RepoId} is not complete in the cache (the partial file was removed); run the same pull to finish it");
                return signal;
            }
        });
        return cmd;

        async Task<int> PullAsync(ParseResult p, HubClient client, HubSpec hub, CancellationToken ct)
        {
            HubSnapshot snap;
            if (p.GetValue(json) || Console.IsOutputRedirected) snap = await client.SnapshotAsync(hub, null, ct);
            else
            {
                snap = null!;
                await AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
                    .StartAsync(async ctx =>
                    {
                        var bars = new Dictionary<string, ProgressTask>();
                        var progress = new Progress<HubProgress>(h =>
                        {
                            lock (bars)
                            {
                                if (!bars.TryGetValue(h.File, out var bar))
                                    bars[h.File] = bar = ctx.AddTask(Markup.Escape(h.File), maxValue: Math.Max(1, h.Total ?? 1));
                                if (h.Total is long total) bar.MaxValue = Math.Max(1, total);
                                bar.Value = h.Bytes;
                            }
                        });
                        snap = await client.SnapshotAsync(hub, progress, ct);
                        lock (bars) foreach (var bar in bars.Values) bar.Value = bar.MaxValue;
                    });
            }
            if (p.GetValue(json))
            {
                var o = snap.Provenance();
                o["folder"] = snap.Folder;
                o["from_cache"] = snap.FromCache;
                Console.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            AnsiConsole.MarkupLine($"[bold]{Markup.Escape(snap.Repo)}[/]@{Markup.Escape(snap.Revision)}: commit {snap.Commit}, {snap.FileSha256.Count} files" +
                (snap.FromCache ? " (from the cache)" : ""));
            Console.WriteLine(snap.Folder);
            return 0;
        }
    }

    static Command List()
    {
        var cmd = new Command("list", "Models in the local Hugging Face Hub cache, Python's downloads included: repo, revisions, commit, size");
        var cached = new Option<bool>("--cached") { Description = "List the local cache (the only listing there is; accepted for clarity)" };
        var json = Global.JsonOption();
        cmd.Options.Add(cached);
        cmd.Options.Add(json);
        cmd.SetAction(p =>
        {
            var cache = new HubCache(HubOptions.FromEnvironment().CacheDir);
            var repos = cache.List();
            if (p.GetValue(json))
            {
                var o = new JsonObject
                {
                    ["cache"] = cache.Root,
                    ["repos"] = new JsonArray(repos.Select(r => (JsonNode)new JsonObject
                    {
                        ["repo"] = r.Repo, ["folder"] = r.Folder, ["bytes"] = r.Bytes,
                        ["revisions"] = new JsonArray(r.Revisions.Select(v => (JsonNode)new JsonObject
                        {
                            ["commit"] = v.Commit, ["refs"] = new JsonArray(v.Refs.Select(x => (JsonNode)x).ToArray()),
                            ["files"] = v.Files, ["bytes"] = v.Bytes, ["folder"] = v.Folder,
                        }).ToArray()),
                    }).ToArray()),
                };
                Console.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            if (repos.Count == 0)
            {
                AnsiConsole.MarkupLine($"No models in the Hub cache {Markup.Escape(cache.Root)} (tasklm models pull ORG/NAME adds one).");
                return 0;
            }
            var table = new Table().AddColumns("repo", "revision", "commit", "files", "size");
            foreach (var r in repos)
                foreach (var v in r.Revisions)
                    table.AddRow(Markup.Escape(r.Repo), Markup.Escape(v.Refs.Count > 0 ? string.Join(", ", v.Refs) : "(commit)"), v.Commit[..Math.Min(12, v.Commit.Length)],
                        v.Files.ToString(), Size(v.Bytes));
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"[grey]{Markup.Escape(cache.Root)}: {repos.Count} repo(s), {Size(repos.Sum(r => r.Bytes))} on disk (blobs shared by revisions counted once).[/]");
            return 0;
        });
        return cmd;
    }

    static Command Remove()
    {
        var cmd = new Command("rm", "Remove a model from the Hub cache, or one revision of it (blobs other revisions use stay)");
        var spec = new Argument<string>("REPO") { Description = "ORG/NAME[@REVISION]" };
        var revision = new Option<string?>("--revision") { Description = "Only this branch, tag or commit" };
        cmd.Arguments.Add(spec);
        cmd.Options.Add(revision);
        cmd.SetAction(p =>
        {
            string text = p.GetValue(spec)!;
            var hub = HubSpec.Parse(text);
            string? rev = p.GetValue(revision) ?? (text.Contains('@') ? hub.Revision : null);
            var cache = new HubCache(HubOptions.FromEnvironment().CacheDir);
            long freed = cache.Remove(hub.RepoId, rev);
            AnsiConsole.MarkupLine($"removed {Markup.Escape(hub.RepoId)}{(rev != null ? "@" + Markup.Escape(rev) : "")} from {Markup.Escape(cache.Root)}: {Size(freed)} freed");
            return 0;
        });
        return cmd;
    }

    static string Size(long n) => n >= 1L << 30 ? $"{n / (double)(1L << 30):0.00} GiB" : n >= 1L << 20 ? $"{n / (double)(1L << 20):0.0} MiB" : $"{n / 1024.0:0.0} KiB";
}
