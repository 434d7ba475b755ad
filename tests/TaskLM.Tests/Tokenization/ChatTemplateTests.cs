// Real HF chat templates rendered by our Jinja interpreter against renderings from outside it (fixtures/tokenization/chat-templates/README.md).
using System.Text.Json.Nodes;
using TaskLM.Data.Tokenization;

namespace TaskLM.Tests.Tokenization;

public class ChatTemplateTests
{
    static readonly JsonArray Cases = JsonNode.Parse(File.ReadAllText(
        Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenization", "chat-templates", "cases.json")))!["cases"]!.AsArray();

    public static TheoryData<string> CaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var c in Cases) data.Add((string)c!["name"]!);
        return data;
    }

    /// <summary>Each fixture's template with its variables: the rendering (or the raised error) the reference gives.</summary>
    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Real_template_renders_as_the_reference(string name)
    {
        var c = Cases.Single(x => (string)x!["name"]! == name)!;
        var data = (Dictionary<string, object?>)HfChatTemplate.FromJson(c["data"])!;
        var template = new JinjaTemplate((string)c["template"]!, name);
        if (c["expected_error"] is { } err)
        {
            var e = Assert.Throws<TemplateException>(() => template.Render(data));
            Assert.Contains((string)err!, e.Message);
            Assert.Contains(name, e.Message); // the error names the template
            return;
        }
        Assert.Equal((string)c["expected"]!, template.Render(data));
    }

    [Fact]
    public void Fixtures_cover_the_families_and_both_generation_prompt_settings()
    {
        var names = Cases.Select(c => (string)c!["name"]!).ToList();
        foreach (var family in new[] { "Meta-Llama-3-8B", "Llama-3.1", "Llama-3.2", "Qwen2.5", "SmolLM2", "Mixtral", "Mistral-7B", "zephyr" })
            Assert.Contains(names, n => n.Contains(family));
        Assert.Contains(Cases, c => c!["data"]!["add_generation_prompt"] is JsonValue v && v.GetValue<bool>());
        Assert.Contains(Cases, c => c!["data"]!["add_generation_prompt"] is JsonValue v && !v.GetValue<bool>());
        Assert.Contains(Cases, c => c!["expected_error"] is not null);
    }

    static string Render(string source, object? messages = null) =>
        new JinjaTemplate(source, "t").Render(new Dictionary<string, object?> { ["messages"] = messages, ["x"] = "v" });

    // Whitespace control and HF's trim_blocks / lstrip_blocks, per the Jinja documentation's "Whitespace Control".
    [Theory]
    [InlineData("a  {{- x -}}  b", "avb")]                                   // {{- and -}} eat whitespace, newlines included
    [InlineData("a\n  {%- if true %}b{% endif %}", "ab")]
    [InlineData("{% if true -%}\n\n  b{% endif %}", "b")]
    [InlineData("{% if true %}\nb\n{% endif %}\nc", "b\nc")]                  // trim_blocks: the newline after a block tag goes
    [InlineData("{{ x }}\nc", "v\nc")]                                       // ... but not after an expression
    [InlineData("  {% if true %}b{% endif %}", "b")]                        // lstrip_blocks: indentation before a block tag goes
    [InlineData("a  {% if true %}b{% endif %}", "a  b")]                    // ... only at a line's start
    [InlineData("  {{ x }}", "  v")]                                        // ... and never before an expression
    [InlineData("  {%+ if true %}b{% endif %}", "  b")]                     // {%+ keeps it
    [InlineData("a{# note #}\nb", "ab")]                                     // comments trim like blocks
    public void Whitespace_control(string source, string expected) => Assert.Equal(expected, Render(source));

    [Theory]
    [InlineData("{{ 7 // 2 }},{{ 7 % 3 }},{{ -7 % 3 }},{{ 7 / 2 }},{{ 2 * 3 + 1 }}", "3,1,2,3.5,7")]
    [InlineData("{{ 'a' ~ 1 ~ none }}|{{ true }}|{{ [1, 'b'] }}", "a1None|True|[1, 'b']")]
    [InlineData("{{ 'b' in 'abc' }}{{ 2 not in [1, 2] }}{{ 'k' in {'k': 1} }}", "TrueFalseTrue")]
    [InlineData("{{ 'y' if 1 > 2 else 'n' }}{{ 'z' if false }}", "n")]
    [InlineData("{{ 'abcdef'[1:3] }}{{ [1, 2, 3][-1] }}{{ [1, 2, 3][::-1] }}", "bc3[3, 2, 1]")]
    [InlineData("{{ '  Hi  ' | trim | upper }}{{ 'ab' | length }}{{ 'hELLO' | capitalize }}", "HI2Hello")]
    [InlineData("{{ ['a', 'b'] | join(', ') }}|{{ undefined_name | default('d') }}|{{ '' | default('e', true) }}", "a, b|d|e")]
    [InlineData("{{ {'b': 1, 'a': [true, none, 'q\"']} | tojson }}", "{\"b\": 1, \"a\": [true, null, \"q\\\"\"]}")]
    [InlineData("{{ {'a': [1]} | tojson(indent=2) }}", "{\n  \"a\": [\n    1\n  ]\n}")]
    [InlineData("{{ 'a,b'.split(',') }}{{ 'xay'.strip('xy') }}{{ 'abc'.startswith('ab') }}{{ 'A'.lower() }}", "['a', 'b']aTruea")]
    [InlineData("{% set ns = namespace(n=0) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", "6")]
    [InlineData("{% set n = 0 %}{% for i in [1, 2] %}{% set n = i %}{% endfor %}{{ n }}", "0")]  // a loop's set stays in the loop
    [InlineData("{% for i in [] %}x{% else %}empty{% endfor %}", "empty")]
    [InlineData("{% for i in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
                "10TrueFalse3;21FalseFalse3;32FalseTrue3;")]
    [InlineData("{% for k, v in {'a': 1, 'b': 2}.items() if k != 'a' %}{{ k }}={{ v }}{{ loop.length }}{% endfor %}", "b=21")]
    [InlineData("{% if x is defined and y is not defined and none is none and x is string %}ok{% endif %}", "ok")]
    [InlineData("{% set s %}in{{ x }}{% endset %}{{ s }}", "inv")]
    [InlineData("{% if false %}a{% elif x == 'v' %}b{% else %}c{% endif %}", "b")]
    public void Expressions_and_statements(string source, string expected) => Assert.Equal(expected, Render(source));

