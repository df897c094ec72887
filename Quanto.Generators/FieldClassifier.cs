using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Quanto.Generators;

/// <summary>What one field of a [Quantize] class is to the generator.</summary>
/// <param name="Kind">The layer kind it holds (null: none).</param>
/// <param name="IsModel">True for a nested [Quantize] model.</param>
/// <param name="IsList">True for a ModuleList of such items.</param>
/// <param name="Unfollowed">Why a module field is not followed (a diagnostic id and its arguments), or null.</param>
internal readonly record struct FieldRole(LayerKindInfo? Kind, bool IsModel, bool IsList, (string Id, string[] Args)? Unfollowed)
{
    /// <summary>A field the generator neither follows nor reports (not a module).</summary>
    public static readonly FieldRole None = new(null, false, false, null);
}

/// <summary>
/// Classifies the fields of a [Quantize] class. A field typed with a layer kind (<c>Linear</c>), a [Quantize] class or
/// a ModuleList of either is followed. A field declared with an abstract module type, as TorchSharp's examples write
/// them (<c>private Module&lt;Tensor, Tensor&gt; fc1 = Linear(64, 128);</c>), is followed when every assignment to
/// it in the class (initializer, constructor, any method) gives a layer of one kind. Every other module field gets a
/// diagnostic saying what happens to it and what to do: Sequential and ModuleDict (not rewritten), a module type
/// without a quantized counterpart, a module class holding layers but not annotated, an abstract field whose layer
/// cannot be told, and (as information) modules without weights.
/// </summary>
internal static class FieldClassifier
{
    private const string ModuleType = "TorchSharp.torch.nn.Module";

    /// <summary>The role of <paramref name="field"/>.</summary>
    public static FieldRole Classify(IFieldSymbol field, LayerKindTable kinds, Compilation compilation)
    {
        bool isList = IsGeneric(field.Type, "TorchSharp.Modules.ModuleList<T>");
        ITypeSymbol item = isList ? ((INamedTypeSymbol)field.Type).TypeArguments[0] : field.Type;
        if (kinds.Find(item) is LayerKindInfo kind) return new FieldRole(kind, false, isList, null);
        if (LayerParser.IsAnnotated(item)) return new FieldRole(null, true, isList, null);
        if (!IsModule(item)) return FieldRole.None;
        string what = isList ? $"the items of '{field.Name}'" : $"'{field.Name}'";

        List<ITypeSymbol> held = isList || !IsAbstractModule(item) ? [item] : AssignedTypes(field, compilation);
        string declared = Display(field.Type);
        if (held.Count == 0)
        {
            return Unfollowed(DiagnosticDescriptors.UnknownLayer.Id, field.Name, declared,
                "it is not assigned in the class");
        }
        ITypeSymbol[] distinct = held.Distinct<ITypeSymbol>(SymbolEqualityComparer.Default).ToArray();
        if (distinct.Length == 1 && kinds.Find(distinct[0]) is LayerKindInfo inferred)
            return new FieldRole(inferred, false, false, null);
        if (distinct.Length > 1 || IsAbstractModule(distinct[0]))
        {
            string types = string.Join(", ", distinct.Select(Display));
            return Unfollowed(DiagnosticDescriptors.UnknownLayer.Id, field.Name, declared,
                $"it is assigned values of type {types}");
        }
        ITypeSymbol type = distinct[0];
        if (LayerParser.IsAnnotated(type))
        {
            return Unfollowed(DiagnosticDescriptors.UnknownLayer.Id, field.Name, declared,
                $"it holds the [Quantize] model {Display(type)}; declare the field as {Display(type)}");
        }
        if (IsGeneric(type, "TorchSharp.Modules.ModuleDict<T>") || type.ToDisplayString() == "TorchSharp.Modules.Sequential")
            return Unfollowed(DiagnosticDescriptors.Container.Id, what, Display(type));
        string[] layers = QuantizableMembers(type, kinds).ToArray();
        if (layers.Length > 0)
            return Unfollowed(DiagnosticDescriptors.NotAnnotated.Id, what, Display(type), string.Join(", ", layers));
        return HasWeights(type)
            ? Unfollowed(DiagnosticDescriptors.NoCounterpart.Id, what, Display(type),
                string.Join(", ", kinds.Kinds.Select(k => k.FloatName)))
            : Unfollowed(DiagnosticDescriptors.NoWeights.Id, what, Display(type));
    }

