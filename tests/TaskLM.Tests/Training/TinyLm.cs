// A tiny causal LM (embedding → dropout → LayerNorm → MLP → head) that stands in for a model family in training tests.
using System.Text.Json.Nodes;
using TaskLM.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TaskLM.Tests.Training;

/// <summary>Module with HF-style names (wte, ln_f, fc, lm_head) so the decay grouping has biases, LayerNorm weights and matrices.</summary>
sealed class TinyLmModule : nn.Module<Tensor, Tensor>, ILoraTargets
{
    public readonly Embedding wte;
    public readonly Dropout drop;
    public readonly LayerNorm ln_f;
    public nn.Module<Tensor, Tensor> fc;   // typed as the interface so LoRA can swap it (SwapLayer)
    public readonly Linear lm_head;

    public TinyLmModule(int vocab, int dim, double dropout) : base("TinyLm")
    {
        wte = nn.Embedding(vocab, dim);
        drop = nn.Dropout(dropout);
        ln_f = nn.LayerNorm(dim);
        fc = nn.Linear(dim, dim);
        lm_head = nn.Linear(dim, vocab);
        RegisterComponents();
    }

    // (B, T) → (B, T, V): each position predicts the next token from itself only (a bigram model).
    public override Tensor forward(Tensor ids) => lm_head.forward(nn.functional.gelu(fc.forward(ln_f.forward(drop.forward(wte.forward(ids))))));

    public nn.Module<Tensor, Tensor>? SwapLayer(string name, nn.Module<Tensor, Tensor> layer) => name == nameof(fc) ? ILoraTargets.Swap(ref fc, layer) : null;
}

/// <summary>ITaskModel over <see cref="TinyLmModule"/> with HF's causal-LM loss (shifted, -100 ignored).</summary>
sealed class TinyLm : ITaskModel
{
    readonly TinyLmModule _m;
    public TinyLm(int vocab = 50, int dim = 16, double dropout = 0.1, int seed = 1)
    {
        torch.manual_seed(seed);
        _m = new TinyLmModule(vocab, dim, dropout);
        Config = new JsonObject { ["model_type"] = "tiny", ["vocab_size"] = vocab, ["n_embd"] = dim, ["dropout"] = dropout };
    }

    public string ModelType => "tiny";
    public string Task => "causal-lm";
    public JsonObject Config { get; }
    public nn.Module Module => _m;

    public ModelOutput Forward(ModelBatch batch)
    {
        var logits = _m.forward(batch.InputIds);
        Tensor? loss = null;
        if (batch.Labels is { } labels)
        {
            long t = logits.shape[1];
            loss = nn.functional.cross_entropy(logits.narrow(1, 0, t - 1).reshape(-1, logits.shape[2]), labels.narrow(1, 1, t - 1).reshape(-1), ignore_index: -100);
        }
        return new ModelOutput { Logits = logits, Loss = loss };
    }

    public void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "config.json"), Config.ToJsonString());
        SafeTensors.Save(Path.Combine(directory, "model.safetensors"), _m.state_dict());
    }

    public static TinyLm Load(string directory)
    {
        var cfg = HfCheckpoint.LoadConfig(directory);
        var m = new TinyLm((int)cfg["vocab_size"]!, (int)cfg["n_embd"]!, (double)cfg["dropout"]!);
        var sd = HfCheckpoint.LoadStateDict(directory);
        using (no_grad())
            foreach (var (k, p) in m._m.state_dict()) p.copy_(sd[k]);
        return m;
    }
}
