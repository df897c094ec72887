using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace Quanto.Generators;

/// <summary>Every diagnostic the generator reports (listed in AnalyzerReleases.*.md).</summary>
internal static class DiagnosticDescriptors
{
    private const string Category = "Quanto.Generators";

    public static readonly DiagnosticDescriptor NotPartial = new(
        "QNT001", "Quantized model class must be partial",
        "Class '{0}' is annotated with [Quantize] but is not a top-level partial class; declare it 'public partial " +
        "class {0}' so ForwardQuantized can be generated",
        Category, DiagnosticSeverity.Error, true,
        "The generator adds ForwardQuantized, Quantize, Freeze and the rest as another part of the class.");

    public static readonly DiagnosticDescriptor NoForward = new(
        "QNT002", "Quantized model class has no forward method",
        "Class '{0}' is annotated with [Quantize] but declares no forward method with a body; ForwardQuantized is a " +
        "rewrite of forward, so declare 'public override Tensor forward(Tensor x)' in '{0}'",
        Category, DiagnosticSeverity.Error, true,
        "ForwardQuantized has the signature and body of the class's own forward.");

    public static readonly DiagnosticDescriptor UnsupportedField = new(
        "QNT003", "Annotated field has no quantized counterpart",
        "Field '{0}' is annotated with [Quantize] but its type '{1}' cannot be quantized; supported are {2}, " +
        "[Quantize] classes and ModuleList of those",
        Category, DiagnosticSeverity.Error, true,
        "Remove the attribute, or hold the layer in one of the supported types.");

    public static readonly DiagnosticDescriptor BadGroup = new(
        "QNT004", "Group size is not a positive multiple of 8",
        "Group = {0} on '{1}' is not a positive multiple of 8; use 128 (the default), 64 or 32",
        Category, DiagnosticSeverity.Error, true,
        "2/4-bit weights are quantized in groups along the input features; packed kernels need multiples of 8.");

    public static readonly DiagnosticDescriptor GroupIgnored = new(
        "QNT005", "Group size is ignored for 8-bit weights",
        "Group = {0} on '{1}' is ignored: {2} weights are quantized per output channel, not in groups",
        Category, DiagnosticSeverity.Warning, true,
        "Group applies to qint2 and qint4 weights only; remove it or pick a 2/4-bit qtype.");

    public static readonly DiagnosticDescriptor PackedActivations = new(
        "QNT006", "Activations cannot be quantized to 2 or 4 bits",
        "Activations = {0} on '{1}' is not supported: activations are quantized per tensor to QInt8 or a float8 type",
        Category, DiagnosticSeverity.Error, true,
        "2/4-bit qtypes are for weights only.");

    public static readonly DiagnosticDescriptor UnfollowedUse = new(
        "QNT007", "Layer use cannot be rewritten",
        "'{0}' is used in {1} in a way ForwardQuantized cannot follow (only '{0}.forward(x)' and '{0}.call(x)' in " +
        "forward and the helpers it calls are rewritten); this use stays float",
        Category, DiagnosticSeverity.Warning, true,
        "Call the layer directly in forward or in a helper method forward calls, or mark it [NoQuantize] to keep it " +
        "float on purpose; after Freeze a float use has no weight left.");

    public static readonly DiagnosticDescriptor NotModule = new(
        "QNT008", "[Quantize] class is not a TorchSharp module",
        "Class '{0}' is annotated with [Quantize] but does not derive from TorchSharp's Module; only model classes " +
        "can be quantized",
        Category, DiagnosticSeverity.Error, true,
        "Derive the class from Module<Tensor, Tensor> (or another Module<...>), or remove the attribute.");

    public static readonly DiagnosticDescriptor DisposeWithoutTwins = new(
        "QNT009", "Dispose(bool) override does not dispose the quantized layers",
        "Class '{0}' overrides Dispose(bool), so the generator does not; call DisposeQuantized() from it, or the " +
        "quantized layers' memory is only released by the garbage collector",
        Category, DiagnosticSeverity.Warning, true,
        "Add 'if (disposing) DisposeQuantized();' before 'base.Dispose(disposing);' in the override.");

    public static readonly DiagnosticDescriptor NoLayers = new(
        "QNT010", "[Quantize] class has no layer to quantize",
        "Class '{0}' is annotated with [Quantize] but has no layer the generator quantizes: no field holds {1}, a " +
        "[Quantize] class or a ModuleList of those",
        Category, DiagnosticSeverity.Error, true,
        "Hold the layers in fields of those types (or Module<Tensor, Tensor> fields assigned such a layer), or " +
        "remove [Quantize] and use Quantizer.Quantize; the other diagnostics on the class's fields say why each " +
        "one is not followed.");

