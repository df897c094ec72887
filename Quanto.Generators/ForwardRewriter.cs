using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Quanto.Generators;

/// <summary>
/// Rewrites the body of forward into the body of ForwardQuantized:
/// <list type="bullet">
/// <item><c>fc1.forward(e)</c> / <c>fc1.call(e)</c> on a quantized layer field (or <c>layers[i].forward(e)</c> on a
/// ModuleList of them) becomes three named steps on the twin: quant stub (<c>InputStub</c>), the quantized op with
/// that layer's weight (<c>Compute</c>), dequant stub (<c>OutputStub</c>). In a plain statement they are hoisted into
/// locals just before it (see ForwardRewriter.Hoisting.cs); where that could change evaluation (lambdas, branches of
/// ?:, &amp;&amp;, ||, ??) they nest in place: <c>_fc1Quantized.OutputStub(_fc1Quantized.Compute(_fc1Quantized.InputStub(e)))</c>;</item>
/// <item><c>block.forward(e)</c> on any expression typed as a [Quantize] class becomes
/// <c>block.ForwardQuantized(e)</c>;</item>
/// <item>any other mention of a quantized layer field is reported (QNT007) and left as written, so it stays float;
/// </item>
/// <item>in a forward, <c>if (IsQuantized) return ForwardQuantized(...);</c> (the model sending its callers to the
/// quantized path once quantized) is left out: in ForwardQuantized it would call itself.</item>
/// </list>
/// Everything else is kept token for token, comments and layout included.
/// </summary>
internal sealed partial class ForwardRewriter : CSharpSyntaxRewriter
{
    private readonly SemanticModel _model;
    private readonly INamedTypeSymbol _type;
    private readonly Dictionary<string, LayerModel> _layers;
    private readonly List<DiagnosticInfo> _diagnostics;
    private readonly Dictionary<IMethodSymbol, string> _renames;
    private readonly string _member;

    /// <param name="model">The semantic model of the method's tree.</param>
    /// <param name="type">The [Quantize] class.</param>
    /// <param name="layers">Its quantized layers and nested models.</param>
    /// <param name="renames">The class's rewritten methods and their new names (calls to them are renamed).</param>
    /// <param name="member">The method rewritten, for diagnostics ("forward", "Attention").</param>
    /// <param name="diagnostics">Receives QNT007 for uses that cannot be followed.</param>
    public ForwardRewriter(SemanticModel model, INamedTypeSymbol type, IEnumerable<LayerModel> layers,
        Dictionary<IMethodSymbol, string> renames, string member, List<DiagnosticInfo> diagnostics)
        : base(visitIntoStructuredTrivia: false)
    {
        _model = model;
        _type = type;
        _layers = layers.Where(l => !l.IsModel).ToDictionary(l => l.FieldName);
        _renames = renames;
        _member = member;
        _diagnostics = diagnostics;
    }

    /// <summary><c>if (IsQuantized) return ForwardQuantized(...);</c>, with or without braces or <c>this.</c>.
    /// </summary>
    private bool IsDispatch(StatementSyntax statement)
    {
        if (_member != "forward" || statement is not IfStatementSyntax node) return false;
        StatementSyntax body = node.Statement is BlockSyntax { Statements.Count: 1 } block
            ? block.Statements[0]
            : node.Statement;
        return node.Else is null && IsOwnName(node.Condition, "IsQuantized") &&
               body is ReturnStatementSyntax { Expression: InvocationExpressionSyntax call } &&
               IsOwnName(call.Expression, "ForwardQuantized");
    }

