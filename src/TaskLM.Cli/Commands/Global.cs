// Options every verb shares (device, threads, verbosity) and the one-line error report.
using System.CommandLine;
using System.Text.Json;
using Spectre.Console;
using TaskLM.Native;
using TorchSharp;

namespace TaskLM.Cli.Commands;

/// <summary>Options shared by all verbs, and helpers verbs use to start torch and print results.</summary>
public static class Global
{
    /// <summary>Added to every verb that runs a model (see <see cref="AddTorchOptions"/>), not to data verbs.</summary>
    public static readonly Option<string> Device = new("--device")
    {
        Description = "Where models run: auto (CUDA when it initialises, else CPU), cpu, cuda or cuda:N",
        DefaultValueFactory = _ => "auto",
    };

    /// <summary>libtorch's threads on model verbs; the worker count of `data encode`.</summary>
    public static readonly Option<int> Threads = new("--threads")
    {
        Description = "CPU threads for libtorch (0 = libtorch's default)",
        DefaultValueFactory = _ => 0,
    };

    /// <summary>Verb groups and verbs that never run a model: they do not list --device/--threads.</summary>
    static readonly string[] DataVerbs = ["data", "metrics", "report", "tokenize", "tokenizer", "recipes", "recipe"];

    /// <summary>Subverbs of a model verb group that never run a model (the Hub cache verbs).</summary>
    static readonly string[] NoModelSubverbs = ["models pull", "models list", "models rm"];

    /// <summary>Adds --device and --threads to every verb under <paramref name="root"/> that runs a model (every
    /// verb but the data, metrics, report, tokenizer and recipe ones), so a new verb gets them without a line of its own;
    /// `data encode` takes --threads (its worker count).</summary>
    public static void AddTorchOptions(Command root)
    {
        foreach (var verb in root.Subcommands)
        {
            if (!DataVerbs.Contains(verb.Name)) AddTo(verb, Device, Threads);
            else if (verb.Name == "data") foreach (var sub in verb.Subcommands.Where(c => c.Name == "encode")) AddTo(sub, Threads);
        }
        static void AddTo(Command c, params Option[] options)
        {
            // A group gets them only when it runs on its own too (`tasklm models`); its subverbs by the same rule.
            foreach (var sub in c.Subcommands.Where(sub => !NoModelSubverbs.Contains($"{c.Name} {sub.Name}"))) AddTo(sub, options);
            if (c.Subcommands.Count > 0 && c.Action == null) return;
            foreach (var o in options) if (!c.Options.Contains(o)) c.Options.Add(o);
        }
    }

    /// <summary>The output of a verb, a file or a folder, whichever the verb writes: always <c>--out</c>. A verb
    /// that used another spelling before keeps it as a hidden <see cref="OutputOption.Legacy"/> alias (scripts).</summary>
    public static OutputOption OutOption(string description, bool required = true, string? legacy = null) => new(description, required, legacy);

    /// <summary><c>--out</c>, with its requirement checked when read (so a legacy spelling can stand in).</summary>
    public sealed class OutputOption : Option<string?>
    {
        public OutputOption(string description, bool required, string? legacy) : base("--out")
        {
            Description = required ? description + " (required)" : description;
            HelpName = "path";
            MustBeGiven = required;
            if (legacy != null) Legacy = new Option<string?>(legacy) { Hidden = true, Description = "Same as --out" };
        }

        /// <summary>True when the verb cannot run without it.</summary>
        public bool MustBeGiven { get; }
        /// <summary>The older spelling (--output, --out-dir), hidden from help.</summary>
        public Option<string?>? Legacy { get; }

        /// <summary>Adds this option (and its hidden legacy spelling) to a command.</summary>
        public OutputOption AddTo(Command cmd)
        {
            cmd.Options.Add(this);
            if (Legacy != null) cmd.Options.Add(Legacy);
            return this;
        }

        /// <summary>The path given, or null when optional and absent; a usage error when required and absent.</summary>
        public string? Read(ParseResult p) =>
            p.GetValue(this) ?? (Legacy != null ? p.GetValue(Legacy) : null)
            ?? (MustBeGiven ? throw new UsageException($"missing option --out ({Description!.Replace(" (required)", "")})") : null);
    }

    /// <summary>A verb's input files, positional (one or more), with the older <c>--input</c> spelling hidden.</summary>
    public sealed class InputFiles
    {
        readonly Argument<string[]> _arg;
        readonly Option<string[]> _legacy;

