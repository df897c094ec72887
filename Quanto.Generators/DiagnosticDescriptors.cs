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
        "'{0}' is used in forward in a way ForwardQuantized cannot follow (only '{0}.forward(x)' and '{0}.call(x)' " +
        "are rewritten); this use stays float",
        Category, DiagnosticSeverity.Warning, true,
        "Call the layer directly in forward, or mark it [NoQuantize] to keep it float on purpose.");

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

    /// <summary>All descriptors, in ID order.</summary>
    public static IReadOnlyList<DiagnosticDescriptor> All { get; } =
    [
        NotPartial, NoForward, UnsupportedField, BadGroup, GroupIgnored, PackedActivations, UnfollowedUse, NotModule,
        DisposeWithoutTwins,
    ];

    /// <summary>The descriptor of an ID.</summary>
    public static DiagnosticDescriptor ById(string id) => All.First(d => d.Id == id);
}