    [Fact]
    public void Selectattr_and_rejectattr_filter_messages()
    {
        var messages = new List<object?>
        {
            new Dictionary<string, object?> { ["role"] = "user", ["content"] = "a" },
            new Dictionary<string, object?> { ["role"] = "tool", ["content"] = "b" },
            new Dictionary<string, object?> { ["role"] = "user", ["content"] = "c", ["tool_calls"] = new List<object?>() },
        };
        Assert.Equal("a,c|b|a,b",
            Render("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|"
                 + "{{ (messages | rejectattr('role', 'equalto', 'user') | first).content }}|"
                 + "{{ messages | selectattr('tool_calls', 'undefined') | map(attribute='content') | join(',') }}", messages));
    }

    [Theory]
    [InlineData("ab\n{{ x +  }}", "2:9")]                         // an expression cut short
    [InlineData("{% while true %}{% endwhile %}", "1:4")]          // a statement outside the subset
    [InlineData("{{ x | nosuchfilter }}", "1:6")]
    [InlineData("{% if true %}a", "missing '{% endif %}'")]
    [InlineData("{{ x.y.z }}", "'y' is undefined")]
    [InlineData("{{ 'a' + 1 }}", "cannot apply '+'")]
    public void Unknown_syntax_and_bad_values_are_errors_naming_template_and_position(string source, string expected)
    {
        var e = Assert.Throws<TemplateException>(() => Render(source));
        Assert.Contains("chat template 't'", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Strftime_now_formats_the_given_clock_as_python_does()
    {
        var t = new JinjaTemplate("{% if strftime_now is defined %}{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M') }}{% endif %}", "t");
        Assert.Equal("26 Jul 2024|2024-07-26 09:05", t.Render(new Dictionary<string, object?>(), new DateTime(2024, 7, 26, 9, 5, 0)));
    }

    [Fact]
    public void Llama_3_2_template_puts_todays_date_from_strftime_now_in_the_system_header()
    {
        var c = Cases.First(x => ((string)x!["name"]!).Contains("Llama-3.2"))!;
        var t = new HfChatTemplate((string)c["template"]!, "llama-3.2", new Dictionary<string, string> { ["bos_token"] = "<|begin_of_text|>" });
        string prompt = t.Render([("system", "Be brief."), ("user", "Hi")], addGenerationPrompt: true, now: new DateTime(2024, 12, 3));
        Assert.Equal("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 03 Dec 2024\n\n"
            + "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", prompt);
    }

    static string Folder(string tokenizerConfig)
    {
        string dir = Path.Combine(Path.GetTempPath(), "tasklm-chat-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), tokenizerConfig);
        return dir;
    }

    [Fact]
    public void FromFolder_reads_the_string_form_with_special_tokens_as_strings_or_objects()
    {
        var c = Cases.First(x => ((string)x!["name"]!).StartsWith("mistralai/Mixtral"))!;
        var config = new JsonObject
        {
            ["bos_token"] = new JsonObject { ["content"] = "<s>", ["lstrip"] = false },
            ["eos_token"] = "</s>",
            ["chat_template"] = (string)c["template"]!,
        };
        string dir = Folder(config.ToJsonString());
        try
        {
            var t = HfChatTemplate.FromFolder(dir)!;
            Assert.Equal("<s>[INST] Hi [/INST]Hello</s>[INST] Again [/INST]", t.Render([("user", "Hi"), ("assistant", "Hello"), ("user", "Again")]));
            var e = Assert.Throws<TemplateException>(() => t.Render([("assistant", "x")]));
            Assert.Contains("tokenizer_config.json", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void FromFolder_picks_default_from_the_list_form_and_returns_null_without_a_template()
    {
        string dir = Folder("""{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{% for m in messages %}[{{ m.role }}]{% endfor %}"}]}""");
        string none = Folder("""{"bos_token": "<s>"}""");
        try
        {
            Assert.Equal("[user]", HfChatTemplate.FromFolder(dir)!.Render([("user", "x")]));
            Assert.Null(HfChatTemplate.FromFolder(none));
            File.WriteAllText(Path.Combine(none, "tokenizer_config.json"), """{"chat_template": [{"name": "tool_use", "template": "T"}]}""");
            Assert.Throws<InvalidDataException>(() => HfChatTemplate.FromFolder(none));
        }
        finally { Directory.Delete(dir, true); Directory.Delete(none, true); }
    }
}
