using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Quanto.Generators;

/// <summary>Turns one [Quantize] class (symbols and syntax) into a <see cref="ClassModel"/> and diagnostics.</summary>
internal static class Parser
{
    /// <summary>Parses the class that ForAttributeWithMetadataName found.</summary>
    public static ParseResult Parse(GeneratorAttributeSyntaxContext context, CancellationToken cancellation)
    {
        var diagnostics = new List<DiagnosticInfo>();
        var type = (INamedTypeSymbol)context.TargetSymbol;
        var declaration = (ClassDeclarationSyntax)context.TargetNode;
        Location? at = declaration.Identifier.GetLocation();

        if (!DerivesFromModule(type))
            return Fail(diagnostics, DiagnosticDescriptors.NotModule, at, type.Name);
        if (!declaration.Modifiers.Any(SyntaxKind.PartialKeyword) || type.ContainingType is not null)
            return Fail(diagnostics, DiagnosticDescriptors.NotPartial, at, type.Name);
        MethodDeclarationSyntax? forward = FindForward(type, cancellation);
        if (forward is null)
            return Fail(diagnostics, DiagnosticDescriptors.NoForward, at, type.Name);

        QuantizeSettings settings = QuantizeSettings.Read(context.Attributes[0]);
        LayerParser.ValidateClass(type.Name, settings, diagnostics);
        Compilation compilation = context.SemanticModel.Compilation;
        LayerKindTable kinds = LayerKindTable.For(compilation);
        List<LayerModel> layers = LayerParser.Layers(type, settings, kinds, compilation, diagnostics);
        if (layers.Count == 0)
        {
            diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.NoLayers.Id, LocationInfo.From(at),
                new EquatableArray<string>([type.Name, string.Join(", ", kinds.Kinds.Select(k => k.FloatName))])));
        }
        var map = new List<MapEntry>();
        LayerParser.MapEntries(type, settings, kinds, compilation, "", map);

        var walker = new ClassWalker(type, compilation, layers);
        walker.Walk(cancellation);
        var renames = new Dictionary<IMethodSymbol, string>(SymbolEqualityComparer.Default);
        foreach (var rewritten in walker.Rewritten) renames[rewritten.Symbol] = rewritten.NewName;
        var methods = new List<MethodModel>();
        foreach (var (syntax, symbol, newName, isEntry) in walker.Rewritten)
        {
            SemanticModel model = compilation.GetSemanticModel(syntax.SyntaxTree);
            var rewriter = new ForwardRewriter(model, type, layers, renames, symbol.Name, diagnostics);
            string body = syntax.Body is BlockSyntax block
                ? BlockContents((BlockSyntax)rewriter.Visit(block)!)
                : rewriter.RewriteExpressionBody(syntax.ExpressionBody!.Expression);
            methods.Add(new MethodModel(symbol.Name, Signature(syntax, newName, isEntry), body, isEntry));
        }
        foreach (var (use, member) in walker.OutsideUses(cancellation))
        {
            diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.UnfollowedUse.Id, LocationInfo.From(use.GetLocation()),
                new EquatableArray<string>([use.Identifier.ValueText, $"'{member}' (ForwardQuantized does not run it)"])));
        }

        var trees = walker.Rewritten.Select(r => r.Syntax.SyntaxTree).Prepend(forward.SyntaxTree).Distinct().ToList();
        var usings = trees.SelectMany(t => ((CompilationUnitSyntax)t.GetRoot(cancellation)).Usings)
            .Select(u => u.ToString()).Distinct();
        string? ns = type.ContainingNamespace.IsGlobalNamespace ? null : type.ContainingNamespace.ToDisplayString();
        var namespaceUsings = forward.Ancestors().OfType<BaseNamespaceDeclarationSyntax>()
            .Reverse().SelectMany(n => n.Usings).Select(u => u.ToString());
        MethodDeclarationSyntax? dispose = FindDisposeOverride(type, cancellation);
        if (dispose is not null && !dispose.DescendantNodes().OfType<IdentifierNameSyntax>()
                .Any(n => n.Identifier.ValueText == "DisposeQuantized"))
        {
            diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.DisposeWithoutTwins.Id,
                LocationInfo.From(dispose.Identifier.GetLocation()), new EquatableArray<string>(new[] { type.Name })));
        }
        IMethodSymbol? to = type.GetMembers("_to").OfType<IMethodSymbol>().FirstOrDefault(m => m.IsOverride);
        if (to is not null)
        {
            diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.OverridesTo.Id,
                LocationInfo.From(to.Locations.FirstOrDefault()), new EquatableArray<string>([type.Name])));
        }
        string[] own = MembersEmitter.Names
            .Where(n => type.GetMembers(n).Any(m => !m.IsImplicitlyDeclared && !m.IsStatic)).ToArray();
        if (own.Length > 0)
        {
            diagnostics.Add(new DiagnosticInfo(DiagnosticDescriptors.OwnLifecycleMembers.Id, LocationInfo.From(at),
                new EquatableArray<string>([type.Name, string.Join(", ", own)])));
        }
        var classModel = new ClassModel(
            ns,
            type.Name + (declaration.TypeParameterList?.ToString() ?? ""),
            type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat).Replace("global::", "")
                .Replace('<', '{').Replace('>', '}'),
            new EquatableArray<string>(usings),
            new EquatableArray<string>(namespaceUsings),
            new EquatableArray<MethodModel>(methods),
            new EquatableArray<LayerModel>(layers),
            new EquatableArray<MapEntry>(map),
            dispose is not null,
            to is not null,
            new EquatableArray<InterceptModel>(walker.FloatCalls(cancellation)),
            new EquatableArray<string>(own));
        bool blocked = diagnostics.Any(d => DiagnosticDescriptors.ById(d.Id).DefaultSeverity == DiagnosticSeverity.Error);
        return new ParseResult(blocked ? null : classModel, new EquatableArray<DiagnosticInfo>(diagnostics));
    }

    private static bool DerivesFromModule(INamedTypeSymbol type)
    {
        for (INamedTypeSymbol? t = type.BaseType; t is not null; t = t.BaseType)
        {
            if (t.ToDisplayString() == "TorchSharp.torch.nn.Module") return true;
        }
        return false;
    }

    private static MethodDeclarationSyntax? FindForward(INamedTypeSymbol type, CancellationToken cancellation) =>
        type.GetMembers("forward").OfType<IMethodSymbol>()
            .Where(m => !m.IsStatic)
            .SelectMany(m => m.DeclaringSyntaxReferences)
            .Select(r => r.GetSyntax(cancellation))
            .OfType<MethodDeclarationSyntax>()
            .FirstOrDefault(m => m.Body is not null || m.ExpressionBody is not null);

    /// <summary>The header of a rewritten method: entries are public ForwardQuantized overloads, helpers private; the
    /// type parameters, parameters and constraints are as written, and async / unsafe are kept.</summary>
    private static string Signature(MethodDeclarationSyntax method, string name, bool isEntry)
    {
        string modifiers = isEntry ? "public" : "private";
        foreach (SyntaxToken modifier in method.Modifiers)
        {
            if (modifier.IsKind(SyntaxKind.AsyncKeyword) || modifier.IsKind(SyntaxKind.UnsafeKeyword))
                modifiers += " " + modifier.ValueText;
        }
        string constraints = string.Concat(method.ConstraintClauses.Select(c => " " + c.WithoutTrivia()));
        return $"{modifiers} {method.ReturnType.WithoutTrivia()} {name}{method.TypeParameterList?.WithoutTrivia()}" +
               $"{method.ParameterList.WithoutTrivia()}{constraints}";
    }

    /// <summary>The user's own <c>Dispose(bool)</c> override, if the class declares one.</summary>
    private static MethodDeclarationSyntax? FindDisposeOverride(INamedTypeSymbol type, CancellationToken cancellation) =>
        type.GetMembers("Dispose").OfType<IMethodSymbol>()
            .Where(m => !m.IsStatic && m.Parameters.Length == 1 && m.Parameters[0].Type.SpecialType == SpecialType.System_Boolean)
            .SelectMany(m => m.DeclaringSyntaxReferences)
            .Select(r => r.GetSyntax(cancellation))
            .OfType<MethodDeclarationSyntax>()
            .FirstOrDefault();

    /// <summary>The statements of a block, re-indented to start at column 0.</summary>
    private static string BlockContents(BlockSyntax block)
    {
        string inner = string.Concat(block.Statements.Select(s => s.ToFullString())) +
                       block.CloseBraceToken.LeadingTrivia.ToFullString();
        string[] lines = inner.Replace("\r\n", "\n").TrimEnd().Split('\n');
        int indent = lines.Where(l => l.Trim().Length > 0)
            .Select(l => l.Length - l.TrimStart(' ').Length)
            .DefaultIfEmpty(0)
            .Min();
        return string.Join("\n", lines.Select(l => l.Length >= indent ? l.Substring(indent) : l.TrimStart(' ')))
            .Trim('\n');
    }

    private static ParseResult Fail(List<DiagnosticInfo> diagnostics, DiagnosticDescriptor descriptor,
        Location? location, params string[] arguments)
    {
        diagnostics.Add(new DiagnosticInfo(descriptor.Id, LocationInfo.From(location),
            new EquatableArray<string>(arguments)));
        return new ParseResult(null, new EquatableArray<DiagnosticInfo>(diagnostics));
    }
}
