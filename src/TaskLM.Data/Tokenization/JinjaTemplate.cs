// A small Jinja interpreter for the subset Hugging Face chat templates use (rendered as HF does: trim_blocks, lstrip_blocks).
using System.Globalization;
using System.Text;

namespace TaskLM.Data.Tokenization;

/// <summary>A template that cannot be parsed or that failed while rendering; the message names the template and the
/// line:column in it.</summary>
public sealed class TemplateException(string message) : Exception(message);

/// <summary>
/// A compiled Jinja template, for the subset chat templates use: <c>{{ }}</c>, <c>{% if/elif/else %}</c>,
/// <c>{% for %}</c> (with <c>loop</c>, an inline <c>if</c> filter and <c>else</c>), <c>{% set %}</c> (also
/// <c>ns.attr = …</c> on a <c>namespace()</c> and the block form), comments, whitespace control and HF's
/// <c>trim_blocks=True, lstrip_blocks=True</c>. Values are <see langword="null"/> (none), <see cref="bool"/>,
/// <see cref="long"/>, <see cref="double"/>, <see cref="string"/>, <see cref="List{T}"/> of objects and
/// <see cref="Dictionary{TKey,TValue}"/> of string → object (insertion order is kept, as Python dicts do).
/// Syntax outside the subset is an error naming the template position, never silently skipped.
/// </summary>
public sealed class JinjaTemplate
{
    readonly string _name;
    readonly string _source;
    readonly List<Node> _body;

    /// <summary>Parses <paramref name="source"/>; <paramref name="name"/> appears in every error.</summary>
    public JinjaTemplate(string source, string name = "template")
    {
        _name = name;
        _source = source;
        var segs = Lex(source);
        int i = 0;
        _body = ParseBlock(segs, ref i, []);
        if (i < segs.Count) throw Error(segs[i].Pos, $"unexpected '{{% {segs[i].Tokens[0].Text} %}}'");
    }

    /// <summary>The template's name, as errors show it.</summary>
    public string Name => _name;

    /// <summary>Renders with these variables. Functions available to the template: <c>raise_exception(msg)</c>,
    /// <c>strftime_now(format)</c>, <c>namespace(...)</c>, <c>range(...)</c>.</summary>
    public string Render(IReadOnlyDictionary<string, object?> variables, DateTime? now = null)
    {
        var ctx = new Ctx(this, now ?? DateTime.Now);
        foreach (var (k, v) in variables) ctx.Scopes[1][k] = v;
        var sb = new StringBuilder();
        Exec(_body, ctx, sb);
        return sb.ToString();
    }

    // ---------------------------------------------------------------- lexing: text, {{ }}, {% %}, {# #}

    enum SegKind { Text, Output, Stmt }
    sealed record Seg(SegKind Kind, string Text, List<Tok> Tokens, int Pos);
    enum TokKind { Name, Str, Int, Float, Op, End }
    sealed record Tok(TokKind Kind, string Text, int Pos, object? Value = null);

    List<Seg> Lex(string s)
    {
        var segs = new List<Seg>();
        int pos = 0;
        bool stripNext = false, trimNewline = false;
        while (pos <= s.Length)
        {
            int open = FindOpen(s, pos);
            int textEnd = open < 0 ? s.Length : open;
            string text = s[pos..textEnd];
            int textStart = pos;
            if (stripNext) { int n = text.Length; text = text.TrimStart(); textStart += n - text.Length; }
            else if (trimNewline)
            {
                // trim_blocks: the first newline after a block or comment tag goes.
                if (text.StartsWith("\r\n")) { text = text[2..]; textStart += 2; }
                else if (text.StartsWith('\n')) { text = text[1..]; textStart += 1; }
            }
            if (open < 0) { if (text.Length > 0) segs.Add(new Seg(SegKind.Text, text, [], textStart)); break; }

            char kind = s[open + 1];
            int inner = open + 2;
            bool leftStrip = inner < s.Length && s[inner] == '-';
            bool plus = inner < s.Length && s[inner] == '+';
            if (leftStrip || plus) inner++;
            if (leftStrip) text = text.TrimEnd();
            else if (kind != '{' && !plus)
            {
                // lstrip_blocks: spaces and tabs from the line's start up to a block or comment tag go.
                int nl = text.LastIndexOf('\n');
                string tail = text[(nl + 1)..];
                bool lineStart = nl >= 0 || textStart == 0 || s[textStart - 1] == '\n';
                if (lineStart && tail.All(c => c == ' ' || c == '\t')) text = text[..(nl + 1)];
            }
            if (text.Length > 0) segs.Add(new Seg(SegKind.Text, text, [], textStart));

            if (kind == '#')
            {
                int close = s.IndexOf("#}", inner, StringComparison.Ordinal);
                if (close < 0) throw Error(open, "comment '{#' is never closed");
                bool rs = s[close - 1] == '-' && close - 1 >= inner;
                stripNext = rs; trimNewline = !rs;
                pos = close + 2;
                continue;
            }
            char closeCh = kind == '{' ? '}' : '%';
            var (toks, closeAt, rightStrip) = LexExpr(s, inner, closeCh, open);
            toks.Add(new Tok(TokKind.End, "", closeAt));
            if (kind == '%' && toks.Count >= 2 && toks[0].Kind == TokKind.Name && toks[0].Text == "raw")
                throw Error(open, "'{% raw %}' is not supported");
            segs.Add(new Seg(kind == '{' ? SegKind.Output : SegKind.Stmt, "", toks, open));
            stripNext = rightStrip;
            trimNewline = !rightStrip && kind == '%';
            pos = closeAt + 2;
        }
        return segs;
    }

