using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Quanto.Generators;

/// <summary>
/// Reads every member of a [Quantize] class to decide what is rewritten: each <c>forward</c> method (an entry; it
/// becomes a public <c>ForwardQuantized</c> overload) and every instance helper method of the class that an entry
/// calls, directly or through other helpers, and that uses a quantized layer or a nested [Quantize] model (it
/// becomes a private <c>NameQuantized</c>). Uses of quantized layers anywhere else (other methods, properties; not
/// constructors, which build the layers) are reported (QNT007): they stay float. Uses that do not run the layer are
/// not reported: <c>nameof</c>, a ModuleList's <c>Count</c>, null tests, and reading or assigning the layer's
/// parameters (weight tying: <c>head.weight = shared</c>), directly or through a type test (<c>lm_head is Linear
/// head</c>, <c>lm_head as Linear</c>) whose result is used for nothing else.
/// </summary>
internal sealed class ClassWalker
{
    private readonly INamedTypeSymbol _type;
    private readonly Compilation _compilation;
    private readonly HashSet<string> _layerFields;

    public ClassWalker(INamedTypeSymbol type, Compilation compilation, IEnumerable<LayerModel> layers)
    {
        _type = type;
        _compilation = compilation;
        _layerFields = new HashSet<string>(layers.Where(l => !l.IsModel).Select(l => l.FieldName));
    }

    /// <summary>The methods to rewrite, entries first, each with its new name.</summary>
    public IReadOnlyList<(MethodDeclarationSyntax Syntax, IMethodSymbol Symbol, string NewName, bool IsEntry)> Rewritten
    { get; private set; } = [];

    /// <summary>Finds the methods to rewrite (see the class summary).</summary>
    public void Walk(CancellationToken cancellation)
    {
        var methods = _type.GetMembers().OfType<IMethodSymbol>()
            .Where(m => !m.IsStatic && m.MethodKind == MethodKind.Ordinary)
            .SelectMany(m => m.DeclaringSyntaxReferences.Select(r => (Symbol: m, Syntax: r.GetSyntax(cancellation))))
            .Where(p => p.Syntax is MethodDeclarationSyntax { Body: not null } or MethodDeclarationSyntax
            {
                ExpressionBody: not null,
            })
            .ToDictionary<(IMethodSymbol Symbol, SyntaxNode Syntax), IMethodSymbol, MethodDeclarationSyntax>(
                p => p.Symbol, p => (MethodDeclarationSyntax)p.Syntax, SymbolEqualityComparer.Default);

        List<IMethodSymbol> entries = methods.Keys.Where(m => m.Name == "forward").ToList();
        var calls = methods.ToDictionary<KeyValuePair<IMethodSymbol, MethodDeclarationSyntax>, IMethodSymbol,
            List<IMethodSymbol>>(p => p.Key, p => Callees(p.Value, methods), SymbolEqualityComparer.Default);

        var reachable = new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default);
        var pending = new Stack<IMethodSymbol>(entries);
        while (pending.Count > 0)
        {
            IMethodSymbol method = pending.Pop();
            if (!reachable.Add(method)) continue;
            foreach (IMethodSymbol callee in calls[method]) pending.Push(callee);
        }

        // A helper is rewritten when it uses a layer or a nested model, itself or through the helpers it calls.
        var uses = new HashSet<IMethodSymbol>(reachable.Where(m => UsesLayers(methods[m])),
            SymbolEqualityComparer.Default);
        for (bool changed = true; changed;)
        {
            changed = false;
            foreach (IMethodSymbol method in reachable)
            {
                if (!uses.Contains(method) && calls[method].Any(uses.Contains)) changed = uses.Add(method) || changed;
            }
        }

