using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Quanto.Generators;

/// <summary>
/// The ahead-of-time quantization generator: for each class annotated with <c>[Quanto.Quantize]</c> it writes
/// <c>&lt;Class&gt;.Quantized.g.cs</c> with the quantized twins of its layers, <c>ForwardQuantized</c> (its forward
/// rewritten with explicit quant stub, quantized op and dequant stub per layer), <c>Quantize</c>, <c>Calibrate</c>,
/// <c>Freeze</c>, <c>QuantizedModules</c>, <c>SaveQuantized</c>/<c>LoadQuantized</c> and a compile-time
/// <c>QuantizationMap</c>. Pipeline models hold strings and equatable arrays only, so unrelated edits stay cached.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class QuantizeGenerator : IIncrementalGenerator
{
    /// <summary>Tracking names of the pipeline steps (for incrementality tests).</summary>
    public static class Steps
    {
        /// <summary>Annotated classes parsed into models and diagnostics.</summary>
        public const string Parse = nameof(Parse);

        /// <summary>Models ready to emit, with the serialization switch.</summary>
        public const string Emit = nameof(Emit);
    }

    /// <summary>True when the parse options list Quanto.Generated among the namespaces that may hold interceptors
    /// (MSBuild InterceptorsNamespaces; the older InterceptorsPreviewNamespaces too).</summary>
    internal static bool InterceptorsEnabled(ParseOptions options)
    {
        foreach (string feature in new[] { "InterceptorsNamespaces", "InterceptorsPreviewNamespaces" })
        {
            if (options.Features.TryGetValue(feature, out string? namespaces) &&
                namespaces.Split(';', ',').Any(n => n.Trim() == InterceptorEmitter.Namespace))
            {
                return true;
            }
        }
        return false;
    }

    /// <inheritdoc />
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        IncrementalValuesProvider<ParseResult> parsed = context.SyntaxProvider
            .ForAttributeWithMetadataName(QuantizeSettings.AttributeName,
                static (node, _) => node is ClassDeclarationSyntax,
                static (ctx, cancellation) => Parser.Parse(ctx, cancellation))
            .WithTrackingName(Steps.Parse);

        // Model-level save/load lives in Quanto.Runtime's Serialization; emit it where the runtime has it.
        IncrementalValueProvider<bool> withSerialization = context.CompilationProvider
            .Select(static (compilation, _) =>
                compilation.GetTypeByMetadataName("Quanto.Serialization.QuantizedModel") is not null);

        context.RegisterSourceOutput(parsed.Select(static (r, _) => r.Diagnostics), static (spc, diagnostics) =>
        {
            foreach (DiagnosticInfo diagnostic in diagnostics) spc.ReportDiagnostic(diagnostic.ToDiagnostic());
        });

        IncrementalValuesProvider<(ClassModel Model, bool Serialization)> models = parsed
            .Where(static r => r.Model is not null)
            .Select(static (r, _) => r.Model!)
            .Combine(withSerialization)
            .WithTrackingName(Steps.Emit);
        context.RegisterSourceOutput(models, static (spc, item) =>
            spc.AddSource($"{item.Model.FullName}.Quantized.g.cs", Emitter.Emit(item.Model, item.Serialization)));

        // Interceptors only where the compilation allows them in Quanto.Generated (else CS9137 would stop it).
        IncrementalValueProvider<bool> interceptors = context.ParseOptionsProvider
            .Select(static (options, _) => InterceptorsEnabled(options));
        context.RegisterSourceOutput(models.Select(static (m, _) => m.Model).Combine(interceptors),
            static (spc, item) =>
            {
                if (item.Right && item.Left.Intercepts.Count > 0)
                    spc.AddSource($"{item.Left.FullName}.Interceptors.g.cs", InterceptorEmitter.Emit(item.Left));
            });
    }
}