    static int FindOpen(string s, int from)
    {
        for (int i = s.IndexOf('{', from); i >= 0 && i + 1 < s.Length; i = s.IndexOf('{', i + 1))
            if (s[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>Tokens of one tag's expression, up to its closing "}}" or "%}" (outside strings and braces).</summary>
    (List<Tok> Tokens, int CloseAt, bool Strip) LexExpr(string s, int i, char closeCh, int open)
    {
        var toks = new List<Tok>();
        int depth = 0;
        while (true)
        {
            if (i >= s.Length) throw Error(open, closeCh == '}' ? "'{{' is never closed" : "'{%' is never closed");
            char c = s[i];
            if (char.IsWhiteSpace(c)) { i++; continue; }
            if (depth == 0 && c == closeCh && i + 1 < s.Length && s[i + 1] == '}') return (toks, i, false);
            if (depth == 0 && c == '-' && i + 2 < s.Length && s[i + 1] == closeCh && s[i + 2] == '}') return (toks, i + 1, true);
            int start = i;
            if (char.IsLetter(c) || c == '_')
            {
                while (i < s.Length && (char.IsLetterOrDigit(s[i]) || s[i] == '_')) i++;
                toks.Add(new Tok(TokKind.Name, s[start..i], start));
            }
            else if (char.IsDigit(c))
            {
                while (i < s.Length && (char.IsDigit(s[i]) || s[i] == '_')) i++;
                bool isFloat = false;
                if (i + 1 < s.Length && s[i] == '.' && char.IsDigit(s[i + 1]))
                {
                    isFloat = true; i++;
                    while (i < s.Length && char.IsDigit(s[i])) i++;
                }
                string num = s[start..i].Replace("_", "");
                toks.Add(isFloat ? new Tok(TokKind.Float, num, start, double.Parse(num, CultureInfo.InvariantCulture))
                                 : new Tok(TokKind.Int, num, start, long.Parse(num, CultureInfo.InvariantCulture)));
            }
            else if (c is '\'' or '"')
            {
                var sb = new StringBuilder();
                i++;
                while (true)
                {
                    if (i >= s.Length) throw Error(start, "string literal is never closed");
                    char d = s[i++];
                    if (d == c) break;
                    if (d != '\\') { sb.Append(d); continue; }
                    if (i >= s.Length) throw Error(start, "string literal is never closed");
                    char e = s[i++];
                    switch (e)
                    {
                        case 'n': sb.Append('\n'); break;
                        case 't': sb.Append('\t'); break;
                        case 'r': sb.Append('\r'); break;
                        case '\\': sb.Append('\\'); break;
                        case '\'': sb.Append('\''); break;
                        case '"': sb.Append('"'); break;
                        case 'u' when i + 4 <= s.Length: sb.Append((char)Convert.ToInt32(s.Substring(i, 4), 16)); i += 4; break;
                        default: sb.Append('\\').Append(e); break; // Python keeps unknown escapes as written
                    }
                }
                toks.Add(new Tok(TokKind.Str, s[start..i], start, sb.ToString()));
            }
            else
            {
                string[] ops = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "="];
                string? op = ops.FirstOrDefault(o => string.CompareOrdinal(s, i, o, 0, o.Length) == 0);
                if (op is null) throw Error(i, $"unexpected character '{c}'");
                if (op is "(" or "[" or "{") depth++;
                else if (op is ")" or "]" or "}") depth = Math.Max(0, depth - 1);
                toks.Add(new Tok(TokKind.Op, op, i));
                i += op.Length;
            }
        }
    }

    // ---------------------------------------------------------------- AST

    abstract record Node(int Pos);
    sealed record TextNode(string Text, int Pos) : Node(Pos);
    sealed record OutputNode(Expr E, int Pos) : Node(Pos);
    sealed record IfNode(List<(Expr Cond, List<Node> Body)> Branches, List<Node>? Else, int Pos) : Node(Pos);
    sealed record ForNode(List<string> Targets, Expr Iter, Expr? Filter, List<Node> Body, List<Node>? Else, int Pos) : Node(Pos);
    sealed record SetNode(string Name, string? Attr, Expr? Value, List<Node>? Block, int Pos) : Node(Pos);

    abstract record Expr(int Pos);
    sealed record Lit(object? Value, int Pos) : Expr(Pos);
    sealed record Var(string Name, int Pos) : Expr(Pos);
    sealed record ListLit(List<Expr> Items, int Pos) : Expr(Pos);
    sealed record DictLit(List<(Expr Key, Expr Value)> Items, int Pos) : Expr(Pos);
    sealed record Attr(Expr Target, string Name, int Pos) : Expr(Pos);
    sealed record Index(Expr Target, Expr Key, int Pos) : Expr(Pos);
    sealed record Slice(Expr Target, Expr? Start, Expr? Stop, Expr? Step, int Pos) : Expr(Pos);
    sealed record Call(Expr Target, List<Expr> Args, List<(string Name, Expr Value)> Kwargs, int Pos) : Expr(Pos);
    sealed record Filter(Expr Target, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs, int Pos) : Expr(Pos);
    sealed record Test(Expr Target, string Name, List<Expr> Args, bool Negated, int Pos) : Expr(Pos);
    sealed record Unary(string Op, Expr Operand, int Pos) : Expr(Pos);
    sealed record Binary(string Op, Expr Left, Expr Right, int Pos) : Expr(Pos);
    sealed record Cond(Expr Test, Expr Then, Expr? Else, int Pos) : Expr(Pos);

    // ---------------------------------------------------------------- parsing statements

    List<Node> ParseBlock(List<Seg> segs, ref int i, string[] stopAt)
    {
        var nodes = new List<Node>();
        while (i < segs.Count)
        {
            var seg = segs[i];
            if (seg.Kind == SegKind.Text) { nodes.Add(new TextNode(seg.Text, seg.Pos)); i++; continue; }
            var p = new ExprParser(this, seg.Tokens);
            if (seg.Kind == SegKind.Output)
            {
                var e = p.ParseExpression();
                p.ExpectEnd();
                nodes.Add(new OutputNode(e, seg.Pos)); i++; continue;
            }
            var head = p.Peek;
            if (head.Kind != TokKind.Name) throw Error(head.Pos, "expected a statement name after '{%'");
            if (stopAt.Contains(head.Text)) return nodes;
            i++;
            switch (head.Text)
            {
                case "if": nodes.Add(ParseIf(segs, ref i, p, seg.Pos)); break;
                case "for": nodes.Add(ParseFor(segs, ref i, p, seg.Pos)); break;
                case "set": nodes.Add(ParseSet(segs, ref i, p, seg.Pos)); break;
                default: throw Error(head.Pos, $"unknown or unsupported statement '{head.Text}'");
            }
        }
        if (stopAt.Length > 0) throw Error(_source.Length, $"missing '{{% {stopAt[^1]} %}}' before the end of the template");
        return nodes;
    }

    Node ParseIf(List<Seg> segs, ref int i, ExprParser p, int pos)
    {
        p.Next(); // if
        var branches = new List<(Expr, List<Node>)>();
        var cond = p.ParseExpression(); p.ExpectEnd();
        List<Node>? elseBody = null;
        while (true)
        {
            var body = ParseBlock(segs, ref i, ["elif", "else", "endif"]);
            branches.Add((cond, body));
            var q = new ExprParser(this, segs[i].Tokens);
            string kw = q.Next().Text;
            i++;
            if (kw == "elif") { cond = q.ParseExpression(); q.ExpectEnd(); continue; }
            q.ExpectEnd();
            if (kw == "else")
            {
                elseBody = ParseBlock(segs, ref i, ["endif"]);
                i++;
            }
            break;
        }
        return new IfNode(branches, elseBody, pos);
    }

    Node ParseFor(List<Seg> segs, ref int i, ExprParser p, int pos)
    {
        p.Next(); // for
        var targets = new List<string> { p.ExpectName() };
        while (p.TryOp(",")) targets.Add(p.ExpectName());
        p.ExpectKeyword("in");
        var iter = p.ParseExpression(noCondExpr: true);
        Expr? filter = null;
        if (p.TryKeyword("if")) filter = p.ParseExpression(noCondExpr: true);
        if (p.TryKeyword("recursive")) throw Error(p.Peek.Pos, "recursive loops are not supported");
        p.ExpectEnd();
        var body = ParseBlock(segs, ref i, ["else", "endfor"]);
        List<Node>? elseBody = null;
        var q = new ExprParser(this, segs[i].Tokens);
        string kw = q.Next().Text; q.ExpectEnd(); i++;
        if (kw == "else")
        {
            elseBody = ParseBlock(segs, ref i, ["endfor"]);
            i++;
        }
        return new ForNode(targets, iter, filter, body, elseBody, pos);
    }

    Node ParseSet(List<Seg> segs, ref int i, ExprParser p, int pos)
    {
        p.Next(); // set
        string name = p.ExpectName();
        string? attr = null;
        if (p.TryOp(".")) attr = p.ExpectName();
        if (p.TryOp("="))
        {
            var value = p.ParseExpression();
            p.ExpectEnd();
            return new SetNode(name, attr, value, null, pos);
        }
        p.ExpectEnd();
        if (attr is not null) throw Error(pos, "a block '{% set %}' assigns a plain name");
        var block = ParseBlock(segs, ref i, ["endset"]);
        i++;
        return new SetNode(name, null, null, block, pos);
    }

    // ---------------------------------------------------------------- parsing expressions

    sealed class ExprParser(JinjaTemplate t, List<Tok> toks)
    {
        int _i;
        public Tok Peek => toks[_i];
        public Tok Next() => toks[_i < toks.Count - 1 ? _i++ : _i];
        bool IsOp(string op) => Peek.Kind == TokKind.Op && Peek.Text == op;
        bool IsKeyword(string kw) => Peek.Kind == TokKind.Name && Peek.Text == kw;
        public bool TryOp(string op) { if (!IsOp(op)) return false; _i++; return true; }
        public bool TryKeyword(string kw) { if (!IsKeyword(kw)) return false; _i++; return true; }
        public void ExpectOp(string op) { if (!TryOp(op)) throw t.Error(Peek.Pos, $"expected '{op}', found {Describe(Peek)}"); }
        public void ExpectKeyword(string kw) { if (!TryKeyword(kw)) throw t.Error(Peek.Pos, $"expected '{kw}', found {Describe(Peek)}"); }
        public string ExpectName()
        {
            if (Peek.Kind != TokKind.Name) throw t.Error(Peek.Pos, $"expected a name, found {Describe(Peek)}");
            return Next().Text;
        }
        public void ExpectEnd() { if (Peek.Kind != TokKind.End) throw t.Error(Peek.Pos, $"unexpected {Describe(Peek)}"); }
        static string Describe(Tok k) => k.Kind == TokKind.End ? "the end of the tag" : $"'{k.Text}'";

        public Expr ParseExpression(bool noCondExpr = false)
        {
            var e = ParseOr();
            if (noCondExpr) return e;
            while (IsKeyword("if"))
            {
                int pos = Next().Pos;
                var test = ParseOr();
                Expr? other = TryKeyword("else") ? ParseExpression() : null;
                e = new Cond(test, e, other, pos);
            }
            return e;
        }

        Expr ParseOr()
        {
            var e = ParseAnd();
            while (IsKeyword("or")) { int p = Next().Pos; e = new Binary("or", e, ParseAnd(), p); }
            return e;
        }

        Expr ParseAnd()
        {
            var e = ParseNot();
            while (IsKeyword("and")) { int p = Next().Pos; e = new Binary("and", e, ParseNot(), p); }
            return e;
        }

        Expr ParseNot()
        {
            if (IsKeyword("not")) { int p = Next().Pos; return new Unary("not", ParseNot(), p); }
            return ParseCompare();
        }

        Expr ParseCompare()
        {
            var e = ParseMath1();
            while (true)
            {
                int p = Peek.Pos;
                if (Peek.Kind == TokKind.Op && Peek.Text is "==" or "!=" or "<" or ">" or "<=" or ">=")
                    e = new Binary(Next().Text, e, ParseMath1(), p);
                else if (TryKeyword("in")) e = new Binary("in", e, ParseMath1(), p);
                else if (IsKeyword("not") && toks[_i + 1].Kind == TokKind.Name && toks[_i + 1].Text == "in")
                { _i += 2; e = new Binary("not in", e, ParseMath1(), p); }
                else return e;
            }
        }

        Expr ParseMath1()
        {
            var e = ParseConcat();
            while (IsOp("+") || IsOp("-")) { var k = Next(); e = new Binary(k.Text, e, ParseConcat(), k.Pos); }
            return e;
        }

        Expr ParseConcat()
        {
            var e = ParseMath2();
            while (IsOp("~")) { var k = Next(); e = new Binary("~", e, ParseMath2(), k.Pos); }
            return e;
        }

        Expr ParseMath2()
        {
            var e = ParseUnary();
            while (Peek.Kind == TokKind.Op && Peek.Text is "*" or "/" or "//" or "%")
            { var k = Next(); e = new Binary(k.Text, e, ParseUnary(), k.Pos); }
            return e;
        }

        Expr ParseUnary()
        {
            if (IsOp("-")) { int p = Next().Pos; return new Unary("-", ParseUnary(), p); }
            if (IsOp("+")) { Next(); return ParseUnary(); }
            return ParseFiltersAndTests(ParsePostfix(ParsePrimary()));
        }

        Expr ParseFiltersAndTests(Expr e)
        {
            while (true)
            {
                if (IsOp("|"))
                {
                    int p = Next().Pos;
                    string name = ExpectName();
                    var (args, kwargs) = IsOp("(") ? ParseArgs() : ([], []);
                    e = ParsePostfix(new Filter(e, name, args, kwargs, p));
                }
                else if (IsKeyword("is"))
                {
                    int p = Next().Pos;
                    bool neg = TryKeyword("not");
                    string name = Peek.Kind == TokKind.Name ? Next().Text : IsOp("==") ? Next().Text : ExpectName();
                    var args = new List<Expr>();
                    if (IsOp("(")) args = ParseArgs().Args;
                    else if (Peek.Kind is TokKind.Str or TokKind.Int or TokKind.Float
                             || (Peek.Kind == TokKind.Name && Peek.Text is not ("and" or "or" or "else" or "if" or "in" or "not" or "is")))
                        args.Add(ParsePostfix(ParsePrimary()));
                    e = new Test(e, name, args, neg, p);
                }
                else return e;
            }
        }

        Expr ParsePostfix(Expr e)
        {
            while (true)
            {
                if (IsOp("."))
                {
                    int p = Next().Pos;
                    if (Peek.Kind == TokKind.Int) e = new Index(e, new Lit(Next().Value, p), p);
                    else e = new Attr(e, ExpectName(), p);
                }
                else if (IsOp("["))
                {
                    int p = Next().Pos;
                    Expr? a = null, b = null, c = null;
                    bool slice = false;
                    if (!IsOp(":")) a = ParseExpression();
                    if (TryOp(":"))
                    {
                        slice = true;
                        if (!IsOp("]") && !IsOp(":")) b = ParseExpression();
                        if (TryOp(":") && !IsOp("]")) c = ParseExpression();
                    }
                    ExpectOp("]");
                    e = slice ? new Slice(e, a, b, c, p) : new Index(e, a!, p);
                }
                else if (IsOp("("))
                {
                    int p = Peek.Pos;
                    var (args, kwargs) = ParseArgs();
                    e = new Call(e, args, kwargs, p);
                }
                else return e;
            }
        }

        (List<Expr> Args, List<(string, Expr)> Kwargs) ParseArgs()
        {
            ExpectOp("(");
            var args = new List<Expr>();
            var kwargs = new List<(string, Expr)>();
            while (!TryOp(")"))
            {
                if (Peek.Kind == TokKind.Name && toks[_i + 1].Kind == TokKind.Op && toks[_i + 1].Text == "=")
                {
                    string n = Next().Text; Next();
                    kwargs.Add((n, ParseExpression()));
                }
                else args.Add(ParseExpression());
                if (!IsOp(")")) ExpectOp(",");
            }
            return (args, kwargs);
        }

        Expr ParsePrimary()
        {
            var k = Peek;
            switch (k.Kind)
            {
                case TokKind.Str:
                    {
                        Next();
                        string s = (string)k.Value!;
                        while (Peek.Kind == TokKind.Str) s += (string)Next().Value!; // adjacent literals join
                        return new Lit(s, k.Pos);
                    }
                case TokKind.Int: case TokKind.Float: Next(); return new Lit(k.Value, k.Pos);
                case TokKind.Name:
                    Next();
                    return k.Text switch
                    {
                        "true" or "True" => new Lit(true, k.Pos),
                        "false" or "False" => new Lit(false, k.Pos),
                        "none" or "None" => new Lit(null, k.Pos),
                        _ => new Var(k.Text, k.Pos),
                    };
                case TokKind.Op when k.Text == "(":
                    {
                        Next();
                        if (TryOp(")")) return new ListLit([], k.Pos);
                        var e = ParseExpression();
                        if (!IsOp(",")) { ExpectOp(")"); return e; }
                        var items = new List<Expr> { e };
                        while (TryOp(",") && !IsOp(")")) items.Add(ParseExpression());
                        ExpectOp(")");
                        return new ListLit(items, k.Pos);
                    }
                case TokKind.Op when k.Text == "[":
                    {
                        Next();
                        var items = new List<Expr>();
                        while (!TryOp("]"))
                        {
                            items.Add(ParseExpression());
                            if (!IsOp("]")) ExpectOp(",");
                        }
                        return new ListLit(items, k.Pos);
                    }
                case TokKind.Op when k.Text == "{":
                    {
                        Next();
                        var items = new List<(Expr, Expr)>();
                        while (!TryOp("}"))
                        {
                            var key = ParseExpression();
                            ExpectOp(":");
                            items.Add((key, ParseExpression()));
                            if (!IsOp("}")) ExpectOp(",");
                        }
                        return new DictLit(items, k.Pos);
                    }
                default:
                    throw t.Error(k.Pos, k.Kind == TokKind.End ? "expected an expression before the end of the tag" : $"unexpected '{k.Text}'");
            }
        }
    }

    // ---------------------------------------------------------------- rendering

    /// <summary>The value of a name the template never set and was not given (Jinja's Undefined).</summary>
    sealed class Undefined(string name)
    {
        public string Name { get; } = name;
    }

    /// <summary>A namespace() object: the one kind of value whose attributes a template may assign.</summary>
    sealed class Namespace : Dictionary<string, object?>;

    /// <summary>A function the template may call (raise_exception, strftime_now, namespace, range, dict); being a
    /// value, "strftime_now is defined" holds, as templates check.</summary>
    sealed record Function(Func<List<object?>, Dictionary<string, object?>, int, object?> Invoke);

    Dictionary<string, object?> Globals(DateTime now) => new()
    {
        ["raise_exception"] = new Function((args, _, pos) =>
            throw new TemplateException($"chat template '{_name}' raised an error: {(args.Count > 0 ? Str(args[0], pos) : "")}")),
        ["strftime_now"] = new Function((args, _, pos) => Strftime(now, args.Count > 0 ? Str(args[0], pos) : "", pos)),
        ["namespace"] = new Function((args, kwargs, _) =>
        {
            var ns = new Namespace();
            foreach (var arg in args) if (arg is Dictionary<string, object?> d) foreach (var (k, x) in d) ns[k] = x;
            foreach (var (k, x) in kwargs) ns[k] = x;
            return ns;
        }),
        ["range"] = new Function((args, _, pos) =>
        {
            var n = args.Select(x => ToLong(x, pos)).ToList();
            long start = n.Count > 1 ? n[0] : 0, stop = n.Count > 1 ? n[1] : n.Count == 1 ? n[0] : 0, step = n.Count > 2 ? n[2] : 1;
            if (step == 0) throw Error(pos, "range() step must not be zero");
            var r = new List<object?>();
            for (long i = start; step > 0 ? i < stop : i > stop; i += step) r.Add(i);
            return r;
        }),
        ["dict"] = new Function((_, kwargs, _) => new Dictionary<string, object?>(kwargs)),
    };

    sealed class Ctx(JinjaTemplate t, DateTime now)
    {
        public readonly List<Dictionary<string, object?>> Scopes = [t.Globals(now), new()];
        public readonly JinjaTemplate T = t;
        public readonly DateTime Now = now;

        public object? Lookup(string name)
        {
            for (int i = Scopes.Count - 1; i >= 0; i--)
                if (Scopes[i].TryGetValue(name, out var v)) return v;
            return new Undefined(name);
        }
    }

    void Exec(List<Node> nodes, Ctx ctx, StringBuilder sb)
    {
        foreach (var n in nodes)
        {
            switch (n)
            {
                case TextNode tn: sb.Append(tn.Text); break;
                case OutputNode o: sb.Append(Str(Eval(o.E, ctx), o.Pos)); break;
                case IfNode f:
                    {
                        bool done = false;
                        foreach (var (c, body) in f.Branches)
                            if (Truthy(Eval(c, ctx))) { Exec(body, ctx, sb); done = true; break; }
                        if (!done && f.Else is not null) Exec(f.Else, ctx, sb);
                        break;
                    }
                case ForNode f: ExecFor(f, ctx, sb); break;
                case SetNode s:
                    {
                        object? v;
                        if (s.Block is not null) { var inner = new StringBuilder(); Exec(s.Block, ctx, inner); v = inner.ToString(); }
                        else v = Eval(s.Value!, ctx);
                        if (s.Attr is null) { ctx.Scopes[^1][s.Name] = v; break; }
                        if (ctx.Lookup(s.Name) is not Namespace ns) throw Error(s.Pos, $"'{s.Name}.{s.Attr} = …' needs '{s.Name}' to be a namespace()");
                        ns[s.Attr] = v;
                        break;
                    }
            }
        }
    }

    void ExecFor(ForNode f, Ctx ctx, StringBuilder sb)
    {
        var source = Iterate(Eval(f.Iter, ctx), f.Pos);
        var items = new List<object?>();
        ctx.Scopes.Add([]);
        try
        {
            foreach (var item in source)
            {
                if (f.Filter is not null)
                {
                    Bind(f, item, ctx);
                    if (!Truthy(Eval(f.Filter, ctx))) continue;
                }
                items.Add(item);
            }
            for (int i = 0; i < items.Count; i++)
            {
                ctx.Scopes[^1] = new Dictionary<string, object?>
                {
                    ["loop"] = new Dictionary<string, object?>
                    {
                        ["index"] = (long)(i + 1), ["index0"] = (long)i, ["first"] = i == 0, ["last"] = i == items.Count - 1,
                        ["length"] = (long)items.Count, ["revindex"] = (long)(items.Count - i), ["revindex0"] = (long)(items.Count - i - 1),
                        ["previtem"] = i > 0 ? items[i - 1] : new Undefined("previtem"),
                        ["nextitem"] = i < items.Count - 1 ? items[i + 1] : new Undefined("nextitem"),
                    },
                };
                Bind(f, items[i], ctx);
                Exec(f.Body, ctx, sb);
            }
        }
        finally { ctx.Scopes.RemoveAt(ctx.Scopes.Count - 1); }
        if (items.Count == 0 && f.Else is not null) Exec(f.Else, ctx, sb);
    }

    void Bind(ForNode f, object? item, Ctx ctx)
    {
        if (f.Targets.Count == 1) { ctx.Scopes[^1][f.Targets[0]] = item; return; }
        var parts = item as List<object?>;
        if (parts is null || parts.Count != f.Targets.Count)
            throw Error(f.Pos, $"cannot unpack {TypeName(item)} into {f.Targets.Count} loop variables");
        for (int i = 0; i < parts.Count; i++) ctx.Scopes[^1][f.Targets[i]] = parts[i];
    }

    object? Eval(Expr e, Ctx ctx)
    {
        switch (e)
        {
            case Lit l: return l.Value;
            case Var v: return ctx.Lookup(v.Name);
            case ListLit l: return l.Items.Select(x => Eval(x, ctx)).ToList();
            case DictLit d:
                {
                    var r = new Dictionary<string, object?>();
                    foreach (var (k, x) in d.Items) r[Str(Eval(k, ctx), k.Pos)] = Eval(x, ctx);
                    return r;
                }
            case Attr a: return GetAttr(Eval(a.Target, ctx), a.Name, a.Pos);
            case Index ix: return GetItem(Eval(ix.Target, ctx), Eval(ix.Key, ctx), ix.Pos);
            case Slice s:
                {
                    var target = Eval(s.Target, ctx);
                    long? Opt(Expr? x) => x is null ? null : ToLong(Eval(x, ctx), x.Pos);
                    return DoSlice(target, Opt(s.Start), Opt(s.Stop), Opt(s.Step), s.Pos);
                }
            case Unary u when u.Op == "not": return !Truthy(Eval(u.Operand, ctx));
            case Unary u: return Arith("-", 0L, Eval(u.Operand, ctx), u.Pos);
            case Binary b when b.Op == "and": { var l = Eval(b.Left, ctx); return Truthy(l) ? Eval(b.Right, ctx) : l; }
            case Binary b when b.Op == "or": { var l = Eval(b.Left, ctx); return Truthy(l) ? l : Eval(b.Right, ctx); }
            case Binary b: return BinaryOp(b.Op, Eval(b.Left, ctx), Eval(b.Right, ctx), b.Pos);
            case Cond c: return Truthy(Eval(c.Test, ctx)) ? Eval(c.Then, ctx) : c.Else is null ? new Undefined("else") : Eval(c.Else, ctx);
            case Test t:
                {
                    bool r = RunTest(t.Name, Eval(t.Target, ctx), t.Args.Select(x => Eval(x, ctx)).ToList(), t.Pos);
                    return t.Negated ? !r : r;
                }
            case Filter f:
                return RunFilter(f.Name, Eval(f.Target, ctx), f.Args.Select(x => Eval(x, ctx)).ToList(),
                    f.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, ctx)), f.Pos);
            case Call c: return EvalCall(c, ctx);
        }
        throw Error(e.Pos, "unsupported expression");
    }

