using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Quanto.Generators;

/// <summary>
/// Hoisting: in a statement of a block (expression statement, single local declaration, return), each quantized
/// layer call becomes three named locals declared just before the statement, in evaluation order:
/// <code>
/// // fc1: quant stub -> quantized linear -> dequant stub
/// var fc1Input = _fc1Quantized.InputStub(x);
/// var fc1Computed = _fc1Quantized.Compute(fc1Input);
/// var fc1Output = _fc1Quantized.OutputStub(fc1Computed);
/// </code>
/// and the call itself reads <c>fc1Output</c>. Code that may not run, or runs later (lambda bodies, branches of
/// ?:, the right of &amp;&amp;, || and ??, conditional access), is never hoisted.
/// </summary>
internal sealed partial class ForwardRewriter
{
    private List<string>? _hoisted;
    private HashSet<string>? _usedNames;

    /// <summary>The rewritten statements of an expression-bodied forward: hoisted steps, then <c>return e;</c>.</summary>
    public string RewriteExpressionBody(ExpressionSyntax expression)
    {
        _usedNames = Names(expression);
        _hoisted = [];
        string result = ((ExpressionSyntax)Visit(expression)!).ToFullString().Trim();
        var lines = _hoisted.SelectMany(h => h.Split('\n')).ToList();
        _hoisted = null;
        lines.Add($"return {result};");
        return string.Join("\n", lines);
    }

    public override SyntaxNode? VisitBlock(BlockSyntax node)
    {
        _usedNames ??= Names(node);
        List<string>? outer = _hoisted;
        var statements = new List<StatementSyntax>();
        foreach (StatementSyntax statement in node.Statements)
        {
            if (IsDispatch(statement)) continue;
            _hoisted = IsHoistable(statement) ? [] : null;
            var rewritten = (StatementSyntax)Visit(statement)!;
            if (_hoisted is { Count: > 0 })
            {
                string indent = Indentation(statement);
                SyntaxTriviaList leading = statement.GetLeadingTrivia();
                for (int i = 0; i < _hoisted.Count; i++)
                {
                    string text = string.Join("\n", _hoisted[i].Split('\n').Select(l => indent + l)) + "\n";
                    StatementSyntax step = SyntaxFactory.ParseStatement(text);
                    if (i == 0) step = step.WithLeadingTrivia(leading.AddRange(step.GetLeadingTrivia().SkipWhile(t =>
                        t.IsKind(SyntaxKind.WhitespaceTrivia))));
                    statements.Add(step);
                }
                rewritten = rewritten.WithLeadingTrivia(SyntaxFactory.Whitespace(indent));
            }
            statements.Add(rewritten);
        }
        _hoisted = outer;
        return node.WithStatements(SyntaxFactory.List(statements));
    }

    public override SyntaxNode? VisitSimpleLambdaExpression(SimpleLambdaExpressionSyntax node) =>
        InPlace(() => base.VisitSimpleLambdaExpression(node));

    public override SyntaxNode? VisitParenthesizedLambdaExpression(ParenthesizedLambdaExpressionSyntax node) =>
        InPlace(() => base.VisitParenthesizedLambdaExpression(node));

    public override SyntaxNode? VisitAnonymousMethodExpression(AnonymousMethodExpressionSyntax node) =>
        InPlace(() => base.VisitAnonymousMethodExpression(node));

    public override SyntaxNode? VisitConditionalAccessExpression(ConditionalAccessExpressionSyntax node) =>
        node.WithExpression((ExpressionSyntax)Visit(node.Expression)!)
            .WithWhenNotNull((ExpressionSyntax)InPlace(() => Visit(node.WhenNotNull))!);

    public override SyntaxNode? VisitSwitchExpression(SwitchExpressionSyntax node) =>
        node.WithGoverningExpression((ExpressionSyntax)Visit(node.GoverningExpression)!)
            .WithArms((SeparatedSyntaxList<SwitchExpressionArmSyntax>)InPlace(() => VisitList(node.Arms))!);

    public override SyntaxNode? VisitConditionalExpression(ConditionalExpressionSyntax node) =>
        node.WithCondition((ExpressionSyntax)Visit(node.Condition)!)
            .WithWhenTrue((ExpressionSyntax)InPlace(() => Visit(node.WhenTrue))!)
            .WithWhenFalse((ExpressionSyntax)InPlace(() => Visit(node.WhenFalse))!);

    public override SyntaxNode? VisitBinaryExpression(BinaryExpressionSyntax node) =>
        node.Kind() is SyntaxKind.LogicalAndExpression or SyntaxKind.LogicalOrExpression or SyntaxKind.CoalesceExpression
            ? node.WithLeft((ExpressionSyntax)Visit(node.Left)!).WithRight((ExpressionSyntax)InPlace(() => Visit(node.Right))!)
            : base.VisitBinaryExpression(node);

    /// <summary>Declares the three steps of a layer call and returns the name of its output.</summary>
    private SyntaxNode Hoist(InvocationExpressionSyntax call, LayerModel layer, string wrapper, string argument)
    {
        string name = Unique(layer.FieldName.TrimStart('_'));
        string op = layer.Kind!.Operation;
        _hoisted!.Add(
            $"// {((MemberAccessExpressionSyntax)call.Expression).Expression.WithoutTrivia()}: quant stub -> quantized {op} -> dequant stub\n" +
            $"var {name}Input = {wrapper}.InputStub({argument});\n" +
            $"var {name}Computed = {wrapper}.Compute({name}Input);\n" +
            $"var {name}Output = {wrapper}.OutputStub({name}Computed);");
        return SyntaxFactory.IdentifierName(name + "Output").WithTriviaFrom(call);
    }

    private T? InPlace<T>(Func<T?> visit)
    {
        List<string>? outer = _hoisted;
        _hoisted = null;
        try
        {
            return visit();
        }
        finally
        {
            _hoisted = outer;
        }
    }

    private static bool IsHoistable(StatementSyntax statement) => statement switch
    {
        ExpressionStatementSyntax or ReturnStatementSyntax => true,
        LocalDeclarationStatementSyntax local => local.Declaration.Variables.Count == 1,
        _ => false,
    };

    private string Unique(string name)
    {
        string candidate = name;
        for (int n = 2; new[] { "Input", "Computed", "Output" }.Any(s => _usedNames!.Contains(candidate + s)); n++)
            candidate = name + n;
        foreach (string suffix in new[] { "Input", "Computed", "Output" }) _usedNames!.Add(candidate + suffix);
        return candidate;
    }

    private static HashSet<string> Names(SyntaxNode node) => new(node.DescendantTokens()
        .Where(t => t.IsKind(SyntaxKind.IdentifierToken)).Select(t => t.ValueText));

    private static string Indentation(StatementSyntax statement) =>
        statement.GetLeadingTrivia().LastOrDefault(t => t.IsKind(SyntaxKind.WhitespaceTrivia)).ToFullString();
}
