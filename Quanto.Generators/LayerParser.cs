using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace Quanto.Generators;

/// <summary>Finds the quantizable fields of an annotated class and resolves their effective settings.</summary>
internal static class LayerParser
{
    private const int MaxNesting = 16;

    /// <summary>The layers of <paramref name="type"/>; diagnostics go to <paramref name="diagnostics"/> when given
    /// (null for nested classes, which report on their own).</summary>
    public static List<LayerModel> Layers(INamedTypeSymbol type, QuantizeSettings classSettings, LayerKindTable kinds,
        Compilation compilation, List<DiagnosticInfo>? diagnostics)
    {
        var layers = new List<LayerModel>();
        foreach (IFieldSymbol field in type.GetMembers().OfType<IFieldSymbol>())
        {
            if (field.IsStatic || field.IsImplicitlyDeclared) continue;
            if (QuantizeSettings.Find(field, QuantizeSettings.NoQuantizeName) is not null) continue;
            AttributeData? attribute = QuantizeSettings.Find(field);
            FieldRole role = FieldClassifier.Classify(field, kinds, compilation);
            Location? at = field.Locations.FirstOrDefault();
            if (role.Kind is null && !role.IsModel)
            {
                if (attribute is not null)
                {
                    Report(diagnostics, DiagnosticDescriptors.UnsupportedField, at, field.Name,
                        field.Type.ToDisplayString(SymbolDisplayFormat.MinimallyQualifiedFormat),
                        string.Join(", ", kinds.Kinds.Select(k => k.FloatName)));
                }
                else if (role.Unfollowed is { } why && !classSettings.Excludes(field.Name))
                {
                    Report(diagnostics, DiagnosticDescriptors.ById(why.Id), at, why.Args);
                }
                continue;
            }
            if (attribute is null && classSettings.Excludes(field.Name)) continue;
            if (role.Kind is { OptIn: true } optIn && attribute is null)
            {
                Report(diagnostics, DiagnosticDescriptors.OptIn, at, field.Name, optIn.FloatName);
                continue;
            }
            if (role.IsModel)
            {
                layers.Add(new LayerModel(field.Name, null, role.IsList, null, null, null));
                continue;
            }
            QuantizeSettings own = attribute is null ? new QuantizeSettings() : QuantizeSettings.Read(attribute);
            LayerModel? layer = Resolve(field.Name, role.Kind!, role.IsList, classSettings, own, diagnostics);
            if (layer is not null) layers.Add(layer);
        }
        return layers;
    }

    /// <summary>Checks the class attribute itself (its defaults apply to every layer).</summary>
    public static void ValidateClass(string name, QuantizeSettings settings, List<DiagnosticInfo> diagnostics) =>
        Validate(name, settings, settings.Weights ?? DefaultWeights(settings, null), diagnostics);

    /// <summary>quanto_qmap.json entries of <paramref name="type"/>'s layers under <paramref name="prefix"/>.</summary>
    public static void MapEntries(INamedTypeSymbol type, QuantizeSettings settings, LayerKindTable kinds,
        Compilation compilation, string prefix, List<MapEntry> map, int depth = 0)
    {
        foreach (LayerModel layer in Layers(type, settings, kinds, compilation, null))
        {
            string path = prefix + layer.FieldName + (layer.IsList ? ".*" : "");
            if (!layer.IsModel)
            {
                // A slot the attributes leave float (a LayerNorm without activations) is not in the map.
                if (layer.Weights is not null || layer.Activations is not null)
                {
                    map.Add(new MapEntry(path, QTypeNames.QuantoName(layer.Weights),
                        QTypeNames.QuantoName(layer.Activations)));
                }
                continue;
            }
            if (depth >= MaxNesting) continue;
            IFieldSymbol field = type.GetMembers(layer.FieldName).OfType<IFieldSymbol>().First();
            ITypeSymbol nested = layer.IsList ? ((INamedTypeSymbol)field.Type).TypeArguments[0] : field.Type;
            if (nested is INamedTypeSymbol named && QuantizeSettings.Find(named) is AttributeData attribute)
                MapEntries(named, QuantizeSettings.Read(attribute), kinds, compilation, path + ".", map, depth + 1);
        }
    }

    /// <summary>True when <paramref name="type"/> is a [Quantize] class (its forward has a generated twin).</summary>
    public static bool IsAnnotated(ITypeSymbol? type) =>
        type is INamedTypeSymbol named && QuantizeSettings.Find(named) is not null;

    private static LayerModel? Resolve(string name, LayerKindInfo kind, bool isList, QuantizeSettings cls,
        QuantizeSettings own, List<DiagnosticInfo>? diagnostics)
    {
        string? weights = own.Weights ?? cls.Weights ?? DefaultWeights(cls, own);
        if (diagnostics is not null) Validate(name, own, weights, diagnostics);
        string? activations = kind.QuantizesActivations ? own.Activations ?? cls.Activations : null;
        if (activations is not null && QTypeNames.Bits(activations) < 8) activations = null;
        int? group = own.Group ?? cls.Group;
        if (group is int g && (g <= 0 || g % 8 != 0)) group = null;
        if (weights is null || QTypeNames.Bits(weights) == 8) group = null;
        // A kind that quantizes only activations (LayerNorm) always gets a slot: a run-time Quantize with
        // activations gives it a twin, as the eager path swaps it; without, it has none and runs float.
        if (!kind.QuantizesWeights) return new LayerModel(name, kind, isList, null, activations, null);
        return weights is null && activations is null
            ? null
            : new LayerModel(name, kind, isList, weights, activations, group);
    }

    /// <summary>QInt8 weights when neither the class nor the field names a weight or activation qtype.</summary>
    private static string? DefaultWeights(QuantizeSettings cls, QuantizeSettings? own) =>
        cls.Weights is null && cls.Activations is null && own?.Weights is null && own?.Activations is null
            ? "QInt8"
            : null;

    private static void Validate(string owner, QuantizeSettings settings, string? weights,
        List<DiagnosticInfo> diagnostics)
    {
        if (settings.Group is int group)
        {
            Location? at = settings.Locations["Group"];
            if (group <= 0 || group % 8 != 0)
                Report(diagnostics, DiagnosticDescriptors.BadGroup, at, group.ToString(), owner);
            else if (weights is not null && QTypeNames.Bits(weights) == 8)
                Report(diagnostics, DiagnosticDescriptors.GroupIgnored, at, group.ToString(), owner, weights);
        }
        if (settings.Activations is string activations && QTypeNames.Bits(activations) < 8)
        {
            Report(diagnostics, DiagnosticDescriptors.PackedActivations, settings.Locations["Activations"],
                activations, owner);
        }
    }

    private static void Report(List<DiagnosticInfo>? diagnostics, DiagnosticDescriptor descriptor, Location? location,
        params string[] arguments) =>
        diagnostics?.Add(new DiagnosticInfo(descriptor.Id, LocationInfo.From(location),
            new EquatableArray<string>(arguments)));
}
