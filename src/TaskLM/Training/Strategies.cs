// What trains: freezing (embeddings, bottom N layers, all but the head) and gradual unfreezing, by HF parameter names.
using TaskLM.Models;
using TaskLM.Recipes;

namespace TaskLM.Training;

/// <summary>Parameter groups of a model by HF name: embeddings, numbered transformer layers, and the head
/// (everything outside the body, "transformer." for GPT-2 and "bert." for BERT).</summary>
public static partial class Strategies
{
    // The family answers (its layer-name pattern, embedding modules, base-model prefix).
    static ModelFamily FamilyOf(ITaskModel m) => m.Family ?? throw new NotSupportedException($"model type '{m.ModelType}' is not a registered family");

    /// <summary>Transformer layer index of a parameter name, or -1.</summary>
    public static int LayerOf(ITaskModel m, string name) => FamilyOf(m).LayerOf(name);

    public static bool IsEmbedding(ITaskModel m, string name) => FamilyOf(m).IsEmbedding(name);

    public static bool IsHead(ITaskModel m, string name) => FamilyOf(m).IsHead(name);

    /// <summary>Sets requires_grad for method "freeze". Returns a description for the run log.</summary>
    public static string ApplyFreeze(ITaskModel m, FreezeSection f)
    {
        int frozen = 0;
        foreach (var (name, p) in m.Module.named_parameters())
        {
            bool freeze = (f.AllButHead && !IsHead(m, name)) || (f.Embeddings && IsEmbedding(m, name)) || (LayerOf(m, name) is int l && l >= 0 && l < f.Layers);
            // A causal LM's head is tied to the input embedding: all_but_head still trains it (it is the head).
            if (freeze && !(f.AllButHead && name == FamilyOf(m).InputEmbeddingKey && m.Task is "causal-lm" or "generation" && !f.Embeddings)) { p.requires_grad = false; frozen++; }
        }
        return $"froze {frozen} parameter tensors (embeddings: {f.Embeddings}, bottom layers: {f.Layers}, all but head: {f.AllButHead})";
    }

    /// <summary>Gradual unfreezing (ULMFiT): only the head trains at first; every <c>every</c> epochs one more layer
    /// from the top is unfrozen, the embeddings last.</summary>
    public sealed class GradualUnfreezing : ITrainerCallback
    {
        readonly ITaskModel _m; readonly int _every; readonly int _layers;
        public int Unfrozen { get; private set; }

        public GradualUnfreezing(ITaskModel m, int every)
        {
            _m = m; _every = every;
            _layers = m.Module.named_parameters().Select(p => LayerOf(m, p.name)).DefaultIfEmpty(-1).Max() + 1;
            foreach (var (name, p) in m.Module.named_parameters()) p.requires_grad = IsHead(m, name) && !IsEmbedding(m, name);
        }

        public void OnTrainBegin(Trainer t) => Apply(t.State.Epoch / _every);   // resume: restore the epoch's stage

        public void OnEpochEnd(Trainer t, int epoch)
        {
            if ((epoch + 1) % _every == 0) Apply((epoch + 1) / _every);
        }

        void Apply(int stages)
        {
            Unfrozen = stages;
            foreach (var (name, p) in _m.Module.named_parameters())
            {
                int l = LayerOf(_m, name);
                bool on = IsHead(_m, name) && !IsEmbedding(_m, name)
                    || (l >= 0 && l >= _layers - stages)
                    || (stages > _layers && !IsHead(_m, name))
                    || (stages > _layers && IsEmbedding(_m, name));
                p.requires_grad = on;
            }
        }
    }
}
