using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using Microsoft.CodeAnalysis;

namespace Quanto.Generators;

/// <summary>
/// The quantizable layer kinds of the referenced Quanto runtime, read from its <c>[QuantizedLayer(typeof(TFloat))]</c>
/// attributes (the runtime's registry, Quanto.Runtime/Nn/LayerKinds.cs, reads the same ones): no layer type names
/// are written into the generator, so a kind added to the runtime is recognised here without a change. Built once
/// per compilation.
/// </summary>
internal sealed class LayerKindTable
{
    /// <summary>The runtime attribute that registers a layer kind.</summary>
    public const string AttributeName = "Quanto.Nn.QuantizedLayerAttribute";

    private static readonly ConditionalWeakTable<Compilation, LayerKindTable> Cache = new();

    private readonly Dictionary<INamedTypeSymbol, LayerKindInfo> _byFloatType;

    private LayerKindTable(Dictionary<INamedTypeSymbol, LayerKindInfo> byFloatType) => _byFloatType = byFloatType;

    /// <summary>Every kind, ordered by float type name.</summary>
    public IEnumerable<LayerKindInfo> Kinds => _byFloatType.Values.OrderBy(k => k.FloatName, System.StringComparer.Ordinal);

    /// <summary>The table of <paramref name="compilation"/>'s referenced runtime (empty without one).</summary>
    public static LayerKindTable For(Compilation compilation) => Cache.GetValue(compilation, Build);

    /// <summary>The kind whose float layer type is exactly <paramref name="type"/>, or null.</summary>
    public LayerKindInfo? Find(ITypeSymbol? type) =>
        type is INamedTypeSymbol named && _byFloatType.TryGetValue(named, out LayerKindInfo? kind) ? kind : null;

    private static LayerKindTable Build(Compilation compilation)
    {
        var kinds = new Dictionary<INamedTypeSymbol, LayerKindInfo>(SymbolEqualityComparer.Default);
        INamedTypeSymbol? attribute = compilation.GetTypeByMetadataName(AttributeName);
        if (attribute is null) return new LayerKindTable(kinds);
        foreach (INamedTypeSymbol type in Types(attribute.ContainingAssembly.GlobalNamespace))
        {
            AttributeData? data = type.GetAttributes()
                .FirstOrDefault(a => SymbolEqualityComparer.Default.Equals(a.AttributeClass, attribute));
            if (data is null || type.IsAbstract ||
                data.ConstructorArguments.FirstOrDefault().Value is not INamedTypeSymbol floatType)
            {
                continue;
            }
            string operation = floatType.Name.ToLowerInvariant();
            bool quantizesWeights = true;
            foreach (KeyValuePair<string, TypedConstant> argument in data.NamedArguments)
            {
                if (argument.Key == "Operation" && argument.Value.Value is string op && op.Length > 0) operation = op;
                if (argument.Key == "QuantizesWeights" && argument.Value.Value is bool q) quantizesWeights = q;
            }
            kinds[floatType] = new LayerKindInfo(floatType.Name,
                type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat), type.Name, operation, quantizesWeights);
        }
        return new LayerKindTable(kinds);
    }

    private static IEnumerable<INamedTypeSymbol> Types(INamespaceSymbol ns)
    {
        foreach (INamespaceOrTypeSymbol member in ns.GetMembers())
        {
            if (member is INamespaceSymbol inner)
            {
                foreach (INamedTypeSymbol type in Types(inner)) yield return type;
            }
            else if (member is INamedTypeSymbol type)
            {
                yield return type;
            }
        }
    }
}