        public InputFiles(Command cmd, string description)
        {
            _arg = new Argument<string[]>("inputs") { Description = description, Arity = ArgumentArity.ZeroOrMore, HelpName = "INPUT..." };
            _legacy = new Option<string[]>("--input") { Hidden = true, AllowMultipleArgumentsPerToken = true, Description = "Same as the positional inputs" };
            cmd.Arguments.Add(_arg);
            cmd.Options.Add(_legacy);
        }

        /// <summary>The inputs given (at least one, else a usage error).</summary>
        public string[] Read(ParseResult p)
        {
            var all = (p.GetValue(_arg) ?? []).Concat(p.GetValue(_legacy) ?? []).ToArray();
            return all.Length > 0 ? all : throw new UsageException($"missing INPUT ({_arg.Description})");
        }
    }

    /// <summary>The folder holding the data catalog (data list, data brown-pos).</summary>
    public static Option<string?> DataDirOption() =>
        new("--data-dir") { Description = "Folder holding catalog.json (default: data/ found from here or the program)" };

    /// <summary>The text field of JSONL/CSV input (the verb applies the default, "text", unless a config file sets it).</summary>
    public static Option<string?> TextColumnOption() =>
        new("--text-column") { Description = "Field holding the text in JSONL/CSV rows (default text)" };

    /// <summary>A seed (the verb applies the default, 42, unless a config file sets it).</summary>
    public static Option<int?> SeedOption(string what) => new("--seed") { Description = $"Seed of {what} (default 42)" };

    /// <summary>The near-duplicate (MinHash) settings, as `data clean` and `data split` share them.</summary>
    public static (Option<double?> Threshold, Option<string?> Shingles, Option<int?> ShingleSize) NearDuplicateOptions() =>
        (new("--near-threshold") { Description = "Near-duplicate Jaccard threshold (default 0.8)" },
         new("--shingles") { Description = "Near-duplicate shingles: word or char (default word)" },
         new("--shingle-size") { Description = "Words or characters per near-duplicate shingle (default 5)" });

    /// <summary>
    /// The model a verb runs (anything <c>ModelSource</c> resolves: a run, an HF folder, an adapter, a preset, a Hub id, a
    /// NuGet model, an ONNX file or export): <c>--model SPEC</c> on every verb that takes one, the one spelling help and
    /// the docs show. Verbs that took the model positionally keep accepting it there, hidden (<see cref="Inputs"/>).
    /// </summary>
    public sealed class ModelOption : Option<string?>
    {
        /// <summary>The label help shows for the value, in the option list and the usage line.</summary>
        public const string Label = "SPEC";

        public ModelOption(string description, bool required = true) : base("--model")
        {
            What = description;
            Description = required ? description + " (required)" : description;
            HelpName = Label;
            MustBeGiven = required;
        }

        /// <summary>What the model is, for this verb (the description without "(required)").</summary>
        public string What { get; }
        /// <summary>True when the verb cannot run without a model.</summary>
        public bool MustBeGiven { get; }

        /// <summary>Adds this option to a command.</summary>
        public ModelOption AddTo(Command cmd)
        {
            cmd.Options.Add(this);
            return this;
        }

        /// <summary>The spec given, or null when optional and absent; a usage error when required and absent.</summary>
        public string? Read(ParseResult p) => p.GetValue(this) ?? (MustBeGiven ? throw Missing() : null);

        internal UsageException Missing() => new($"missing option --model ({What})");

        /// <summary>Help's usage line with <c>--model &lt;SPEC&gt;</c> after the verb when the verb needs a model
        /// ("tasklm generate --model &lt;SPEC&gt; [options]"): System.CommandLine lists options only as [options].</summary>
        public static string ShowInUsage(string help, ParseResult parsed)
        {
            if (!parsed.CommandResult.Command.Options.OfType<ModelOption>().Any(m => m.MustBeGiven)) return help;
            int usage = help.IndexOf("Usage:", StringComparison.Ordinal);
            string line = $"  tasklm {VerbPath(parsed)}";
            int at = usage < 0 ? -1 : help.IndexOf(line, usage, StringComparison.Ordinal);
            return at < 0 ? help : help.Insert(at + line.Length, $"--model <{Label}> ");
        }
    }

    /// <summary>
    /// A model verb's model (<see cref="ModelOption"/>) and its other positional inputs, plus (for the black-box verbs
    /// scripts already call) each input's older option spelling, hidden from help. The model given positionally, as
    /// the first input (the older form), is still read; given both ways, the two must name the same model. With
    /// overrides on, positional <c>key=value</c> tokens are recipe overrides, as in `tasklm train`.
    /// </summary>
    public sealed class Inputs
    {
        readonly ModelOption _model;
        readonly Argument<string[]> _arg;
        readonly (string Name, Option<string?>? Legacy)[] _inputs;
        readonly bool _overrides;

