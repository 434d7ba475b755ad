// Levenshtein distance, for "did you mean ...?" suggestions on unknown keys, presets and options.
namespace TaskLM.Data;

/// <summary>Edit distance between two strings (insertions, deletions, substitutions each cost 1).</summary>
public static class EditDistance
{
    public static int Levenshtein(string a, string b)
    {
        var d = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) d[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            int prev = d[0]; d[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int tmp = d[j];
                d[j] = Math.Min(Math.Min(d[j] + 1, d[j - 1] + 1), prev + (a[i - 1] == b[j - 1] ? 0 : 1));
                prev = tmp;
            }
        }
        return d[b.Length];
    }
}
