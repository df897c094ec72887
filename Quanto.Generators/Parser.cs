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
        LayerKindTable kinds = LayerKindTable.For(context.SemanticModel.Compilation);
        List<LayerModel> layers = LayerParser.Layers(type, settings, kinds, diagnostics);
        var map = new List<MapEntry>();
        LayerParser.MapEntries(type, settings, kinds, "", map);

        SemanticModel model = forward.SyntaxTree == context.SemanticModel.SyntaxTree
            ? context.SemanticModel
            : context.SemanticModel.Compilation.GetSemanticModel(forward.SyntaxTree);
        var rewriter = new ForwardRewriter(model, type, layers, diagnostics);
        string body = forward.Body is BlockSyntax block
            ? BlockContents((BlockSyntax)rewriter.Visit(block)!)
            : rewriter.RewriteExpressionBody(forward.ExpressionBody!.Expression);

        var root = (CompilationUnitSyntax)forward.SyntaxTree.GetRoot(cancellation);
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
        var classModel = new ClassModel(
            ns,
            type.Name + (declaration.TypeParameterList?.ToString() ?? ""),
            type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat).Replace("global::", "")
                .Replace('<', '{').Replace('>', '}'),
            new EquatableArray<string>(root.Usings.Select(u => u.ToString())),
            new EquatableArray<string>(namespaceUsings),
            forward.ReturnType.ToString(),
            forward.ParameterList.ToString(),
            body,
            new EquatableArray<LayerModel>(layers),
            new EquatableArray<MapEntry>(map),
            dispose is not null);
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
