using System.Reflection;
using static TorchSharp.torch;

namespace Quanto.Nn;

/// <summary>
/// The registry of quantizable layer kinds (optimum-quanto's <c>register_qmodule</c>): every <see cref="QModule"/>
/// subclass of Quanto.Runtime that carries a <see cref="QuantizedLayerAttribute"/>. Everything that needs to know
/// which layers can be quantized asks here: <see cref="Quantizer.Quantize"/> (which layer to swap for what),
/// generated [Quantize] code (the twin of each layer, releasing float weights), checkpoint loading (which modules keep
/// float weights) and <c>quanto quantize</c> (which tensors to quantize). Adding a kind is writing its quantized
/// module with the attribute; nothing here changes.
/// </summary>
public static class LayerKinds
{
    private static readonly Lazy<Registry> Kinds = new(() => new Registry(typeof(LayerKinds).Assembly));

    /// <summary>Every registered kind, ordered by name (Conv2d, LayerNorm, Linear, ...).</summary>
    public static IReadOnlyList<LayerKind> All => Kinds.Value.All;

    /// <summary>The kind of a float layer (its exact type), or null when it has no quantized counterpart.</summary>
    public static LayerKind? For(nn.Module layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        return For(layer.GetType());
    }

    /// <summary>The kind whose float layer type is exactly <paramref name="floatType"/>, or null.</summary>
    public static LayerKind? For(Type floatType)
    {
        ArgumentNullException.ThrowIfNull(floatType);
        return Kinds.Value.ByFloatType.GetValueOrDefault(floatType);
    }

    /// <summary>The kind a quantized module belongs to (its exact type), or null for a module of no kind.</summary>
    public static LayerKind? Of(QModule module)
    {
        ArgumentNullException.ThrowIfNull(module);
        return Kinds.Value.ByQuantizedType.GetValueOrDefault(module.GetType());
    }

    /// <summary>The weight ranks <c>quanto quantize</c> quantizes by default (2 for Linear, 4 for Conv2d, ...), with
    /// the kinds of each rank.</summary>
    public static IReadOnlyDictionary<int, IReadOnlyList<LayerKind>> CliWeightRanks => Kinds.Value.CliRanks;

    /// <summary>The registered float layer names for messages: "Conv2d, LayerNorm and Linear".</summary>
    public static string Names
    {
        get
        {
            string[] names = All.Select(k => k.Name).ToArray();
            return names.Length < 2 ? string.Concat(names) : string.Join(", ", names[..^1]) + " and " + names[^1];
        }
    }

    private sealed class Registry
    {
        public Registry(Assembly assembly)
        {
            var kinds = new List<LayerKind>();
            foreach (Type type in assembly.GetTypes())
            {
                if (LayerKind.FromType(type) is LayerKind kind) kinds.Add(kind);
            }
            All = kinds.OrderBy(k => k.Name, StringComparer.Ordinal).ToArray();
            ByFloatType = new Dictionary<Type, LayerKind>();
            foreach (LayerKind kind in All)
            {
                if (!ByFloatType.TryAdd(kind.FloatType, kind))
                {
                    throw new InvalidOperationException(
                        $"Two quantized modules register {kind.Name}: {ByFloatType[kind.FloatType].QuantizedType.Name} " +
                        $"and {kind.QuantizedType.Name}; a layer type has one quantized counterpart.");
                }
            }
            ByQuantizedType = All.ToDictionary(k => k.QuantizedType);
            CliRanks = All.Where(k => k.QuantizedByCli).GroupBy(k => k.WeightRank)
                .ToDictionary(g => g.Key, g => (IReadOnlyList<LayerKind>)g.ToArray());
        }

        public IReadOnlyList<LayerKind> All { get; }

        public Dictionary<Type, LayerKind> ByFloatType { get; }

        public Dictionary<Type, LayerKind> ByQuantizedType { get; }

        public IReadOnlyDictionary<int, IReadOnlyList<LayerKind>> CliRanks { get; }
    }
}