        var taken = new HashSet<string>(_type.GetMembers().Select(m => m.Name));
        var rewritten = new List<(MethodDeclarationSyntax, IMethodSymbol, string, bool)>();
        foreach (IMethodSymbol entry in entries) rewritten.Add((methods[entry], entry, "ForwardQuantized", true));
        var names = new Dictionary<string, string>();
        foreach (IMethodSymbol helper in reachable.Where(m => m.Name != "forward" && uses.Contains(m))
                     .OrderBy(m => methods[m].SpanStart))
        {
            // Overloads of one helper share one new name; a name already taken gets a number.
            if (!names.TryGetValue(helper.Name, out string? name))
            {
                name = helper.Name + "Quantized";
                for (int n = 2; taken.Contains(name); n++) name = helper.Name + "Quantized" + n;
                names[helper.Name] = name;
                taken.Add(name);
            }
            rewritten.Add((methods[helper], helper, name, false));
        }
        Rewritten = rewritten;
    }

    /// <summary>Uses of quantized layers outside the rewritten methods, the constructors and Dispose, with where
    /// they are.</summary>
    public IEnumerable<(IdentifierNameSyntax Use, string Member)> OutsideUses(CancellationToken cancellation)
    {
        var rewritten = new HashSet<SyntaxNode>(Rewritten.Select(r => (SyntaxNode)r.Syntax));
        foreach (SyntaxReference reference in _type.DeclaringSyntaxReferences)
        {
            var declaration = (TypeDeclarationSyntax)reference.GetSyntax(cancellation);
            SemanticModel model = _compilation.GetSemanticModel(declaration.SyntaxTree);
            foreach (MemberDeclarationSyntax member in declaration.Members)
            {
                // Constructors build the layers and Dispose releases them: neither is a float use.
                if (member is ConstructorDeclarationSyntax or DestructorDeclarationSyntax or FieldDeclarationSyntax
                        or BaseTypeDeclarationSyntax or MethodDeclarationSyntax { Identifier.ValueText: "Dispose" } ||
                    rewritten.Contains(member))
                {
                    continue;
                }
                foreach (IdentifierNameSyntax name in member.DescendantNodes().OfType<IdentifierNameSyntax>())
                {
                    if (_layerFields.Contains(name.Identifier.ValueText) && IsOwnField(model, name) && !InNameof(name) &&
                        !IsCount(name) && !LeavesLayerIdle(model, name, member))
                    {
                        yield return (name, MemberName(member));
                    }
                }
            }
        }
    }

    /// <summary>Every <c>layer.forward(x)</c> / <c>layer.call(x)</c> on a quantized layer field (or an item of a list
    /// of them) in the class's own code, as an interceptable location.</summary>
    public IEnumerable<InterceptModel> FloatCalls(CancellationToken cancellation)
    {
        foreach (SyntaxReference reference in _type.DeclaringSyntaxReferences)
        {
            var declaration = (TypeDeclarationSyntax)reference.GetSyntax(cancellation);
            SemanticModel model = _compilation.GetSemanticModel(declaration.SyntaxTree);
            foreach (InvocationExpressionSyntax call in declaration.DescendantNodes().OfType<InvocationExpressionSyntax>())
            {
                if (call is not
                    {
                        Expression: MemberAccessExpressionSyntax { Name.Identifier.ValueText: "forward" or "call" } access,
                        ArgumentList.Arguments.Count: 1,
                    })
                {
                    continue;
                }
                ExpressionSyntax receiver = access.Expression is ElementAccessExpressionSyntax element
                    ? element.Expression
                    : access.Expression;
                SimpleNameSyntax? name = receiver switch
                {
                    IdentifierNameSyntax id => id,
                    MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax } member => member.Name,
                    _ => null,
                };
                if (name is null || !_layerFields.Contains(name.Identifier.ValueText) || !IsOwnField(model, name)) continue;
                // The float layer's forward override (Linear.forward) or Module<Tensor, Tensor>.call: Tensor -> Tensor.
                if (model.GetSymbolInfo(call, cancellation).Symbol is not IMethodSymbol { Parameters.Length: 1 } method ||
                    method.Parameters[0].Type.ToDisplayString() != "TorchSharp.torch.Tensor" ||
                    method.ReturnType.ToDisplayString() != "TorchSharp.torch.Tensor")
                {
                    continue;
                }
#pragma warning disable RSEXPERIMENTAL002 // interceptable locations: the supported way to generate interceptors
                if (model.GetInterceptableLocation(call, cancellation) is not { } location) continue;
                yield return new InterceptModel(access.Name.Identifier.ValueText, location.Version, location.Data,
                    location.GetDisplayLocation(), method.Parameters[0].Name,
                    method.ContainingType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat));
#pragma warning restore RSEXPERIMENTAL002
            }
        }
    }

    private List<IMethodSymbol> Callees(MethodDeclarationSyntax method,
        Dictionary<IMethodSymbol, MethodDeclarationSyntax> methods)
    {
        SemanticModel model = _compilation.GetSemanticModel(method.SyntaxTree);
        var callees = new List<IMethodSymbol>();
        foreach (InvocationExpressionSyntax call in method.DescendantNodes().OfType<InvocationExpressionSyntax>())
        {
            if (model.GetSymbolInfo(call).Symbol is IMethodSymbol target &&
                methods.ContainsKey(target.OriginalDefinition))
            {
                callees.Add(target.OriginalDefinition);
            }
        }
        return callees;
    }

    /// <summary>True when the method mentions a quantized layer field or calls forward on a [Quantize] model.</summary>
    private bool UsesLayers(MethodDeclarationSyntax method)
    {
        SemanticModel model = _compilation.GetSemanticModel(method.SyntaxTree);
        foreach (SyntaxNode node in method.DescendantNodes())
        {
            if (node is IdentifierNameSyntax name && _layerFields.Contains(name.Identifier.ValueText) &&
                IsOwnField(model, name))
            {
                return true;
            }
            if (node is InvocationExpressionSyntax
                {
                    Expression: MemberAccessExpressionSyntax { Name.Identifier.ValueText: "forward" or "call" } access,
                } && LayerParser.IsAnnotated(model.GetTypeInfo(access.Expression).Type))
            {
                return true;
            }
        }
        return false;
    }

    private bool IsOwnField(SemanticModel model, SimpleNameSyntax name) =>
        model.GetSymbolInfo(name).Symbol is IFieldSymbol field &&
        SymbolEqualityComparer.Default.Equals(field.ContainingType, _type);

    private static bool InNameof(SyntaxNode node) => node.Ancestors().OfType<InvocationExpressionSyntax>()
        .Any(i => i.Expression is IdentifierNameSyntax { Identifier.ValueText: "nameof" });

    /// <summary>Reading a ModuleList's Count is harmless: the slots have the same length.</summary>
    private static bool IsCount(IdentifierNameSyntax node) =>
        node.Parent is MemberAccessExpressionSyntax { Name.Identifier.ValueText: "Count" } access && access.Expression == node;

    /// <summary>True when the layer that <paramref name="use"/> names is only tested, compared with null, or has
    /// its parameters read or assigned (not called, not handed to other code).</summary>
    private static bool LeavesLayerIdle(SemanticModel model, ExpressionSyntax use, SyntaxNode member)
    {
        if (use.Parent is MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax } self && self.Name == use)
            use = self;
        switch (Outermost(use).Parent)
        {
            case MemberAccessExpressionSyntax access when access.Expression == Outermost(use):
                return IsParameter(model, access.Name);
            case ConditionalAccessExpressionSyntax { WhenNotNull: MemberBindingExpressionSyntax binding } access
                when access.Expression == Outermost(use):
                return IsParameter(model, binding.Name);
            case BinaryExpressionSyntax { RawKind: (int)SyntaxKind.IsExpression }:
            case BinaryExpressionSyntax { RawKind: (int)SyntaxKind.EqualsExpression or (int)SyntaxKind.NotEqualsExpression }
                binary when binary.Left.IsKind(SyntaxKind.NullLiteralExpression) ||
                            binary.Right.IsKind(SyntaxKind.NullLiteralExpression):
                return true;
            case BinaryExpressionSyntax { RawKind: (int)SyntaxKind.AsExpression } cast when cast.Left == Outermost(use):
                // lm_head as Linear: idle when the result is itself only tested or has its parameters touched.
                return cast.Parent is EqualsValueClauseSyntax { Parent: VariableDeclaratorSyntax variable }
                    ? LocalIdle(model, variable, member)
                    : LeavesLayerIdle(model, cast, member);
            case IsPatternExpressionSyntax pattern when pattern.Expression == Outermost(use):
                return pattern.Pattern.DescendantNodesAndSelf().OfType<SingleVariableDesignationSyntax>()
                    .Where(d => model.GetDeclaredSymbol(d) is ILocalSymbol local && FieldClassifier.IsModule(local.Type))
                    .All(d => LocalIdle(model, d, member));
            default:
                return false;
        }
    }

    /// <summary>True when every use of the local declared by <paramref name="declaration"/> leaves the layer idle.
    /// </summary>
    private static bool LocalIdle(SemanticModel model, SyntaxNode declaration, SyntaxNode member)
    {
        if (model.GetDeclaredSymbol(declaration) is not ILocalSymbol local) return false;
        return member.DescendantNodes().OfType<IdentifierNameSyntax>()
            .Where(n => n.Identifier.ValueText == local.Name &&
                        SymbolEqualityComparer.Default.Equals(model.GetSymbolInfo(n).Symbol, local))
            .All(n => LeavesLayerIdle(model, n, member));
    }

    /// <summary>True when <paramref name="name"/> is a weight or bias: a member of TorchSharp's Parameter type.
    /// </summary>
    private static bool IsParameter(SemanticModel model, SimpleNameSyntax name)
    {
        ITypeSymbol? type = model.GetSymbolInfo(name).Symbol switch
        {
            IPropertySymbol p => p.Type,
            IFieldSymbol f => f.Type,
            _ => null,
        };
        return type?.ToDisplayString().TrimEnd('?') == "TorchSharp.Modules.Parameter";
    }

    /// <summary>The expression and the parentheses around it.</summary>
    private static ExpressionSyntax Outermost(ExpressionSyntax node)
    {
        while (node.Parent is ParenthesizedExpressionSyntax p) node = p;
        return node;
    }

    private static string MemberName(MemberDeclarationSyntax member) => member switch
    {
        MethodDeclarationSyntax m => m.Identifier.ValueText,
        PropertyDeclarationSyntax p => p.Identifier.ValueText,
        IndexerDeclarationSyntax => "this[]",
        OperatorDeclarationSyntax o => "operator " + o.OperatorToken.ValueText,
        EventDeclarationSyntax e => e.Identifier.ValueText,
        _ => member.Kind().ToString(),
    };
}
