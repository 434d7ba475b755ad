// Near-duplicate detection: shingling, MinHash signatures and banded LSH (Broder 1997; Leskovec et al., MMDS ch. 3).
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;

namespace TaskLM.Data.Corpus;

/// <summary>How a text is cut into shingles for MinHash: overlapping runs of words or of characters.</summary>
public enum ShingleKind
{
    /// <summary>Runs of <c>n</c> lower-cased words (punctuation dropped).</summary>
    Word,
    /// <summary>Runs of <c>n</c> characters of the lower-cased, whitespace-collapsed text.</summary>
    Char,
}

/// <summary>Settings shared by near-duplicate removal (cleaning) and near-duplicate grouping (splits).</summary>
public sealed class NearDuplicateOptions
{
    /// <summary>Two texts whose estimated Jaccard similarity of shingle sets is at least this are near-duplicates.</summary>
    public double Threshold { get; set; } = 0.8;

    /// <summary>Words or characters.</summary>
    public ShingleKind Shingles { get; set; } = ShingleKind.Word;

    /// <summary>Shingle length: 5 words or 5 characters by default.</summary>
    public int ShingleSize { get; set; } = 5;

    /// <summary>Number of hash functions (signature length). More = tighter Jaccard estimate, slower.</summary>
    public int NumPerm { get; set; } = 128;

    /// <summary>Seed of the hash functions: same seed, same signatures, same decisions.</summary>
    public int Seed { get; set; } = 42;
}

/// <summary>MinHash signatures over 64-bit shingle hashes. Each element is folded to 32 bits; hash function
/// <c>i</c> is the bijection <c>h_i(x) = g(x ⊕ s_i, a_i)</c>, with <c>g(v, a) = xorshift(xorshift(v·C)·a)</c>
/// (a murmur3-style finaliser whose second multiplier <c>a_i</c> is odd and, with <c>s_i</c>, drawn from the seed).
/// The signature is the minimum of each over the elements. Functions are evaluated 8 or 16 at a time with
/// <see cref="Vector{T}"/> (32-bit lanes), which is what makes dedup of a whole corpus take seconds.</summary>
public sealed class MinHash
{
    private readonly Vector<uint>[] _s, _a;
    private static readonly Vector<uint> C1 = new(0x85EBCA6Bu);

    /// <summary>Signature length.</summary>
    public int NumPerm { get; }

    /// <summary>Creates <paramref name="numPerm"/> seeded hash functions.</summary>
    public MinHash(int numPerm, int seed)
    {
        if (numPerm < 1) throw new ArgumentOutOfRangeException(nameof(numPerm), "num_perm must be at least 1");
        NumPerm = numPerm;
        int lanes = Vector<uint>.Count, blocks = (numPerm + lanes - 1) / lanes;
        var s = new uint[blocks * lanes];
        var a = new uint[blocks * lanes];
        ulong state = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL + 0x632BE59BD9B4E5F5UL;
        // Drawn in a fixed order so signatures are the same whatever the vector width.
        for (int i = 0; i < s.Length; i++)
        {
            ulong r = SplitMix64(ref state);
            s[i] = (uint)r;
            a[i] = (uint)(r >> 32) | 1u; // odd multipliers are bijections mod 2^32
        }
        _s = new Vector<uint>[blocks];
        _a = new Vector<uint>[blocks];
        for (int b = 0; b < blocks; b++) { _s[b] = new Vector<uint>(s, b * lanes); _a[b] = new Vector<uint>(a, b * lanes); }
    }

    /// <summary>Signature of a set given as 64-bit element hashes (duplicates allowed; they do not change
    /// the minimum). An empty set gets all <see cref="uint.MaxValue"/>.</summary>
    public uint[] Signature(ReadOnlySpan<ulong> items)
    {
        int lanes = Vector<uint>.Count;
        var folded = items.Length <= 4096 ? stackalloc uint[items.Length] : new uint[items.Length];
        for (int k = 0; k < items.Length; k++) folded[k] = (uint)(items[k] ^ (items[k] >> 32));
        var full = new uint[_s.Length * lanes];
        for (int b = 0; b < _s.Length; b++)
        {
            // One block of hash functions stays in registers while the elements stream past.
            Vector<uint> sb = _s[b], ab = _a[b], min = new(uint.MaxValue);
            foreach (uint x in folded)
            {
                var v = (new Vector<uint>(x) ^ sb) * C1;
                v ^= Vector.ShiftRightLogical(v, 15);
                v *= ab;
                v ^= Vector.ShiftRightLogical(v, 13);
                min = Vector.Min(min, v);
            }
            min.CopyTo(full, b * lanes);
        }
        return full.Length == NumPerm ? full : full[..NumPerm];
    }

    /// <summary>Signature of a text's shingle set.</summary>
    public uint[] Signature(string text, ShingleKind kind, int size) => Signature(Shingler.Hashes(text, kind, size));