    /// <summary>True for TorchSharp's Module and its subclasses.</summary>
    public static bool IsModule(ITypeSymbol? type)
    {
        for (ITypeSymbol? t = type; t is not null; t = t.BaseType)
        {
            if (t.ToDisplayString() == ModuleType) return true;
        }
        return false;
    }

    private static FieldRole Unfollowed(string id, params string[] args) => new(null, false, false, (id, args));

    /// <summary>Module types that say nothing about the layer held: abstract ones (Module&lt;Tensor, Tensor&gt;).
    /// </summary>
    private static bool IsAbstractModule(ITypeSymbol type) => type.IsAbstract || type.ToDisplayString() == ModuleType;

    private static bool IsGeneric(ITypeSymbol type, string definition) =>
        type is INamedTypeSymbol { IsGenericType: true } named && named.OriginalDefinition.ToDisplayString() == definition;

    /// <summary>The static types of every value assigned to <paramref name="field"/> in its class's source.</summary>
    private static List<ITypeSymbol> AssignedTypes(IFieldSymbol field, Compilation compilation)
    {
        var types = new List<ITypeSymbol>();
        foreach (SyntaxReference reference in field.ContainingType.DeclaringSyntaxReferences)
        {
            SyntaxNode declaration = reference.GetSyntax();
            SemanticModel model = compilation.GetSemanticModel(declaration.SyntaxTree);
            foreach (SyntaxNode node in declaration.DescendantNodes())
            {
                ExpressionSyntax? value = node switch
                {
                    VariableDeclaratorSyntax { Initializer.Value: var v } d
                        when SymbolEqualityComparer.Default.Equals(model.GetDeclaredSymbol(d), field) => v,
                    AssignmentExpressionSyntax a
                        when SymbolEqualityComparer.Default.Equals(model.GetSymbolInfo(a.Left).Symbol, field) => a.Right,
                    _ => null,
                };
                if (value is not null && model.GetTypeInfo(value).Type is ITypeSymbol type) types.Add(type);
            }
        }
        return types;
    }

    /// <summary>"fc1: Linear" for each layer-kind field of a module class (the generator would quantize them if it
    /// were annotated).</summary>
    private static IEnumerable<string> QuantizableMembers(ITypeSymbol type, LayerKindTable kinds)
    {
        if (type.Locations.All(l => !l.IsInSource)) yield break;
        foreach (IFieldSymbol member in type.GetMembers().OfType<IFieldSymbol>())
        {
            ITypeSymbol item = IsGeneric(member.Type, "TorchSharp.Modules.ModuleList<T>")
                ? ((INamedTypeSymbol)member.Type).TypeArguments[0]
                : member.Type;
            if (kinds.Find(item) is LayerKindInfo kind) yield return $"{member.Name}: {kind.FloatName}";
        }
    }

    /// <summary>True when the module type holds parameters: a Parameter field or property (a TorchSharp layer's
    /// public <c>weight</c>; any member of a module class in source), or a module field of its own.</summary>
    private static bool HasWeights(ITypeSymbol type)
    {
        for (ITypeSymbol? t = type; t is not null && t.ToDisplayString() != ModuleType; t = t.BaseType)
        {
            foreach (ISymbol member in t.GetMembers())
            {
                ITypeSymbol? memberType = member switch
                {
                    IFieldSymbol { IsStatic: false } f => f.Type,
                    IPropertySymbol { IsStatic: false } p => p.Type,
                    _ => null,
                };
                if (memberType?.ToDisplayString().TrimEnd('?') == "TorchSharp.Modules.Parameter") return true;
                if (member is IFieldSymbol && IsModule(memberType) && t.Locations.Any(l => l.IsInSource)) return true;
            }
        }
        return false;
    }

    private static string Display(ITypeSymbol type) => type.ToDisplayString(SymbolDisplayFormat.MinimallyQualifiedFormat);
}