    object? EvalCall(Call c, Ctx ctx)
    {
        var args = c.Args.Select(x => Eval(x, ctx)).ToList();
        var kwargs = c.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, ctx));
        if (c.Target is Attr a)
            return CallMethod(Eval(a.Target, ctx), a.Name, args, c.Pos);
        var fn = Eval(c.Target, ctx);
        if (fn is Function f) return f.Invoke(args, kwargs, c.Pos);
        if (fn is Undefined u) throw Error(c.Pos, $"'{u.Name}' is not a function this interpreter knows");
        throw Error(c.Pos, $"{TypeName(fn)} cannot be called");
    }

    object? CallMethod(object? target, string name, List<object?> args, int pos)
    {
        if (target is string s)
        {
            string? Arg(int i) => i < args.Count && args[i] is not null ? Str(args[i], pos) : null;
            switch (name)
            {
                case "startswith": return s.StartsWith(Arg(0) ?? "", StringComparison.Ordinal);
                case "endswith": return s.EndsWith(Arg(0) ?? "", StringComparison.Ordinal);
                case "strip": return Arg(0) is { } c ? s.Trim(c.ToCharArray()) : s.Trim();
                case "lstrip": return Arg(0) is { } c2 ? s.TrimStart(c2.ToCharArray()) : s.TrimStart();
                case "rstrip": return Arg(0) is { } c3 ? s.TrimEnd(c3.ToCharArray()) : s.TrimEnd();
                case "lower": return s.ToLowerInvariant();
                case "upper": return s.ToUpperInvariant();
                case "title": return CultureInfo.InvariantCulture.TextInfo.ToTitleCase(s.ToLowerInvariant());
                case "capitalize": return Capitalize(s);
                case "replace": return s.Replace(Arg(0) ?? "", Arg(1) ?? "", StringComparison.Ordinal);
                case "split":
                    {
                        var parts = Arg(0) is { } sep ? s.Split(sep) : s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                        return parts.Select(x => (object?)x).ToList();
                    }
                case "find": return (long)s.IndexOf(Arg(0) ?? "", StringComparison.Ordinal);
                case "format": throw Error(pos, "str.format is not supported");
            }
        }
        else if (target is Dictionary<string, object?> d)
        {
            switch (name)
            {
                case "items": return d.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList();
                case "keys": return d.Keys.Select(k => (object?)k).ToList();
                case "values": return d.Values.ToList();
                case "get": return args.Count > 0 && d.TryGetValue(Str(args[0], pos), out var x) ? x : args.Count > 1 ? args[1] : null;
            }
        }
        if (target is Undefined u) throw Error(pos, $"'{u.Name}' is undefined, so it has no method '{name}'");
        throw Error(pos, $"{TypeName(target)} has no method '{name}' this interpreter knows");
    }

    object? GetAttr(object? target, string name, int pos)
    {
        switch (target)
        {
            case Dictionary<string, object?> d: return d.TryGetValue(name, out var v) ? v : new Undefined(name);
            case Undefined u: throw Error(pos, $"'{u.Name}' is undefined, so it has no attribute '{name}'");
            case null: throw Error(pos, $"none has no attribute '{name}'");
            default: return new Undefined(name); // methods are handled at the call; other attributes are undefined
        }
    }

    object? GetItem(object? target, object? key, int pos)
    {
        switch (target)
        {
            case Dictionary<string, object?> d:
                return key is string ks && d.TryGetValue(ks, out var v) ? v : new Undefined(key is string k2 ? k2 : "item");
            case List<object?> or string when key is string ks2:
                return new Undefined(ks2); // Jinja: a missing attribute or item is undefined, not an error
            case List<object?> l:
                {
                    long i = ToLong(key, pos);
                    if (i < 0) i += l.Count;
                    return i >= 0 && i < l.Count ? l[(int)i] : new Undefined("item");
                }
            case string s:
                {
                    long i = ToLong(key, pos);
                    if (i < 0) i += s.Length;
                    return i >= 0 && i < s.Length ? s[(int)i].ToString() : new Undefined("item");
                }
            case Undefined u: throw Error(pos, $"'{u.Name}' is undefined, so it cannot be indexed");
        }
        throw Error(pos, $"{TypeName(target)} cannot be indexed");
    }

    object? DoSlice(object? target, long? start, long? stop, long? step, int pos)
    {
        int n = target switch { List<object?> l => l.Count, string s => s.Length, _ => throw Error(pos, $"{TypeName(target)} cannot be sliced") };
        long st = step ?? 1;
        if (st == 0) throw Error(pos, "slice step must not be zero");
        long Norm(long? x, long dflt, long lo, long hi)
        {
            if (x is null) return dflt;
            long v = x.Value < 0 ? x.Value + n : x.Value;
            return Math.Clamp(v, lo, hi);
        }
        var idx = new List<int>();
        if (st > 0) { long a = Norm(start, 0, 0, n), b = Norm(stop, n, 0, n); for (long i = a; i < b; i += st) idx.Add((int)i); }
        else { long a = Norm(start, n - 1, -1, n - 1), b = Norm(stop, -1, -1, n - 1); for (long i = a; i > b; i += st) idx.Add((int)i); }
        return target is string str ? new string(idx.Select(i => str[i]).ToArray()) : idx.Select(i => ((List<object?>)target!)[i]).ToList();
    }

    object? BinaryOp(string op, object? l, object? r, int pos)
    {
        switch (op)
        {
            case "==": return ValueEquals(l, r);
            case "!=": return !ValueEquals(l, r);
            case "<" or ">" or "<=" or ">=":
                {
                    int c = l is string ls && r is string rs ? string.CompareOrdinal(ls, rs)
                        : IsNumber(l) && IsNumber(r) ? ToDouble(l).CompareTo(ToDouble(r))
                        : throw Error(pos, $"cannot compare {TypeName(l)} with {TypeName(r)}");
                    return op switch { "<" => c < 0, ">" => c > 0, "<=" => c <= 0, _ => c >= 0 };
                }
            case "in": return Contains(r, l, pos);
            case "not in": return !Contains(r, l, pos);
            case "~": return Str(l, pos) + Str(r, pos);
            default: return Arith(op, l, r, pos);
        }
    }

    object? Arith(string op, object? l, object? r, int pos)
    {
        if (op == "+" && l is string ls && r is string rs) return ls + rs;
        if (op == "+" && l is List<object?> ll && r is List<object?> rl) return ll.Concat(rl).ToList();
        if (op == "*" && l is string sm && r is long times) return string.Concat(Enumerable.Repeat(sm, (int)Math.Max(0, times)));
        if (!IsNumber(l) || !IsNumber(r))
            throw Error(pos, $"cannot apply '{op}' to {TypeName(l)} and {TypeName(r)}");
        if (l is not double && r is not double)
        {
            long a = ToLong(l, pos), b = ToLong(r, pos);
            switch (op)
            {
                case "+": return a + b;
                case "-": return a - b;
                case "*": return a * b;
                case "/": if (b == 0) throw Error(pos, "division by zero"); return (double)a / b;
                case "//": if (b == 0) throw Error(pos, "division by zero"); return (long)Math.Floor((double)a / b);
                case "%": if (b == 0) throw Error(pos, "modulo by zero"); return ((a % b) + b) % b; // Python's sign rule
            }
        }
        double x = ToDouble(l), y = ToDouble(r);
        return op switch
        {
            "+" => x + y, "-" => x - y, "*" => x * y, "/" => x / y, "//" => Math.Floor(x / y),
            "%" => x - y * Math.Floor(x / y),
            _ => throw Error(pos, $"unsupported operator '{op}'"),
        };
    }

    bool Contains(object? container, object? item, int pos) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal) : throw Error(pos, $"'in <string>' needs a string, not {TypeName(item)}"),
        List<object?> l => l.Any(x => ValueEquals(x, item)),
        Dictionary<string, object?> d => item is string k && d.ContainsKey(k),
        Undefined u => throw Error(pos, $"'{u.Name}' is undefined, so 'in' cannot look inside it"),
        _ => throw Error(pos, $"'in' cannot look inside {TypeName(container)}"),
    };

    bool RunTest(string name, object? v, List<object?> args, int pos)
    {
        switch (name)
        {
            case "defined": return v is not Undefined;
            case "undefined": return v is Undefined;
            case "none": return v is null;
            case "string": return v is string;
            case "mapping": return v is Dictionary<string, object?>;
            case "iterable": return v is string or List<object?> or Dictionary<string, object?>;
            case "sequence": return v is string or List<object?> or Dictionary<string, object?>;
            case "number": return IsNumber(v);
            case "integer": return v is long;
            case "float": return v is double;
            case "boolean": return v is bool;
            case "true": return v is true;
            case "false": return v is false;
            case "odd": return ToLong(v, pos) % 2 != 0;
            case "even": return ToLong(v, pos) % 2 == 0;
            case "equalto" or "eq" or "==": return args.Count == 1 ? ValueEquals(v, args[0]) : throw Error(pos, $"test '{name}' takes one argument");
            case "ne" or "!=": return args.Count == 1 ? !ValueEquals(v, args[0]) : throw Error(pos, $"test '{name}' takes one argument");
            case "sameas": return args.Count == 1 && (v is null && args[0] is null || v is bool b && args[0] is bool c && b == c || ReferenceEquals(v, args[0]));
            case "in": return args.Count == 1 ? Contains(args[0], v, pos) : throw Error(pos, "test 'in' takes one argument");
        }
        throw Error(pos, $"unknown test '{name}'");
    }

    object? RunFilter(string name, object? v, List<object?> args, Dictionary<string, object?> kwargs, int pos)
    {
        switch (name)
        {
            case "trim": return args.Count > 0 && args[0] is string chars ? Str(v, pos).Trim(chars.ToCharArray()) : Str(v, pos).Trim();
            case "length" or "count":
                return v switch
                {
                    string s => (long)s.Length, List<object?> l => (long)l.Count, Dictionary<string, object?> d => (long)d.Count,
                    Undefined => 0L, _ => throw Error(pos, $"{TypeName(v)} has no length"),
                };
            case "upper": return Str(v, pos).ToUpperInvariant();
            case "lower": return Str(v, pos).ToLowerInvariant();
            case "capitalize": return Capitalize(Str(v, pos));
            case "title": return CultureInfo.InvariantCulture.TextInfo.ToTitleCase(Str(v, pos).ToLowerInvariant());
            case "string": return Str(v, pos);
            case "int": return v is string si ? (long.TryParse(si.Trim(), CultureInfo.InvariantCulture, out var li) ? li : 0L) : IsNumber(v) ? (long)ToDouble(v) : v is bool bi ? (bi ? 1L : 0L) : 0L;
            case "float": return v is string sf ? (double.TryParse(sf.Trim(), CultureInfo.InvariantCulture, out var df) ? df : 0.0) : IsNumber(v) ? ToDouble(v) : 0.0;
            case "abs": return v is long la ? Math.Abs(la) : Math.Abs(ToDouble(v));
            case "tojson":
                {
                    int? indent = kwargs.TryGetValue("indent", out var ind) && ind is not null ? (int)ToLong(ind, pos) : args.Count > 0 && args[0] is not null ? (int)ToLong(args[0], pos) : null;
                    var sb = new StringBuilder();
                    ToJson(v, indent, 0, sb, pos);
                    return sb.ToString();
                }
            case "default" or "d":
                {
                    bool boolean = args.Count > 1 && Truthy(args[1]) || kwargs.TryGetValue("boolean", out var bo) && Truthy(bo);
                    object? dflt = args.Count > 0 ? args[0] : kwargs.GetValueOrDefault("default_value", "");
                    return v is Undefined || (boolean && !Truthy(v)) ? dflt : v;
                }
            case "first": { var l = Iterate(v, pos).ToList(); return l.Count > 0 ? l[0] : new Undefined("first"); }
            case "last": { var l = Iterate(v, pos).ToList(); return l.Count > 0 ? l[^1] : new Undefined("last"); }
            case "list": return Iterate(v, pos).ToList();
            case "join":
                {
                    string sep = args.Count > 0 ? Str(args[0], pos) : kwargs.TryGetValue("d", out var dj) ? Str(dj, pos) : "";
                    var items = Iterate(v, pos);
                    if (kwargs.TryGetValue("attribute", out var at)) items = items.Select(x => GetAttr(x, Str(at, pos), pos));
                    return string.Join(sep, items.Select(x => Str(x, pos)));
                }
            case "replace": return Str(v, pos).Replace(Str(args[0], pos), Str(args[1], pos), StringComparison.Ordinal);
            case "items":
                return v is Dictionary<string, object?> di ? di.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList()
                     : v is Undefined ? new List<object?>() : throw Error(pos, $"'items' needs a mapping, not {TypeName(v)}");
            case "selectattr" or "rejectattr":
                {
                    if (args.Count == 0) throw Error(pos, $"'{name}' needs an attribute name");
                    string attr = Str(args[0], pos);
                    string test = args.Count > 1 ? Str(args[1], pos) : "";
                    bool keep = name == "selectattr";
                    return Iterate(v, pos).Where(x =>
                    {
                        object? a = x is Dictionary<string, object?> d && d.TryGetValue(attr, out var av) ? av : new Undefined(attr);
                        bool r = test.Length == 0 ? Truthy(a) : RunTest(test, a, args.Skip(2).ToList(), pos);
                        return r == keep;
                    }).ToList();
                }
            case "select" or "reject":
                {
                    bool keep = name == "select";
                    return Iterate(v, pos).Where(x => (args.Count == 0 ? Truthy(x) : RunTest(Str(args[0], pos), x, args.Skip(1).ToList(), pos)) == keep).ToList();
                }
            case "map":
                {
                    if (kwargs.TryGetValue("attribute", out var ma))
                        return Iterate(v, pos).Select(x => x is Dictionary<string, object?> d && d.TryGetValue(Str(ma, pos), out var mv) ? mv : kwargs.GetValueOrDefault("default")).ToList();
                    if (args.Count > 0) return Iterate(v, pos).Select(x => RunFilter(Str(args[0], pos), x, args.Skip(1).ToList(), [], pos)).ToList();
                    throw Error(pos, "'map' needs a filter name or attribute=");
                }
            case "unique": { var r = new List<object?>(); foreach (var x in Iterate(v, pos)) if (!r.Any(y => ValueEquals(x, y))) r.Add(x); return r; }
            case "reverse": return v is string rs ? new string(rs.Reverse().ToArray()) : Iterate(v, pos).Reverse().ToList();
        }
        throw Error(pos, $"unknown filter '{name}'");
    }

    IEnumerable<object?> Iterate(object? v, int pos) => v switch
    {
        List<object?> l => l,
        Dictionary<string, object?> d => d.Keys.Select(k => (object?)k),
        string s => s.Select(c => (object?)c.ToString()),
        Undefined => [],
        _ => throw Error(pos, $"{TypeName(v)} is not iterable"),
    };

    // ---------------------------------------------------------------- values as Python and Jinja see them

    static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        Dictionary<string, object?> d => d.Count > 0,
        _ => true,
    };

    static bool IsNumber(object? v) => v is long or double;
    static double ToDouble(object? v) => v is long l ? l : (double)v!;
    long ToLong(object? v, int pos) => v switch
    {
        long l => l, bool b => b ? 1 : 0, double d when d == Math.Floor(d) => (long)d,
        _ => throw Error(pos, $"expected an integer, found {TypeName(v)}"),
    };

    static bool ValueEquals(object? a, object? b)
    {
        if (a is Undefined || b is Undefined) return a is Undefined && b is Undefined;
        if (a is null || b is null) return a is null && b is null;
        if (IsNumber(a) && IsNumber(b)) return ToDouble(a) == ToDouble(b);
        if (a is List<object?> la && b is List<object?> lb) return la.Count == lb.Count && la.Zip(lb).All(p => ValueEquals(p.First, p.Second));
        if (a is Dictionary<string, object?> da && b is Dictionary<string, object?> db)
            return da.Count == db.Count && da.All(kv => db.TryGetValue(kv.Key, out var x) && ValueEquals(kv.Value, x));
        return a.Equals(b);
    }

    static string TypeName(object? v) => v switch
    {
        null => "none", Undefined u => $"undefined '{u.Name}'", bool => "a boolean", long => "an integer", double => "a float",
        string => "a string", List<object?> => "a list", Namespace => "a namespace", Dictionary<string, object?> => "a mapping", _ => v.GetType().Name,
    };

    static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    /// <summary>A value as Jinja prints it: Python's str() (True, None, ['a', 1]); undefined prints as nothing.</summary>
    string Str(object? v, int pos) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v, top: true),
    };

    static string Repr(object? v, bool top = false) => v switch
    {
        null => "None",
        Undefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FormatFloat(d),
        string s => top ? s : "'" + s.Replace("\\", "\\\\").Replace("'", "\\'").Replace("\n", "\\n") + "'",
        List<object?> l => "[" + string.Join(", ", l.Select(x => Repr(x))) + "]",
        Dictionary<string, object?> d => "{" + string.Join(", ", d.Select(kv => Repr(kv.Key) + ": " + Repr(kv.Value))) + "}",
        _ => v.ToString() ?? "",
    };

    static string FormatFloat(double d)
    {
        if (double.IsNaN(d)) return "NaN";
        if (double.IsInfinity(d)) return d > 0 ? "Infinity" : "-Infinity";
        string s = d.ToString("R", CultureInfo.InvariantCulture);
        return s.Contains('.') || s.Contains('E') ? s.Replace("E+", "e+").Replace("E-", "e-") : s + ".0";
    }

    /// <summary>JSON as HF's tojson writes it: json.dumps(ensure_ascii=False), ", " and ": " separators, or "," and
    /// ": " with newlines when indented; keys in insertion order.</summary>
    void ToJson(object? v, int? indent, int level, StringBuilder sb, int pos)
    {
        switch (v)
        {
            case null or Undefined: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(FormatFloat(d)); break;
            case string s: JsonString(s, sb); break;
            case List<object?> list:
                if (list.Count == 0) { sb.Append("[]"); break; }
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(indent is null ? ", " : ",");
                    NewLine(indent, level + 1, sb);
                    ToJson(list[i], indent, level + 1, sb, pos);
                }
                NewLine(indent, level, sb);
                sb.Append(']');
                break;
            case Dictionary<string, object?> dict:
                if (dict.Count == 0) { sb.Append("{}"); break; }
                sb.Append('{');
                int k = 0;
                foreach (var (key, x) in dict)
                {
                    if (k++ > 0) sb.Append(indent is null ? ", " : ",");
                    NewLine(indent, level + 1, sb);
                    JsonString(key, sb);
                    sb.Append(": ");
                    ToJson(x, indent, level + 1, sb, pos);
                }
                NewLine(indent, level, sb);
                sb.Append('}');
                break;
            default: throw Error(pos, $"{TypeName(v)} cannot be written as JSON");
        }
    }

    static void NewLine(int? indent, int level, StringBuilder sb)
    {
        if (indent is null) return;
        sb.Append('\n').Append(' ', indent.Value * level);
    }

    static void JsonString(string s, StringBuilder sb)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }

    /// <summary>Python's strftime for the directives chat templates use (%d %b %B %Y %y %m %H %M %S %a %A %p %%).</summary>
    string Strftime(DateTime t, string format, int pos)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length) { sb.Append(format[i]); continue; }
            char c = format[++i];
            sb.Append(c switch
            {
                'd' => t.ToString("dd", inv), 'b' => t.ToString("MMM", inv), 'B' => t.ToString("MMMM", inv),
                'Y' => t.ToString("yyyy", inv), 'y' => t.ToString("yy", inv), 'm' => t.ToString("MM", inv),
                'H' => t.ToString("HH", inv), 'M' => t.ToString("mm", inv), 'S' => t.ToString("ss", inv),
                'a' => t.ToString("ddd", inv), 'A' => t.ToString("dddd", inv), 'p' => t.ToString("tt", inv), 'j' => t.DayOfYear.ToString("000", inv),
                '%' => "%",
                _ => throw Error(pos, $"strftime directive '%{c}' is not supported"),
            });
        }
        return sb.ToString();
    }

    /// <summary>An error naming the template and the 1-based line:column of <paramref name="pos"/>.</summary>
    TemplateException Error(int pos, string message)
    {
        pos = Math.Clamp(pos, 0, _source.Length);
        int line = 1, col = 1;
        for (int i = 0; i < pos; i++) { if (_source[i] == '\n') { line++; col = 1; } else col++; }
        return new TemplateException($"chat template '{_name}' at {line}:{col}: {message}");
    }
}