        public Inputs(Command cmd, ModelOption model, string description, bool overrides, params (string Name, string? Legacy)[] inputs)
        {
            _model = model.AddTo(cmd);
            _overrides = overrides;
            _inputs = inputs.Select(i => (i.Name, i.Legacy == null ? null : new Option<string?>(i.Legacy) { Hidden = true, Description = $"Same as the positional {i.Name}" })).ToArray();
            // Named as the help shows it, so that the usage line and the Arguments section say the same
            // ("tasklm evaluate --model <SPEC> [<DATA>...]", not "[<inputs>...]"). A verb whose only input is the
            // model keeps the argument for the positional model alone, hidden.
            string names = string.Join(" ", inputs.Select(i => i.Name));
            _arg = new Argument<string[]>(inputs.Length > 0 ? names : "MODEL")
            {
                Description = inputs.Length > 0 ? description : "Same as --model", Arity = ArgumentArity.ZeroOrMore, Hidden = inputs.Length == 0,
                HelpName = (inputs.Length > 0 ? names : "MODEL") + (overrides ? " [key=value ...]" : ""),
            };
            cmd.Arguments.Add(_arg);
            foreach (var (_, legacy) in _inputs) if (legacy != null) cmd.Options.Add(legacy);
        }

        static bool IsOverride(string token) => System.Text.RegularExpressions.Regex.IsMatch(token, @"^[A-Za-z_][\w.\-]*=");

        /// <summary>The model, the other inputs in declaration order, and the key=value overrides.</summary>
        public (string Model, string[] Values, string[] Overrides) Read(ParseResult p)
        {
            var tokens = p.GetValue(_arg) ?? [];
            var overrides = _overrides ? tokens.Where(IsOverride).ToArray() : [];
            var rest = new Queue<string>(tokens.Where(t => !_overrides || !IsOverride(t)));
            var given = _inputs.Select(i => i.Legacy != null ? p.GetValue(i.Legacy) : null).ToArray();
            string? model = p.GetValue(_model);
            // The model positionally (the older form): the first token when --model is absent, or when there is a
            // token more than the other inputs take; then it must be --model's.
            if (model == null) model = rest.Count > 0 ? rest.Dequeue() : throw _model.Missing();
            else if (rest.Count > given.Count(g => g == null))
            {
                string twice = rest.Dequeue();
                if (!SameModel(model, twice))
                    throw new UsageException($"the model is given twice, differently: --model '{model}' and '{twice}'; give it once, with --model");
            }
            var values = new string[_inputs.Length];
            for (int i = 0; i < _inputs.Length; i++)
                values[i] = given[i] ?? (rest.Count > 0 ? rest.Dequeue() : null) ?? throw new UsageException($"missing {_inputs[i].Name} ({_arg.Description})");
            if (rest.Count > 0) throw new UsageException($"unexpected argument '{rest.Peek()}'" + (_overrides ? " (recipe overrides are key=value)" : ""));
            return (model, values, overrides);
        }

