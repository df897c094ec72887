using NUnit.Framework;
using Quanto.Native;
using Quanto.Tests.Readme;
using Quanto.Tests.TestSupport;

namespace Quanto.Tests.Native;

/// <summary>
/// A user's console app outside this repository, with a ProjectReference to Quanto.Runtime.csproj: no
/// Directory.Build.targets and no package buildTransitive reach it, so its build output holds TorchSharp's library
/// exactly as NuGet ships it. Built once (offline, from the NuGet cache) and run three ways: without the fix
/// TorchSharp fails to load on a system whose libstdc++ is too old; with it, Quanto.Runtime's module initializer
/// patches the app's copy before the first torch call; in copy mode the app's copy stays as shipped and a patched copy
/// is loaded from the cache folder. The NuGet cache's file is never written.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class ProjectReferenceLoaderTests
{
    /// <summary>README's line for programs that call TorchSharp before Quanto.</summary>
    private const string ReadmeLine =
        "Quanto.TorchEnvironment.PrepareTorchSharpNative(); // before the first torch call; says what it did";

    // Default: Quanto code runs first (a QType), then TorchSharp. "explicit": README's call, then TorchSharp.
    // [1 2; 3 4] x [5 6; 7 8] = [19 22; 43 50].
    private const string ProgramSource = $$"""
        using static TorchSharp.torch;

        if (args is ["explicit"]) Explicit.Run();
        else Implicit.Run();
        Console.WriteLine("FIX " + Quanto.TorchEnvironment.PrepareTorchSharpNative().Action);

        static class Implicit
        {
            public static void Run()
            {
                Console.WriteLine("QTYPE " + Quanto.QType.QInt4);
                Torch.Multiply();
            }
        }

        static class Explicit
        {
            public static void Run()
            {
                {{ReadmeLine}}
                Torch.Multiply();
            }
        }

        static class Torch
        {
            public static void Multiply()
            {
                using Tensor a = tensor(new float[] { 1, 2, 3, 4 }, [2, 2]);
                using Tensor b = tensor(new float[] { 5, 6, 7, 8 }, [2, 2]);
                Console.WriteLine("MM " + string.Join(" ", mm(a, b).data<float>().ToArray()));
            }
        }
        """;

    private string _work = "";
    private string _appCopy = "";
    private string _shipped = "";
    private string _output = "";
    private string _app = "";
    private byte[] _shippedBytes = [];

    [OneTimeSetUp]
    public void BuildTheApp()
    {
        _shipped = GlibcxxVersionsTests.NuGetLibTorchSharp();
        _shippedBytes = File.ReadAllBytes(_shipped);
        _work = Path.Combine(Path.GetTempPath(), "quanto-projectref-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_work);
        string root = ChildProcess.RepositoryRoot();
        string configuration = new DirectoryInfo(TestContext.CurrentContext.TestDirectory).Parent!.Name;
        string cache = GlibcxxVersionsTests.NuGetPackages();
        File.WriteAllText(Path.Combine(_work, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="cache" value="{cache}" />
              </packageSources>
            </configuration>
            """);
        string libtorch = LibtorchVersion();
        File.WriteAllText(Path.Combine(_work, "App.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <ProjectReference Include="{Path.Combine(root, "Quanto.Runtime", "Quanto.Runtime.csproj")}" />
                <PackageReference Include="libtorch-cpu-linux-x64" Version="{libtorch}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(_work, "Program.cs"), ProgramSource);
        // Quanto.Runtime is already built in this configuration (this test project references it): not rebuilt, so
        // a concurrent build of the solution is not disturbed.
        (int code, string output) = Run("dotnet",
            $"build -c {configuration} --no-dependencies -p:RestoreRecursive=false", [], TimeSpan.FromMinutes(5));
        Assert.That(code, Is.Zero, output);
        _output = Path.Combine(_work, "bin", configuration, "net10.0");
        _app = Path.Combine(_output, "App");
        _appCopy = Path.Combine(_output, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.That(File.ReadAllBytes(_appCopy), Is.EqualTo(_shippedBytes),
            "no build step patched the app's copy (the situation the run-time fix is for)");
    }

    [OneTimeTearDown]
    public void CleanUp()
    {
        if (Directory.Exists(_work)) Directory.Delete(_work, recursive: true);
    }

    [SetUp]
    public void RestoreTheShippedLibrary()
    {
        GlibcxxVersions.WriteReplacing(_appCopy, _shippedBytes);
        // TorchSharp's fallback after a failed load copies every native library here (half a gigabyte).
        string consolidated = Path.Combine(_output, "cpu");
        if (Directory.Exists(consolidated)) Directory.Delete(consolidated, recursive: true);
    }

    [Test]
    public void WithoutTheFixTorchSharpFailsToLoad()
    {
        RequireOldLibStdCxx();
        (int code, string output) = Run(_app, "", new() { [TorchSharpNativeLoader.SkipVariable] = "1" },
            TimeSpan.FromMinutes(2));
        Assert.That(code, Is.Not.Zero, output);
        Assert.That(output, Does.Contain("doesn't contain a reference to libtorch-cpu-linux-x64"));
    }

    [Test]
    public void TheModuleInitializerPatchesTheAppsOwnCopyBeforeTorchSharpLoads()
    {
        List<string> unmet = RequireOldLibStdCxx();
        (int code, string output) = Run(_app, "", [], TimeSpan.FromMinutes(2));
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.Contain("QTYPE QInt4").And.Contain("MM 19 22 43 50"));
        Assert.That(output, Does.Contain("FIX " + TorchSharpNativeAction.PatchedInPlace));
        var expected = GlibcxxVersionsTests.ReadelfNeeds(_shipped)
            .Select(n => (n.Name, n.Weak || unmet.Contains(n.Name))).ToList();
        Assert.That(GlibcxxVersionsTests.ReadelfNeeds(_appCopy), Is.EqualTo(expected));
        Assert.That(File.ReadAllBytes(_shipped), Is.EqualTo(_shippedBytes), "the NuGet cache is never written");
    }

    [Test]
    public void ReadmesEntryPointPreparesTheLibraryBeforeTheFirstTorchCall()
    {
        Assert.That(ReadmeText.Shows([ReadmeLine]), "README shows the line this app runs");
        RequireOldLibStdCxx();
        (int code, string output) = Run(_app, "explicit", [], TimeSpan.FromMinutes(2));
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.Contain("MM 19 22 43 50").And.Contain("FIX " + TorchSharpNativeAction.PatchedInPlace));
    }

    [Test]
    public void CopyModeLoadsAPatchedCopyAndLeavesTheAppsCopyAsShipped()
    {
        RequireOldLibStdCxx();
        string userCache = Path.Combine(_work, "xdg");
        (int code, string output) = Run(_app, "",
            new() { [TorchSharpNativeLoader.ModeVariable] = "copy", ["XDG_CACHE_HOME"] = userCache },
            TimeSpan.FromMinutes(2));
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.Contain("MM 19 22 43 50"));
        Assert.That(output, Does.Contain("FIX " + TorchSharpNativeAction.LoadedPatchedCopy));
        Assert.That(File.ReadAllBytes(_appCopy), Is.EqualTo(_shippedBytes));
        string copy = Directory.GetFiles(userCache, "libLibTorchSharp.so", SearchOption.AllDirectories).Single();
        Assert.That(GlibcxxVersionsTests.ReadelfNeeds(copy).Where(n => n.Name == "GLIBCXX_3.4.32").Single().Weak);
    }

    /// <summary>The GLIBCXX needs of the shipped library that this system's libstdc++ lacks (readelf's view); the
    /// test is moot where there are none.</summary>
    private List<string> RequireOldLibStdCxx()
    {
        HashSet<string>? provided = GlibcxxVersions.ReadProvided(GlibcxxVersions.SystemLibStdCxx);
        List<string> unmet = GlibcxxVersionsTests.ReadelfNeeds(_shipped)
            .Where(n => !n.Weak && n.Name.StartsWith("GLIBCXX_", StringComparison.Ordinal) &&
                        provided?.Contains(n.Name) == false)
            .Select(n => n.Name).ToList();
        if (unmet.Count == 0) Assert.Ignore("this system's libstdc++ provides every version TorchSharp needs");
        return unmet;
    }

    /// <summary>The libtorch package version this test project restored (from its deps.json).</summary>
    private static string LibtorchVersion()
    {
        string deps = File.ReadAllText(Path.ChangeExtension(typeof(ProjectReferenceLoaderTests).Assembly.Location,
            ".deps.json"));
        const string key = "\"libtorch-cpu-linux-x64/";
        int at = deps.IndexOf(key, StringComparison.Ordinal) + key.Length;
        return deps[at..deps.IndexOf('"', at)];
    }

    /// <summary>Runs the dotnet CLI or the app in the work folder, never with the fix's switches of this process.
    /// </summary>
    private (int Code, string Output) Run(string file, string arguments, Dictionary<string, string?> environment,
        TimeSpan timeout)
    {
        environment.TryAdd(TorchSharpNativeLoader.SkipVariable, null);
        environment.TryAdd(TorchSharpNativeLoader.ModeVariable, null);
        return ChildProcess.Run(file, arguments, _work, timeout, environment);
    }
}