    public static readonly DiagnosticDescriptor NoCounterpart = new(
        "QNT011", "Layer has no quantized counterpart",
        "{0} is a {1}, which has no quantized counterpart: it stays float in ForwardQuantized (quantized are {2})",
        Category, DiagnosticSeverity.Warning, true,
        "Mark the field [NoQuantize] to keep it float on purpose and silence this.");

    public static readonly DiagnosticDescriptor UnknownLayer = new(
        "QNT012", "Field's layer cannot be told",
        "Field '{0}' is declared '{1}' and the generator cannot tell which layer it holds ({2}): it stays float in " +
        "ForwardQuantized",
        Category, DiagnosticSeverity.Warning, true,
        "Declare the field with the layer's type (Linear), or assign it a layer in the class " +
        "(private Module<Tensor, Tensor> fc1 = Linear(64, 128);), or mark it [NoQuantize].");

    public static readonly DiagnosticDescriptor Container = new(
        "QNT013", "Layers inside a container are not rewritten",
        "{0} is a {1}: ForwardQuantized calls it as written, so the layers inside it stay float",
        Category, DiagnosticSeverity.Warning, true,
        "Hold the layers in fields or a ModuleList of the class, or quantize the model with Quantizer.Quantize " +
        "(which swaps layers inside containers), or mark the field [NoQuantize] to keep it float on purpose.");

    public static readonly DiagnosticDescriptor NotAnnotated = new(
        "QNT014", "Module class with layers is not a [Quantize] class",
        "{0} is a {1}, which holds quantizable layers ({2}) but is not annotated with [Quantize]: they stay float " +
        "in ForwardQuantized",
        Category, DiagnosticSeverity.Warning, true,
        "Annotate the class with [Quantize] and make it partial: its layers are then quantized with this model " +
        "(nested [Quantize] models are followed), or mark the field [NoQuantize].");

    public static readonly DiagnosticDescriptor NoWeights = new(
        "QNT015", "Module without weights runs as written",
        "{0} is a {1}, which has no weights to quantize: ForwardQuantized calls it as written",
        Category, DiagnosticSeverity.Info, true,
        "Nothing to do: activation functions, dropout and pooling stay float.");

    public static readonly DiagnosticDescriptor OverridesTo = new(
        "QNT016", "_to override does not move the quantized layers",
        "Class '{0}' overrides _to, so the generator does not: the quantized layers do not follow .to()",
        Category, DiagnosticSeverity.Warning, true,
        "Return ((Quanto.Generated.IQuantizedModel)this).Quantization.Moved(base._to(...), device, dtype, " +
        "non_blocking) from each _to override.");

    public static readonly DiagnosticDescriptor OptIn = new(
        "QNT017", "Layer kind is quantized only when asked",
        "'{0}' is a {1}, which is quantized only when its field carries [Quantize] (optimum-quanto leaves it float): " +
        "ForwardQuantized calls it as written",
        Category, DiagnosticSeverity.Info, true,
        "Put [Quantize(Weights = ...)] on the field to quantize it; optimum-quanto's loaders cannot read a quantized one.");

    public static readonly DiagnosticDescriptor OwnLifecycleMembers = new(
        "QNT018", "Class declares lifecycle members of its own",
        "Class '{0}' declares {1} itself, so the generator emits no member of that name; the class's own members " +
        "reach the generated lifecycle through ((Quanto.Generated.IQuantizedModel)this).Quantization",
        Category, DiagnosticSeverity.Info, true,
        "A model with its own optimum-quanto-style Quantize keeps it: generated overloads beside it would make calls " +
        "that pass only weights ambiguous (CS0121).");

    /// <summary>All descriptors, in ID order.</summary>
    public static IReadOnlyList<DiagnosticDescriptor> All { get; } =
    [
        NotPartial, NoForward, UnsupportedField, BadGroup, GroupIgnored, PackedActivations, UnfollowedUse, NotModule,
        DisposeWithoutTwins, NoLayers, NoCounterpart, UnknownLayer, Container, NotAnnotated, NoWeights, OverridesTo,
        OptIn, OwnLifecycleMembers,
    ];

    /// <summary>The descriptor of an ID.</summary>
    public static DiagnosticDescriptor ById(string id) => All.First(d => d.Id == id);
}
