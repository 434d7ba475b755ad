// Encode throughput of TaskLM's tokenizers on Moby-Dick (1.19 MB), next to the anchors in shared/anchors.md.
// Usage: dotnet run -c Release --project bench/TokenizerBench [-- path/to/moby.txt(.gz)] [--repeat N]
using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using TaskLM.Data.Tokenization;

string? path = args.FirstOrDefault(a => !a.StartsWith("--"));
int repeat = args.SkipWhile(a => a != "--repeat").Skip(1).Select(int.Parse).FirstOrDefault(3);
path ??= FindUp(Path.Combine("tests", "fixtures", "tokenization", "moby.txt.gz"))
    ?? throw new FileNotFoundException("moby.txt.gz not found; pass the path of a text file");
string text = path.EndsWith(".gz") ? new StreamReader(new GZipStream(File.OpenRead(path), CompressionMode.Decompress)).ReadToEnd() : File.ReadAllText(path);
string[] lines = text.Split('\n');
double mb = Encoding.UTF8.GetByteCount(text) / 1e6;
Console.WriteLine($"corpus: {path} ({mb:F2} MB UTF-8, {lines.Length:N0} lines); {Environment.ProcessorCount} logical cores; {RuntimeDescription()}");
Console.WriteLine("anchors (shared/anchors.md, one thread, GPT-2 on Moby-Dick): Microsoft.ML.Tokenizers 2.0.1 TiktokenTokenizer 9.1 MB/s, tiktoken npm (WASM) 2.75 MB/s");
Console.WriteLine();

var gpt2 = TokenizerLoader.Load("gpt2");
var dir = Directory.CreateTempSubdirectory("tasklm-bench").FullName;
gpt2.Save(dir);
File.Delete(Path.Combine(dir, "tokenizer.json"));
var gpt2Files = TokenizerLoader.Load(dir);  // same vocabulary through vocab.json + merges.txt: our merge loop
var wordpiece = FindUp(Path.Combine("tests", "fixtures", "hf", "tok-wordpiece")) is string wp ? TokenizerLoader.Load(wp) : null;

Console.WriteLine($"{"tokenizer",-46} {"mode",-22} {"tokens",10} {"cold MB/s",10} {"best MB/s",10}");
Run("gpt2 embedded (MS TiktokenTokenizer)", gpt2);
Run("gpt2 vocab.json+merges.txt (own BPE loop)", gpt2Files);
if (wordpiece != null) Run("HF tok-wordpiece (own WordPiece)", wordpiece);

// Corpus → token file, lines as documents, all cores.
var tokPath = Path.Combine(dir, "moby.tok");
var sw = Stopwatch.StartNew();
var (tokens, docs, _) = TokenFileEncoder.Encode(TokenizerLoader.Load("gpt2"), lines, tokPath);
Console.WriteLine($"{"TokenFileEncoder gpt2 → moby.tok",-46} {$"{Environment.ProcessorCount} threads, cold",-22} {tokens,10:N0} {mb / sw.Elapsed.TotalSeconds,10:F2} {"",10}  ({docs:N0} documents)");
Directory.Delete(dir, true);

void Run(string name, ITokenizer tok)
{
    // One thread, the whole book as one string (as the anchors were measured).
    var (n1, cold1, best1) = Measure(() => tok.Encode(text).Count);
    Console.WriteLine($"{name,-46} {"1 thread, whole text",-22} {n1,10:N0} {mb / cold1,10:F2} {mb / best1,10:F2}");
    // All threads, lines as independent texts (a fresh tokenizer so the first run is cold).
    var (n2, cold2, best2) = Measure(() =>
    {
        long count = 0;
        Parallel.ForEach(System.Collections.Concurrent.Partitioner.Create(0, lines.Length, 64), range =>
        {
            long local = 0;
            for (int i = range.Item1; i < range.Item2; i++) local += tok.Encode(lines[i]).Count;
            Interlocked.Add(ref count, local);
        });
        return (int)count;
    });
    Console.WriteLine($"{"",-46} {$"{Environment.ProcessorCount} threads, lines",-22} {n2,10:N0} {mb / cold2,10:F2} {mb / best2,10:F2}");
}

(int Tokens, double Cold, double Best) Measure(Func<int> f)
{
    var sw = Stopwatch.StartNew();
    int n = f();
    double cold = sw.Elapsed.TotalSeconds, best = double.MaxValue;
    for (int i = 0; i < repeat; i++)
    {
        sw.Restart();
        f();
        best = Math.Min(best, sw.Elapsed.TotalSeconds);
    }
    return (n, cold, best);
}

static string? FindUp(string relative)
{
    for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        if (Path.Combine(d.FullName, relative) is var p && (File.Exists(p) || Directory.Exists(p))) return p;
    return null;
}

static string RuntimeDescription() => System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription;
