// safetensors read/write against files Hugging Face wrote.
using TaskLM.Models;
using static TorchSharp.torch;

namespace TaskLM.Tests.Models;

public class SafeTensorsTests
{
    static string Fixture(params string[] parts) => Path.Combine(new[] { AppContext.BaseDirectory, "fixtures", "hf" }.Concat(parts).ToArray());

    [Fact]
    public void ReadsHfFileAndRoundTripsBitExactly()
    {
        var sd = HfCheckpoint.LoadStateDict(Fixture("gpt2-tiny"));
        var cfg = HfCheckpoint.LoadConfig(Fixture("gpt2-tiny"));
        int nEmbd = cfg["n_embd"]!.GetValue<int>(), vocab = cfg["vocab_size"]!.GetValue<int>();
        Assert.Equal(new long[] { vocab, nEmbd }, sd["transformer.wte.weight"].shape);
        // GPT-2's Conv1D stores c_attn as [in, out] = [n_embd, 3 n_embd].
        Assert.Equal(new long[] { nEmbd, 3 * nEmbd }, sd["transformer.h.0.attn.c_attn.weight"].shape);

        string tmp = Path.Combine(Path.GetTempPath(), $"tasklm-st-{Guid.NewGuid():N}.safetensors");
        try
        {
            SafeTensors.Save(tmp, sd, new Dictionary<string, string> { ["format"] = "pt" });
            var back = SafeTensors.Load(tmp, out var meta);
            Assert.Equal("pt", meta["format"]);
            Assert.Equal(sd.Keys.OrderBy(k => k), back.Keys.OrderBy(k => k));
            foreach (var (k, v) in sd)
            {
                Assert.Equal(v.dtype, back[k].dtype);
                Assert.True(v.bytes.SequenceEqual(back[k].bytes), k);
            }
        }
        finally { File.Delete(tmp); }
    }

    [Fact]
    public void TruncatedFileIsAClearError()
    {
        string tmp = Path.Combine(Path.GetTempPath(), $"tasklm-st-{Guid.NewGuid():N}.safetensors");
        try
        {
            byte[] all = File.ReadAllBytes(Fixture("bert-cls", "model.safetensors"));
            File.WriteAllBytes(tmp, all[..(all.Length / 2)]);
            var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Load(tmp));
            Assert.Contains("outside the file", e.Message);
            Assert.Contains(tmp, e.Message);
        }
        finally { File.Delete(tmp); }
    }
}