    private static bool IsOwnName(ExpressionSyntax expression, string name) => expression switch
    {
        IdentifierNameSyntax id => id.Identifier.ValueText == name,
        MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax } access => access.Name.Identifier.ValueText == name,
        _ => false,
    };

    public override SyntaxNode? VisitInvocationExpression(InvocationExpressionSyntax node)
    {
        if (_model.GetSymbolInfo(node).Symbol is IMethodSymbol target &&
            _renames.TryGetValue(target.OriginalDefinition, out string? renamed))
        {
            var visited = (InvocationExpressionSyntax)base.VisitInvocationExpression(node)!;
            return visited.WithExpression(Renamed(visited.Expression, renamed));
        }

        if (node.Expression is not MemberAccessExpressionSyntax
            {
                Name.Identifier.ValueText: "forward" or "call",
            } access)
        {
            return base.VisitInvocationExpression(node);
        }

        if (node.ArgumentList.Arguments.Count == 1)
        {
            if (LayerField(access.Expression) is LayerModel { IsList: false } layer)
                return Stubbed(node, layer, layer.WrapperName, node.ArgumentList.Arguments[0].Expression);

            if (access.Expression is ElementAccessExpressionSyntax element &&
                LayerField(element.Expression) is LayerModel { IsList: true } list)
            {
                var index = (BracketedArgumentListSyntax)Visit(element.ArgumentList)!;
                return Stubbed(node, list, list.WrapperName + index.WithoutTrivia().ToFullString(),
                    node.ArgumentList.Arguments[0].Expression);
            }
        }

        if (LayerParser.IsAnnotated(_model.GetTypeInfo(access.Expression).Type))
        {
            var receiver = (ExpressionSyntax)Visit(access.Expression)!;
            var arguments = (ArgumentListSyntax)Visit(node.ArgumentList)!;
            return node.WithExpression(access.WithExpression(receiver)
                    .WithName(SyntaxFactory.IdentifierName("ForwardQuantized").WithTriviaFrom(access.Name)))
                .WithArgumentList(arguments);
        }
        return base.VisitInvocationExpression(node);
    }

    public override SyntaxNode? VisitIdentifierName(IdentifierNameSyntax node)
    {
        if (_layers.TryGetValue(node.Identifier.ValueText, out LayerModel? layer) && !IsListCount(node, layer) &&
            IsOwnField(node))
        {
            _diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.UnfollowedUse.Id,
                LocationInfo.From(node.GetLocation()), new EquatableArray<string>([node.Identifier.ValueText, _member])));
        }
        return base.VisitIdentifierName(node);
    }

    /// <summary>The callee expression of a call to a rewritten helper, with the helper's new name.</summary>
    private static ExpressionSyntax Renamed(ExpressionSyntax callee, string name) => callee switch
    {
        IdentifierNameSyntax id => id.WithIdentifier(SyntaxFactory.Identifier(name).WithTriviaFrom(id.Identifier)),
        GenericNameSyntax generic => generic.WithIdentifier(SyntaxFactory.Identifier(name)
            .WithTriviaFrom(generic.Identifier)),
        MemberAccessExpressionSyntax access => access.WithName((SimpleNameSyntax)Renamed(access.Name, name)),
        _ => callee,
    };

    /// <summary>Reading a ModuleList's Count is harmless: the twins array has the same length.</summary>
    private static bool IsListCount(IdentifierNameSyntax node, LayerModel layer) =>
        layer.IsList && node.Parent is MemberAccessExpressionSyntax { Name.Identifier.ValueText: "Count" } access &&
        access.Expression == node;

    /// <summary>The three stubs of a layer call: hoisted into named locals when the statement allows, else
    /// <c>w.OutputStub(w.Compute(w.InputStub(input)))</c> in place, keeping the call's trivia.</summary>
    private SyntaxNode Stubbed(InvocationExpressionSyntax call, LayerModel layer, string wrapper, ExpressionSyntax input)
    {
        string argument = ((ExpressionSyntax)Visit(input)!).WithoutTrivia().ToFullString();
        if (_hoisted is not null) return Hoist(call, layer, wrapper, argument);
        ExpressionSyntax stubbed = SyntaxFactory.ParseExpression(
            $"{wrapper}.OutputStub({wrapper}.Compute({wrapper}.InputStub({argument})))");
        return stubbed.WithTriviaFrom(call);
    }

    /// <summary>The quantized layer a receiver names (<c>fc1</c> or <c>this.fc1</c>), if any.</summary>
    private LayerModel? LayerField(ExpressionSyntax receiver)
    {
        SimpleNameSyntax? name = receiver switch
        {
            IdentifierNameSyntax id => id,
            MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax } member => member.Name,
            _ => null,
        };
        return name is not null && _layers.TryGetValue(name.Identifier.ValueText, out LayerModel? layer) &&
               IsOwnField(name)
            ? layer
            : null;
    }

    private bool IsOwnField(SimpleNameSyntax name) =>
        _model.GetSymbolInfo(name).Symbol is IFieldSymbol field &&
        SymbolEqualityComparer.Default.Equals(field.ContainingType, _type);
}
