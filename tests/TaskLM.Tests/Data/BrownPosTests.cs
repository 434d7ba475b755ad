// Brown → universal POS tags (Petrov, Das & McDonald 2012) and `tasklm data brown-pos`, checked on the shipped corpus.
using System.Text.Json;
using System.Text.Json.Nodes;
using TaskLM.Data.Corpus;

namespace TaskLM.Tests.Data;

public class BrownPosTests
{
    static readonly CorpusCatalog Catalog = CorpusCatalog.Load();

    // Tag meanings from the Brown Corpus Manual (Francis & Kučera 1979) and the universal tags' definitions in the paper.
    [Theory]
    [InlineData("at", "DET")] [InlineData("dt", "DET")] [InlineData("dts", "DET")] [InlineData("wdt", "DET")] [InlineData("abn", "DET")]
    [InlineData("nn", "NOUN")] [InlineData("nns", "NOUN")] [InlineData("np", "NOUN")] [InlineData("nps", "NOUN")] [InlineData("nr", "NOUN")]
    [InlineData("np$", "NOUN")] [InlineData("nn-tl", "NOUN")] [InlineData("np-tl-hl", "NOUN")] [InlineData("nn-nc", "NOUN")]
    [InlineData("vb", "VERB")] [InlineData("vbd", "VERB")] [InlineData("vbg", "VERB")] [InlineData("vbn", "VERB")] [InlineData("vbz", "VERB")]
    [InlineData("be", "VERB")] [InlineData("bedz", "VERB")] [InlineData("bez*", "VERB")] [InlineData("hvd", "VERB")] [InlineData("dod*", "VERB")]
    [InlineData("md", "VERB")] [InlineData("md*", "VERB")] [InlineData("vb+ppo", "VERB")]
    [InlineData("jj", "ADJ")] [InlineData("jjr", "ADJ")] [InlineData("jjs", "ADJ")] [InlineData("jjt", "ADJ")] [InlineData("jj-tl", "ADJ")]
    [InlineData("rb", "ADV")] [InlineData("rbr", "ADV")] [InlineData("rbt", "ADV")] [InlineData("ql", "ADV")] [InlineData("wrb", "ADV")] [InlineData("*", "ADV")]
    [InlineData("pps", "PRON")] [InlineData("ppss", "PRON")] [InlineData("ppo", "PRON")] [InlineData("pp$", "PRON")] [InlineData("ppl", "PRON")]
    [InlineData("wps", "PRON")] [InlineData("wpo", "PRON")] [InlineData("wp$", "PRON")] [InlineData("ppss+md", "PRON")] [InlineData("pps+bez", "PRON")]
    [InlineData("in", "ADP")] [InlineData("in-tl", "ADP")]
    [InlineData("cd", "NUM")] [InlineData("od", "NUM")] [InlineData("cd-tl", "NUM")]
    [InlineData("cc", "CONJ")] [InlineData("cs", "CONJ")]
    [InlineData("to", "PRT")] [InlineData("rp", "PRT")]
    [InlineData(".", ".")] [InlineData(",", ".")] [InlineData(":", ".")] [InlineData("--", ".")] [InlineData("(", ".")] [InlineData(")", ".")]
    [InlineData("``", ".")] [InlineData("''", ".")] [InlineData("'", ".")] [InlineData(".-hl", ".")]
    [InlineData("fw-nn", "X")] [InlineData("fw-in", "X")] [InlineData("fw-at-tl", "X")] [InlineData("nil", "X")] [InlineData("uh", "X")] [InlineData("zzz", "X")]
    [InlineData("NN-TL", "NOUN")]
    public void Brown_tags_map_to_their_universal_tag(string brown, string universal) =>
        Assert.Equal(universal, BrownTagset.ToUniversal(brown));

    [Fact]
    public void Data_step_writes_all_57340_sentences_with_universal_tags_split_by_document()
    {
        var dir = Path.Combine(Path.GetTempPath(), "tasklm-brown-pos-" + Guid.NewGuid().ToString("N"));
        try
        {
            var r = CliRunner.Run(["data", "brown-pos", "--out", dir, "--data-dir", Catalog.DataDir, "--json"]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            var splits = JsonNode.Parse(r.Stdout)!["splits"]!.AsArray();
            Assert.Equal(["train", "validation", "test"], splits.Select(s => s!["name"]!.GetValue<string>()));
            // NLTK's brown.sents() / brown.words() / fileids() counts, over the three splits together.
            Assert.Equal(57340, splits.Sum(s => s!["sentences"]!.GetValue<int>()));
            Assert.Equal(1161192, splits.Sum(s => s!["tokens"]!.GetValue<int>()));
            Assert.Equal(500, splits.Sum(s => s!["documents"]!.GetValue<int>()));

            var universal = BrownTagset.Universal.ToHashSet();
            var docsBySplit = new Dictionary<string, HashSet<string>>();
            var tagCounts = new Dictionary<string, int>();
            int rows = 0;
            foreach (var name in BrownPos.SplitNames)
            {
                var docs = docsBySplit[name] = [];
                foreach (var line in File.ReadLines(Path.Combine(dir, name + ".jsonl")))
                {
                    using var doc = JsonDocument.Parse(line);
                    var root = doc.RootElement;
                    Assert.Equal(root.GetProperty("tokens").GetArrayLength(), root.GetProperty("tags").GetArrayLength());
                    foreach (var t in root.GetProperty("tags").EnumerateArray())
                    {
                        var tag = t.GetString()!;
                        Assert.Contains(tag, universal);
                        tagCounts[tag] = tagCounts.GetValueOrDefault(tag) + 1;
                    }
                    docs.Add(root.GetProperty("doc").GetString()!);
                    rows++;
                }
            }
            Assert.Equal(57340, rows);
            // Split by document: no document's sentences in two splits.
            Assert.Empty(docsBySplit["train"].Intersect(docsBySplit["test"]));
            Assert.Empty(docsBySplit["train"].Intersect(docsBySplit["validation"]));
            Assert.Empty(docsBySplit["validation"].Intersect(docsBySplit["test"]));
            // All 12 tags occur; X (foreign words, nil, interjections) stays rare, so no common Brown tag fell through to it.
            Assert.Equal(12, tagCounts.Count);
            Assert.InRange(tagCounts["X"], 1, 3000);
            Assert.Equal(1161192, tagCounts.Values.Sum());
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void Every_tag_in_the_corpus_maps_to_one_of_the_12_and_only_foreign_nil_and_interjections_to_x()
    {
        var tags = new HashSet<string>();
        using (var reader = JsonlFile.OpenText(Catalog.PathOf(Catalog.Get("brown"))))
            for (string? line; (line = reader.ReadLine()) != null;)
            {
                using var doc = JsonDocument.Parse(line);
                foreach (var sent in doc.RootElement.GetProperty("tags").EnumerateArray())
                    foreach (var t in sent.EnumerateArray()) tags.Add(t.GetString()!);
            }
        Assert.Equal(472, tags.Count);  // distinct tags as written in the corpus, suffixes and compounds included
        foreach (var t in tags)
        {
            var u = BrownTagset.ToUniversal(t);
            Assert.Contains(u, BrownTagset.Universal);
            if (u == "X") Assert.True(t.StartsWith("fw-") || t.StartsWith("nil") || t.StartsWith("uh"), $"'{t}' maps to X");
        }
    }
}