    /// <summary>Fraction of equal positions: an unbiased estimate of the Jaccard similarity of the two sets.</summary>
    public static double Jaccard(uint[] x, uint[] y)
    {
        if (x.Length != y.Length) throw new ArgumentException("signatures differ in length");
        int eq = 0;
        for (int i = 0; i < x.Length; i++) if (x[i] == y[i]) eq++;
        return (double)eq / x.Length;
    }

    internal static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>Cuts text into shingles and hashes each to 64 bits (FNV-1a over UTF-16 units, then mixed).</summary>
public static class Shingler
{
    /// <summary>Distinct shingle hashes of <paramref name="text"/>, sorted. A text shorter than one shingle
    /// yields the whole (non-empty) text as its single shingle.</summary>
    public static ulong[] Hashes(string text, ShingleKind kind, int size)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), "shingle size must be at least 1");
        var list = kind == ShingleKind.Word ? WordShingles(text, size) : CharShingles(text, size);
        if (list.Count == 0) return [];
        var arr = list.ToArray();
        Array.Sort(arr);
        int n = 1;
        for (int i = 1; i < arr.Length; i++) if (arr[i] != arr[n - 1]) arr[n++] = arr[i];
        return n == arr.Length ? arr : arr[..n];
    }

    private static List<ulong> WordShingles(string text, int size)
    {
        // One hash per lower-cased word (letters and digits); a shingle hash combines `size` consecutive ones
        // with an order-sensitive mix, so "a b" and "b a" differ. ASCII takes a table-free fast path.
        var words = new List<ulong>(text.Length / 6 + 1);
        int i = 0, n = text.Length;
        while (i < n)
        {
            while (i < n && !IsWordChar(text[i])) i++;
            if (i >= n) break;
            ulong h = 14695981039346656037UL;
            while (i < n)
            {
                char c = text[i];
                if (c < 128)
                {
                    if ((uint)(c - 'A') <= 'Z' - 'A') c = (char)(c | 0x20);
                    else if (!((uint)(c - 'a') <= 'z' - 'a' || (uint)(c - '0') <= 9)) break;
                }
                else if (char.IsLetterOrDigit(c)) c = char.ToLowerInvariant(c);
                else break;
                h = (h ^ c) * 1099511628211UL;
                i++;
            }
            words.Add(Mix(h));
        }
        var shingles = new List<ulong>(Math.Max(1, words.Count - size + 1));
        if (words.Count == 0) return shingles;
        int k = Math.Min(size, words.Count);
        for (int s = 0; s + k <= words.Count; s++)
        {
            ulong h = 0x2545F4914F6CDD1DUL;
            for (int j = 0; j < k; j++) h = (h ^ words[s + j]) * 0x100000001B3UL + (ulong)j;
            shingles.Add(Mix(h));
        }
        return shingles;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsWordChar(char c) => c < 128 ? char.IsAsciiLetterOrDigit(c) : char.IsLetterOrDigit(c);

    private static List<ulong> CharShingles(string text, int size)
    {
        // Lower-case and collapse whitespace first so layout changes do not count as differences.
        var sb = new StringBuilder(text.Length);
        bool space = false;
        foreach (char c in text)
        {
            if (char.IsWhiteSpace(c)) { space = sb.Length > 0; continue; }
            if (space) { sb.Append(' '); space = false; }
            sb.Append(char.ToLowerInvariant(c));
        }
        var shingles = new List<ulong>(Math.Max(1, sb.Length - size + 1));
        if (sb.Length == 0) return shingles;
        int k = Math.Min(size, sb.Length);
        for (int s = 0; s + k <= sb.Length; s++)
        {
            ulong h = 14695981039346656037UL;
            for (int j = 0; j < k; j++) h = (h ^ sb[s + j]) * 1099511628211UL;
            shingles.Add(Mix(h));
        }
        return shingles;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 33)) * 0xFF51AFD7ED558CCDUL;
        z = (z ^ (z >> 33)) * 0xC4CEB9FE1A85EC53UL;
        return z ^ (z >> 33);
    }
}

/// <summary>Banded locality-sensitive hashing over MinHash signatures: a signature is cut into <c>b</c> bands
/// of <c>r</c> rows; two items that agree on every row of any band become candidates. The probability of that
/// is <c>1 − (1 − s^r)^b</c> at Jaccard <c>s</c>; (b, r) are chosen so the curve's step sits at the threshold.
/// Candidates are then confirmed by the signature's Jaccard estimate, so LSH only saves comparisons.</summary>
public sealed class LshIndex
{
    private readonly Dictionary<ulong, List<int>>[] _bands;
    private readonly List<uint[]> _signatures = [];
    private readonly double _threshold;

    /// <summary>Number of bands.</summary>
    public int Bands { get; }

    /// <summary>Rows per band.</summary>
    public int Rows { get; }

