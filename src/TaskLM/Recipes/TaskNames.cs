// The task names a recipe may use, and the one place that maps a recipe task to the model head it trains.
namespace TaskLM.Recipes;

/// <summary>Recipe task names. <c>generation</c> (prompt → completion, loss on the completion only) trains a causal LM,
/// so models and their saved configs only ever say <c>causal-lm</c>; every other name is its model's task.</summary>
public static class TaskNames
{
    public const string CausalLm = "causal-lm";
    public const string MaskedLm = "masked-lm";
    public const string Classification = "classification";
    public const string TokenClassification = "token-classification";
    public const string QuestionAnswering = "question-answering";
    public const string Generation = "generation";

    /// <summary>Every name a recipe's <c>task</c> may take.</summary>
    public static readonly string[] All = [CausalLm, MaskedLm, Classification, TokenClassification, QuestionAnswering, Generation];

    /// <summary>The model task (head) a recipe task trains: generation → causal-lm; the rest unchanged.</summary>
    public static string ModelTask(string recipeTask) => recipeTask == Generation ? CausalLm : recipeTask;

    /// <summary>A language-model objective (loss over tokens, perplexity reported).</summary>
    public static bool IsLanguageModel(string task) => ModelTask(task) is CausalLm or MaskedLm;

    /// <summary>The task puts a new head on the body (classification, token classification, QA).</summary>
    public static bool HasHead(string task) => task is Classification or TokenClassification or QuestionAnswering;
}
