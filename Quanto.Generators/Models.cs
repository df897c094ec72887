using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace Quanto.Generators;

/// <summary>A quantizable layer kind of the referenced runtime (from its [QuantizedLayer] attribute).</summary>
/// <param name="FloatName">The TorchSharp layer type's name ("Linear").</param>
/// <param name="QuantizedType">The quantized module type, fully qualified ("global::Quanto.Nn.QLinear").</param>
/// <param name="QuantizedName">Its short name ("QLinear").</param>
/// <param name="Operation">The quantized operation in words ("linear").</param>
/// <param name="QuantizesWeights">False for kinds whose weights stay float (LayerNorm).</param>
/// <param name="QuantizesActivations">False for kinds whose activations stay float (Embedding).</param>
/// <param name="OptIn">True for kinds quantized only when a field asks ([Quantize] on it; Embedding).</param>
internal sealed record LayerKindInfo(string FloatName, string QuantizedType, string QuantizedName, string Operation,
    bool QuantizesWeights, bool QuantizesActivations = true, bool OptIn = false);

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

/// <summary>One rewritten method: a <c>forward</c> (an entry: a public <c>ForwardQuantized</c>) or a helper it calls
/// (a private <c>NameQuantized</c>).</summary>
/// <param name="Name">The original method's name ("forward", "Attention").</param>
/// <param name="Signature">The new declaration's header, modifiers to constraints ("public Tensor
/// ForwardQuantized(Tensor x)").</param>
/// <param name="Body">The rewritten body, as statements (an expression body becomes a return statement).</param>
/// <param name="IsEntry">True for a forward.</param>
internal sealed record MethodModel(string Name, string Signature, string Body, bool IsEntry);

/// <summary>One float call on a quantized layer in the class's own code, to intercept.</summary>
/// <param name="Method">"forward" or "call".</param>
/// <param name="Version">The interceptable location's version.</param>
/// <param name="Data">The interceptable location's data.</param>
/// <param name="Where">"Mlp.cs(12,9)": where the call is, for the generated comment.</param>
/// <param name="Parameter">The intercepted method's parameter name.</param>
/// <param name="Receiver">The intercepted method's containing type, fully qualified (the interceptor's <c>this</c>
/// type: <c>Linear</c> for its <c>forward</c> override, <c>Module&lt;Tensor, Tensor&gt;</c> for <c>call</c>).</param>
internal sealed record InterceptModel(string Method, int Version, string Data, string Where, string Parameter,
    string Receiver);

/// <summary>Everything the emitter needs for one annotated class: strings, numbers and equatable arrays only.</summary>
/// <param name="Namespace">Containing namespace, or null for the global namespace.</param>
/// <param name="Name">Class name with its type parameter list ("Mlp", "Head&lt;T&gt;").</param>
/// <param name="FullName">Metadata-like full name for the hint name.</param>
/// <param name="Usings">Using directives of the files that declare the rewritten methods (their bodies are compiled
/// with them).</param>
/// <param name="NamespaceUsings">Using directives declared inside the namespace.</param>
/// <param name="Methods">The rewritten methods: the forwards, then the helpers.</param>
/// <param name="Layers">Quantizable fields in declaration order.</param>
/// <param name="Map">The quantization map, nested models and lists flattened.</param>
/// <param name="OverridesDispose">True when the user's class declares Dispose(bool) itself (the generator then
/// leaves it alone; the user's override calls DisposeQuantized).</param>
/// <param name="OverridesTo">True when the user's class overrides TorchSharp's <c>_to</c> itself (the generator then
/// writes no <c>_to</c>; the user's override calls the lifecycle's Moved).</param>
/// <param name="Intercepts">The float calls on quantized layers in the class's own code.</param>
/// <param name="OwnMembers">The lifecycle member names (<see cref="MembersEmitter.Names"/>) that the class declares
/// itself ("Quantize" for a model with its own optimum-quanto-style Quantize): the generator emits no member of
/// those names, so calls on the class's own members are not ambiguous.</param>
internal sealed record ClassModel(string? Namespace, string Name, string FullName, EquatableArray<string> Usings,
    EquatableArray<string> NamespaceUsings, EquatableArray<MethodModel> Methods, EquatableArray<LayerModel> Layers,
    EquatableArray<MapEntry> Map, bool OverridesDispose, bool OverridesTo, EquatableArray<InterceptModel> Intercepts,
    EquatableArray<string> OwnMembers);

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