    /// <summary>An empty index for signatures of length <paramref name="numPerm"/>.</summary>
    public LshIndex(int numPerm, double threshold)
    {
        if (threshold is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(threshold), "threshold must be in (0, 1]");
        _threshold = threshold;
        (Bands, Rows) = OptimalBands(numPerm, threshold);
        _bands = new Dictionary<ulong, List<int>>[Bands];
        for (int i = 0; i < Bands; i++) _bands[i] = [];
    }

    /// <summary>Number of signatures added.</summary>
    public int Count => _signatures.Count;

    /// <summary>The signature added with id <paramref name="id"/>.</summary>
    public uint[] this[int id] => _signatures[id];

    /// <summary>Adds a signature and returns its id (0, 1, 2, ... in order of addition).</summary>
    public int Add(uint[] signature)
    {
        int id = _signatures.Count;
        _signatures.Add(signature);
        for (int band = 0; band < Bands; band++)
        {
            ulong key = BandKey(signature, band);
            if (!_bands[band].TryGetValue(key, out var list)) _bands[band][key] = list = new List<int>(1);
            list.Add(id);
        }
        return id;
    }

    /// <summary>The first added item (lowest id) whose estimated Jaccard with <paramref name="signature"/> reaches
    /// the threshold, with that estimate; or (-1, 0).</summary>
    public (int Id, double Jaccard) FindFirst(uint[] signature)
    {
        int best = -1; double bestJ = 0;
        foreach (int id in Candidates(signature))
        {
            if (best >= 0 && id >= best) continue;
            double j = MinHash.Jaccard(signature, _signatures[id]);
            if (j >= _threshold) { best = id; bestJ = j; }
        }
        return (best, bestJ);
    }

    /// <summary>Ids of every added item whose estimated Jaccard with <paramref name="signature"/> reaches the threshold.</summary>
    public IEnumerable<int> FindAll(uint[] signature)
    {
        foreach (int id in Candidates(signature))
            if (MinHash.Jaccard(signature, _signatures[id]) >= _threshold) yield return id;
    }

    private HashSet<int> Candidates(uint[] signature)
    {
        var seen = new HashSet<int>();
        for (int band = 0; band < Bands; band++)
            if (_bands[band].TryGetValue(BandKey(signature, band), out var list))
                foreach (int id in list) seen.Add(id);
        return seen;
    }

    private ulong BandKey(uint[] sig, int band)
    {
        ulong h = (ulong)band * 0x9E3779B97F4A7C15UL;
        int start = band * Rows;
        for (int i = start; i < start + Rows; i++) h = Shingler.Mix(h ^ sig[i]);
        return h;
    }

    /// <summary>The (bands, rows) with bands·rows ≤ numPerm that minimise the weighted area of false positives
    /// below the threshold plus false negatives above it, as datasketch's MinHashLSH does, but with weights
    /// 0.1/0.9 instead of 0.5/0.5: candidates are confirmed by their signatures anyway, so a false positive
    /// costs one comparison while a false negative is a missed duplicate. For 128 perms at 0.8 this gives
    /// 14 bands × 9 rows: pairs at Jaccard 0.8 / 0.85 / 0.9 become candidates with probability 0.87 / 0.975 / 0.999
    /// (equal weights would give 9 × 13 and 0.40 / 0.69 / 0.93).</summary>
    public static (int Bands, int Rows) OptimalBands(int numPerm, double threshold)
    {
        double bestErr = double.MaxValue; (int, int) best = (1, numPerm);
        for (int b = 1; b <= numPerm; b++)
            for (int r = 1; r <= numPerm / b; r++)
            {
                double fp = Integrate(s => 1 - Math.Pow(1 - Math.Pow(s, r), b), 0, threshold);
                double fn = Integrate(s => Math.Pow(1 - Math.Pow(s, r), b), threshold, 1);
                double err = 0.1 * fp + 0.9 * fn;
                if (err < bestErr) { bestErr = err; best = (b, r); }
            }
        return best;
    }

    private static double Integrate(Func<double, double> f, double lo, double hi)
    {
        const int n = 64; double step = (hi - lo) / n, sum = 0;
        for (int i = 0; i < n; i++) sum += f(lo + (i + 0.5) * step) * step;
        return sum;
    }
}

/// <summary>Union-find over row indices, for near-duplicate clusters.</summary>
public sealed class DisjointSets
{
    private readonly int[] _parent;

    /// <summary>n singletons.</summary>
    public DisjointSets(int n) { _parent = new int[n]; for (int i = 0; i < n; i++) _parent[i] = i; }

    /// <summary>The representative of <paramref name="x"/>'s set: its smallest member.</summary>
    public int Find(int x)
    {
        while (_parent[x] != x) { _parent[x] = _parent[_parent[x]]; x = _parent[x]; }
        return x;
    }

    /// <summary>Merges the sets of x and y; the smaller representative wins so results do not depend on order.</summary>
    public void Union(int x, int y)
    {
        int a = Find(x), b = Find(y);
        if (a == b) return;
        if (a < b) _parent[b] = a; else _parent[a] = b;
    }
}
