using System.Collections.Immutable;
using System.Reflection;
using System.Runtime.CompilerServices;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Emit;
using NUnit.Framework;
using Quanto.Generators;
using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto.Tests.Generators;

/// <summary>Runs <see cref="QuantizeGenerator"/> in memory (CSharpGeneratorDriver) over sample sources, with the
/// framework, TorchSharp and Quanto.Runtime as references, nullable enabled, as a consumer project compiles.</summary>
internal static class GeneratorHarness
{
    private static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    /// <summary>The parse options of a project that enables the generator's interceptors, as the Quanto package's
    /// props (build/QuantoGenerator.props) do.</summary>
    public static readonly CSharpParseOptions WithInterceptors =
        ParseOptions.WithFeatures([new("InterceptorsNamespaces", "Quanto.Generated")]);

    private static readonly Lazy<ImmutableArray<MetadataReference>> References = new(() =>
    {
        string framework = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => Path.GetDirectoryName(p) == framework)
            .Append(typeof(Tensor).Assembly.Location)
            .Append(typeof(QModule).Assembly.Location);
        return [.. paths.Distinct().Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))];
    });

    /// <summary>The folder of the generator tests' sources (samples and snapshots live under it).</summary>
    public static string SourceFolder([CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;

    /// <summary>The sample files' text, by file name without extension.</summary>
    public static IReadOnlyDictionary<string, string> Samples() =>
        Directory.GetFiles(Path.Combine(SourceFolder(), "Samples"), "*.cs")
            .OrderBy(p => p, StringComparer.Ordinal)
            .ToDictionary(p => Path.GetFileNameWithoutExtension(p), File.ReadAllText);

    /// <summary>A compilation of <paramref name="sources"/> (file name -> text).</summary>
    public static CSharpCompilation Compile(IEnumerable<KeyValuePair<string, string>> sources, string name = "Samples",
        CSharpParseOptions? options = null)
    {
        var trees = sources.Select(s => CSharpSyntaxTree.ParseText(s.Value, options ?? ParseOptions, path: s.Key + ".cs"))
            .ToList();
        return CSharpCompilation.Create(name, trees, References.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary,
                nullableContextOptions: NullableContextOptions.Enable));
    }

    /// <summary>A driver for the generator, tracking steps so incrementality can be checked.</summary>
    public static GeneratorDriver Driver(CSharpParseOptions? options = null) => CSharpGeneratorDriver.Create(
        [new QuantizeGenerator().AsSourceGenerator()], parseOptions: options ?? ParseOptions,
        driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    /// <summary>Runs the generator: the driver after the run, the compilation with generated sources, and the
    /// generator's diagnostics.</summary>
    public static (GeneratorDriver Driver, Compilation Output, ImmutableArray<Diagnostic> Diagnostics) Run(
        Compilation compilation, GeneratorDriver? driver = null)
    {
        GeneratorDriver ran = (driver ?? Driver())
            .RunGeneratorsAndUpdateCompilation(compilation, out Compilation output, out ImmutableArray<Diagnostic> diagnostics);
        return (ran, output, diagnostics);
    }

    /// <summary>Emits <paramref name="output"/> (a compilation with the generated sources) and loads it; fails the
    /// test on any compiler error.</summary>
    public static Assembly Load(Compilation output)
    {
        using var stream = new MemoryStream();
        EmitResult emitted = output.Emit(stream);
        Assert.That(emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.ToString()),
            Is.Empty);
        return Assembly.Load(stream.ToArray());
    }

    /// <summary>Warnings and errors of a compilation (what TreatWarningsAsErrors would stop on).</summary>
    public static IReadOnlyList<Diagnostic> Problems(Compilation compilation) =>
        compilation.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();
}
