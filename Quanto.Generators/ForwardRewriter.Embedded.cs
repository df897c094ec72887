using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Quanto.Generators;

/// <summary>
/// Embedded statements without braces (<c>for (...) y = y + heads[i].forward(h);</c>): when hoisting gives the
/// statement steps, it becomes a block holding the steps and the statement, so the steps still run once per
/// iteration (or only in their branch).
/// </summary>
internal sealed partial class ForwardRewriter
{
    private SyntaxNode? _skip;

    public override SyntaxNode? Visit(SyntaxNode? node) => node is not null && node == _skip ? node : base.Visit(node);

    public override SyntaxNode? VisitForStatement(ForStatementSyntax node) =>
        WithBody(node, node.Statement, n => base.VisitForStatement(n), (v, s) => ((ForStatementSyntax)v).WithStatement(s));

    public override SyntaxNode? VisitForEachStatement(ForEachStatementSyntax node) =>
        WithBody(node, node.Statement, n => base.VisitForEachStatement(n),
            (v, s) => ((ForEachStatementSyntax)v).WithStatement(s));

    public override SyntaxNode? VisitWhileStatement(WhileStatementSyntax node) =>
        WithBody(node, node.Statement, n => base.VisitWhileStatement(n), (v, s) => ((WhileStatementSyntax)v).WithStatement(s));

    public override SyntaxNode? VisitIfStatement(IfStatementSyntax node) =>
        WithBody(node, node.Statement, n => base.VisitIfStatement(n), (v, s) => ((IfStatementSyntax)v).WithStatement(s));

    public override SyntaxNode? VisitElseClause(ElseClauseSyntax node) =>
        node.Statement is IfStatementSyntax
            ? base.VisitElseClause(node)
            : WithBody(node, node.Statement, n => base.VisitElseClause(n), (v, s) => ((ElseClauseSyntax)v).WithStatement(s));

    /// <summary>Visits <paramref name="node"/> with its embedded <paramref name="body"/> rewritten once, as a block
    /// when hoisting produced steps.</summary>
    private SyntaxNode? WithBody<T>(T node, StatementSyntax body, System.Func<T, SyntaxNode?> visitRest,
        System.Func<SyntaxNode, StatementSyntax, SyntaxNode> replace)
        where T : SyntaxNode
    {
        if (body is BlockSyntax || !IsHoistable(body)) return visitRest(node);
        List<string>? outer = _hoisted;
        _hoisted = [];
        var rewritten = (StatementSyntax)Visit(body)!;
        List<string> steps = _hoisted;
        _hoisted = outer;

        SyntaxNode? previousSkip = _skip;
        _skip = body;
        SyntaxNode visited = visitRest(node)!;
        _skip = previousSkip;
        if (steps.Count == 0) return replace(visited, rewritten);

        string indent = Indentation(node.AncestorsAndSelf().OfType<StatementSyntax>().First());
        string inner = indent + "    ";
        var lines = steps.SelectMany(s => s.Split('\n')).Append(rewritten.WithoutTrivia().ToFullString())
            .Select(l => inner + l);
        string text = "{\n" + string.Join("\n", lines) + "\n" + indent + "}";
        StatementSyntax block = SyntaxFactory.ParseStatement(text)
            .WithLeadingTrivia(SyntaxFactory.EndOfLine("\n"), SyntaxFactory.Whitespace(indent))
            .WithTrailingTrivia(body.GetTrailingTrivia());
        return replace(visited, block);
    }
}