        /// <summary>Two spellings of one model ("runs/x" and "runs/x/", "./m" and "m").</summary>
        static bool SameModel(string a, string b)
        {
            if (a == b) return true;
            try { return Path.GetFullPath(a).TrimEnd(Path.DirectorySeparatorChar) == Path.GetFullPath(b).TrimEnd(Path.DirectorySeparatorChar); }
            catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException) { return false; }
        }
    }

    /// <summary>A command line that names something wrong (a missing input, an extra argument).</summary>
    public sealed class UsageException(string message) : Exception(message);

    public static readonly Option<bool> Verbose = new("--verbose")
    {
        Description = "Show stack traces and extra detail",
        Recursive = true,
    };

    /// <summary>Adds a parse-time check that the option's value, when given, is at least <paramref name="min"/>.</summary>
    public static Option<int?> AtLeast(this Option<int?> option, int min)
    {
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is int v && v < min) r.AddError($"{option.Name} must be at least {min}, got {v}");
        });
        return option;
    }

    /// <inheritdoc cref="AtLeast(Option{int?}, int)"/>
    public static Option<int> AtLeast(this Option<int> option, int min)
    {
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is int v && v < min) r.AddError($"{option.Name} must be at least {min}, got {v}");
        });
        return option;
    }

    /// <summary>The key=value overrides argument of train, tune, compare and learning-curve. A token that looks like
    /// an option ("--thread 1") is refused as the unknown option it is, with the closest real one, rather than as a
    /// malformed override.</summary>
    public static Argument<string[]> OverridesArgument(string description)
    {
        var arg = new Argument<string[]>("overrides") { Description = description, Arity = ArgumentArity.ZeroOrMore };
        arg.Validators.Add(r =>
        {
            if (r.Tokens.FirstOrDefault(t => t.Value.StartsWith('-') && !t.Value.Contains('=')) is { } bad && r.Parent is System.CommandLine.Parsing.CommandResult c)
                r.AddError($"unknown option '{bad.Value}'{Closest(bad.Value, OptionsOf(c.Command).SelectMany(o => o.Aliases.Prepend(o.Name)).Distinct())}");
        });
        return arg;
    }

    /// <summary>A <c>--json</c> flag for a verb (machine-readable output on stdout).</summary>
    public static Option<bool> JsonOption() => new("--json") { Description = "Print machine-readable JSON" };

    public static readonly JsonSerializerOptions JsonOut = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Output for programs and pipes: when stdout is not a terminal, tables and lines never wrap (a
    /// cell such as "gpt2-tiny" is never split); COLUMNS, when set, is the width either way.</summary>
    public static void ConfigureConsole()
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out int columns) && columns > 0) AnsiConsole.Profile.Width = columns;
        else if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 32_768;
    }

    /// <summary>A section rule ("── title ───"). Spectre's Rule spans the console width, which is 32,768 when output
    /// is redirected (see <see cref="ConfigureConsole"/>): a log file would get a 32k-character line, so there the
    /// rule is 100 characters.</summary>
    public static void WriteRule(string markupTitle)
    {
        if (Console.IsOutputRedirected && AnsiConsole.Profile.Width > 200)
        {
            int len = Markup.Remove(markupTitle).Length;
            AnsiConsole.MarkupLine($"── {markupTitle} {new string('─', Math.Max(3, 96 - len))}");
        }
        else AnsiConsole.Write(new Rule(markupTitle).LeftJustified());
    }

    /// <summary>Loads libtorch, applies <c>--threads</c> and resolves <c>--device</c>.</summary>
    public static torch.Device StartTorch(ParseResult p)
    {
        TorchBackend.EnsureLoaded();
        TorchBackend.SetThreads(p.GetResult(Threads) != null ? p.GetValue(Threads) : 0);
        return TorchBackend.ResolveDevice(p.GetResult(Device) != null ? p.GetValue(Device) : "auto");
    }

    /// <summary>The device <c>--device</c> asks for, or null when it is absent or <c>auto</c>: then a recipe's
    /// <c>training.device</c> decides (<see cref="TorchBackend.ChooseDevice"/>). Call after <see cref="StartTorch"/>.</summary>
    public static torch.Device? AskedDevice(ParseResult p)
    {
        string? spec = p.GetResult(Device) != null ? p.GetValue(Device) : null;
        return string.IsNullOrWhiteSpace(spec) || spec.Trim().Equals("auto", StringComparison.OrdinalIgnoreCase) ? null : TorchBackend.ResolveDevice(spec);
    }

    /// <summary>The verb path of a parse ("data split"), for "see 'tasklm data split --help'".</summary>
    static string VerbPath(ParseResult parsed)
    {
        var names = new List<string>();
        for (var c = parsed.CommandResult; c != null; c = c.Parent as System.CommandLine.Parsing.CommandResult)
            if (c.Parent != null) names.Insert(0, c.Command.Name);
        return names.Count == 0 ? "" : string.Join(" ", names) + " ";
    }

    /// <summary>The hint line every usage error ends with.</summary>
    public static string SeeHelp(ParseResult parsed) => $"see 'tasklm {VerbPath(parsed)}--help'";

    /// <summary>A parse error in a few lines: what is wrong (named, with "did you mean" when an option or verb is
    /// close), the other problems (up to three, explained the same way), and where the help is. Never the whole help.
    /// Returns 1.</summary>
    public static int ReportParseErrors(ParseResult parsed)
    {
        var cmd = parsed.CommandResult.Command;
        var errors = parsed.Errors.Select(e => e.Message).ToList();
        // The first unrecognised token is the cause of the rest (a typo'd option leaves its value unmatched).
        // An option-looking token comes first: "--txt hello" is about --txt, not the stray value after it.
        string first = errors.FirstOrDefault(e => e.StartsWith("Unrecognized command or argument '-", StringComparison.Ordinal))
            ?? errors.FirstOrDefault(e => e.StartsWith("Unrecognized command or argument", StringComparison.Ordinal)) ?? errors[0];
        // An unknown option taken as a positional value ("--txt hello": --txt became the file argument, hello is left
        // over) is the real mistake: say it first.
        string? optionLike = parsed.Tokens.FirstOrDefault(t => t.Type == System.CommandLine.Parsing.TokenType.Argument
            && t.Value.StartsWith("--", StringComparison.Ordinal))?.Value;
        string head = optionLike != null
            ? $"unknown option '{optionLike}'{Closest(optionLike, OptionsOf(cmd).SelectMany(o => o.Aliases.Prepend(o.Name)).Distinct())}"
            : Explain(first, cmd);
        Console.Error.WriteLine($"{ErrorPrefix()} {head}");
        // The others, each explained (a few; the first usually causes the rest). A typo'd verb also leaves its parent
        // "needing a command": that is the same mistake.
        var rest = errors.Where(e => optionLike != null || e != first)
            .Where(e => !(head.StartsWith("unknown command", StringComparison.Ordinal) && e.StartsWith("Required command was not provided", StringComparison.Ordinal)))
            .Select(e => Explain(e, cmd)).Where(e => e != head).Distinct().ToList();
        foreach (var e in rest.Take(3)) Console.Error.WriteLine($"  also: {e}");
        if (rest.Count > 3) Console.Error.WriteLine($"  ({rest.Count - 3} more)");
        Console.Error.WriteLine(SeeHelp(parsed));
        return 1;
    }

    static string ErrorPrefix() => !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("NO_COLOR") == null ? "\u001b[31merror:\u001b[0m" : "error:";

    static string Explain(string message, Command cmd)
    {
        var m = System.Text.RegularExpressions.Regex.Match(message, @"^Unrecognized command or argument '(.*)'\.$");
        if (m.Success)
        {
            string token = m.Groups[1].Value;
            if (token.StartsWith('-'))
            {
                var names = OptionsOf(cmd).SelectMany(o => o.Aliases.Prepend(o.Name)).Distinct();
                return $"unknown option '{token}'{Closest(token, names)}";
            }
            if (cmd.Subcommands.Count > 0)
                return $"unknown command '{token}'{Closest(token, cmd.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}";
            return $"unexpected argument '{token}'";
        }
        m = System.Text.RegularExpressions.Regex.Match(message, @"^Cannot parse argument '(.*)' for option '(.*)' as expected type '(.*)'\.?$");
        if (m.Success) return $"{m.Groups[2].Value} expects {TypeWord(m.Groups[3].Value)}, got '{m.Groups[1].Value}'";
        m = System.Text.RegularExpressions.Regex.Match(message, @"^Option '(.*)' is required\.$");
        if (m.Success)
        {
            var o = OptionsOf(cmd).FirstOrDefault(x => x.Name == m.Groups[1].Value);
            return $"missing option {m.Groups[1].Value}" + (o?.Description is { Length: > 0 } d ? $" ({d})" : "");
        }
        if (message.StartsWith("Required command was not provided", StringComparison.Ordinal))
            return $"'{(cmd.Parents.Any() ? cmd.Name : "tasklm")}' needs a command: {string.Join(", ", cmd.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}";
        return message.TrimEnd('.');
    }

    static string TypeWord(string type) =>
        type.Contains("Int32") || type.Contains("Int64") ? "an integer" : type.Contains("Double") || type.Contains("Single") ? "a number"
        : type.Contains("Boolean") ? "true or false" : "a value of type " + type;

    static IEnumerable<Option> OptionsOf(Command cmd) => cmd.Options.Where(o => !o.Hidden)
        .Concat(cmd.Parents.OfType<Command>().SelectMany(p => p.Options.Where(o => o.Recursive)));

    static string Closest(string given, IEnumerable<string> candidates)
    {
        var best = candidates.Select(c => (c, d: TaskLM.Data.EditDistance.Levenshtein(given.ToLowerInvariant(), c.ToLowerInvariant()))).OrderBy(x => x.d).FirstOrDefault();
        return best.c != null && best.d <= Math.Max(2, given.Length / 3) ? $" (did you mean '{best.c}'?)" : "";
    }

    /// <summary>Prints an error as one line (the whole chain with --verbose) and returns exit code 1.
    /// Plain Console.Error, not Spectre: a terminal width must never wrap the one line.</summary>
    public static int ReportError(Exception e, bool verbose, ParseResult? parsed = null)
    {
        if (verbose)
        {
            Console.Error.WriteLine(e.ToString());
            return 1;
        }
        var inner = e;
        while (inner is System.Reflection.TargetInvocationException or TypeInitializationException && inner.InnerException != null)
            inner = inner.InnerException;
        Console.Error.WriteLine($"{ErrorPrefix()} {inner.Message.Split('\n')[0].Trim()}");
        if (inner is UsageException && parsed != null) Console.Error.WriteLine(SeeHelp(parsed));
        return 1;
    }
}
