using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace Quanto.Generators;

/// <summary>A quantizable layer kind of the referenced runtime (from its [QuantizedLayer] attribute).</summary>
/// <param name="FloatName">The TorchSharp layer type's name ("Linear").</param>
/// <param name="QuantizedType">The quantized module type, fully qualified ("global::Quanto.Nn.QLinear").</param>
/// <param name="QuantizedName">Its short name ("QLinear").</param>
/// <param name="Operation">The quantized operation in words ("linear").</param>
/// <param name="QuantizesWeights">False for kinds whose weights stay float (LayerNorm).</param>
internal sealed record LayerKindInfo(string FloatName, string QuantizedType, string QuantizedName, string Operation,
    bool QuantizesWeights);

/// <summary>One quantizable field of an annotated class, with its effective settings.</summary>
/// <param name="FieldName">The user's field ("fc1"), also its module path segment.</param>
/// <param name="Kind">Layer kind, or null for a nested [Quantize] model (its own generated members do the work).
/// </param>
/// <param name="IsList">True for a ModuleList of such layers.</param>
/// <param name="Weights">Weight qtype (QType member name, "QInt4"), or null.</param>
/// <param name="Activations">Activation qtype member name, or null.</param>
/// <param name="Group">Group size, or null for the default.</param>
internal sealed record LayerModel(string FieldName, LayerKindInfo? Kind, bool IsList, string? Weights,
    string? Activations, int? Group)
{
    /// <summary>The generated field holding the quantized twin ("_fc1Quantized").</summary>
    public string WrapperName => "_" + FieldName.TrimStart('_') + "Quantized";

    /// <summary>True for a nested [Quantize] model (or a ModuleList of them).</summary>
    public bool IsModel => Kind is null;
}

/// <summary>One line of quanto_qmap.json.</summary>
/// <param name="Path">Module path ("block.fc1", "blocks.*.fc1" inside lists).</param>
/// <param name="Weights">optimum-quanto name of the weight qtype, or "none".</param>
/// <param name="Activations">optimum-quanto name of the activation qtype, or "none".</param>
internal sealed record MapEntry(string Path, string Weights, string Activations);

/// <summary>Everything the emitter needs for one annotated class: strings, numbers and equatable arrays only.</summary>
/// <param name="Namespace">Containing namespace, or null for the global namespace.</param>
/// <param name="Name">Class name with its type parameter list ("Mlp", "Head&lt;T&gt;").</param>
/// <param name="FullName">Metadata-like full name for the hint name.</param>
/// <param name="Usings">Using directives of the file that declares forward (its body is compiled with them).</param>
/// <param name="NamespaceUsings">Using directives declared inside the namespace.</param>
/// <param name="ReturnType">forward's return type, as written.</param>
/// <param name="Parameters">forward's parameter list, as written, parentheses included.</param>
/// <param name="Body">The rewritten body, as statements (an expression body becomes a return statement).</param>
/// <param name="Layers">Quantizable fields in declaration order.</param>
/// <param name="Map">The quantization map, nested models and lists flattened.</param>
/// <param name="OverridesDispose">True when the user's class declares Dispose(bool) itself (the generator then
/// leaves it alone; the user's override calls DisposeQuantized).</param>
internal sealed record ClassModel(string? Namespace, string Name, string FullName, EquatableArray<string> Usings,
    EquatableArray<string> NamespaceUsings, string ReturnType, string Parameters, string Body,
    EquatableArray<LayerModel> Layers, EquatableArray<MapEntry> Map, bool OverridesDispose);

/// <summary>A location without the syntax tree, so it can sit in a cached model.</summary>
internal sealed record LocationInfo(string FilePath, TextSpan Span, LinePositionSpan LineSpan)
{
    public Location ToLocation() => Location.Create(FilePath, Span, LineSpan);

    public static LocationInfo? From(Location? location) =>
        location is null || location.SourceTree is null
            ? null
            : new LocationInfo(location.SourceTree.FilePath, location.SourceSpan, location.GetLineSpan().Span);
}

/// <summary>A diagnostic to report: descriptor id, where, and the message arguments.</summary>
internal sealed record DiagnosticInfo(string Id, LocationInfo? Location, EquatableArray<string> Arguments)
{
    public Diagnostic ToDiagnostic() => Diagnostic.Create(DiagnosticDescriptors.ById(Id), Location?.ToLocation(),
        System.Linq.Enumerable.ToArray(Arguments));
}

/// <summary>The parser's answer for one annotated class: a model to emit (null when an error stops generation)
/// and the diagnostics found.</summary>
internal sealed record ParseResult(ClassModel? Model, EquatableArray<DiagnosticInfo> Diagnostics);
