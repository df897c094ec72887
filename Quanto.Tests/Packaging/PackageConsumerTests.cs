using System.Globalization;
using NUnit.Framework;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Packaging;

/// <summary>
/// `dotnet pack` gives packages a user's own project can consume: a project outside the solution restores Quanto from
/// the packed folder, declares a [Quantize] model, builds warning-free with TreatWarningsAsErrors and nullable, and its
/// ForwardQuantized equals the in-solution result; the packed CLI installs as a tool; a generator diagnostic fails the
/// consumer's build. Versions carry a unique prerelease suffix so the global package cache never serves a stale copy.
/// </summary>
[TestFixture]
[Category("Packaging")]
[NonParallelizable]
public sealed class PackageConsumerTests
{
    private const string ModelSource = """
        using TorchSharp.Modules;
        using static Quanto.QType;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        namespace Consumer;

        [Quanto.Quantize(Weights = QInt4)]
        public partial class ConsumerNet : Module<Tensor, Tensor>
        {
            private readonly Linear fc1;
            private readonly Linear fc2;

            public ConsumerNet() : base(nameof(ConsumerNet))
            {
                fc1 = Linear(256, 64);
                fc2 = Linear(64, 10);
                RegisterComponents();
            }

            public override Tensor forward(Tensor x) => fc2.forward(functional.relu(fc1.forward(x)));
        }
        """;

    private const string ProgramSource = """
        using System.Globalization;
        using Consumer;
        using static TorchSharp.torch;

        random.manual_seed(7);
        var model = new ConsumerNet();
        model.eval();
        model.Quantize();
        model.Freeze();
        using var noGrad = no_grad();
        Tensor x = randn(3, 256);
        float[] y = model.ForwardQuantized(x).data<float>().ToArray();
        Console.WriteLine("OUTPUT " + string.Join(" ", y.Select(v => v.ToString("R", CultureInfo.InvariantCulture))));
        """;

    private string _work = "";
    private string _packages = "";
    private string _version = "";

    [OneTimeSetUp]
    public void Pack()
    {
        _work = Path.Combine(Path.GetTempPath(), "quanto-packaging-" + Guid.NewGuid().ToString("N"));
        _packages = Path.Combine(_work, "packages");
        Directory.CreateDirectory(_packages);
        string suffix = "test" + DateTime.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture);
        _version = "0.1.0-" + suffix;
        string root = ChildProcess.RepositoryRoot();
        foreach (string project in new[] { "Quanto.Runtime", "Quanto.Cli" })
        {
            Run("dotnet", $"pack {Path.Combine(root, project)} -c Release -o {_packages} -p:VersionSuffix={suffix}",
                root, TimeSpan.FromMinutes(6));
        }
    }

    [OneTimeTearDown]
    public void CleanUp()
    {
        if (Directory.Exists(_work)) Directory.Delete(_work, recursive: true);
        string cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (string id in new[] { "quanto", "quanto.cli" })
        {
            string stale = Path.Combine(cache, id, _version);
            if (Directory.Exists(stale)) Directory.Delete(stale, recursive: true);
        }
    }

    [Test]
    public void ConsumerBuildsWarningFreeAndMatchesTheSolution()
    {
        string dir = Consumer("ok", ModelSource, ProgramSource);
        (int code, string output) = Run("dotnet", "run -c Release", dir, TimeSpan.FromMinutes(6), check: false);
        Assert.That(code, Is.Zero, output);
        string line = output.Split('\n').Single(l => l.StartsWith("OUTPUT ", StringComparison.Ordinal));
        float[] consumer = line["OUTPUT ".Length..].Trim().Split(' ')
            .Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray();

        random.manual_seed(7);
        using var model = new ConsumerNet();
        model.eval();
        model.Quantize();
        model.Freeze();
        using var noGrad = no_grad();
        using Tensor x = randn(3, 256);
        float[] expected = model.ForwardQuantized(x).data<float>().ToArray();
        Assert.That(consumer, Is.EqualTo(expected));
    }

    [Test]
    public void GeneratorDiagnosticIsABuildErrorInTheConsumer()
    {
        string dir = Consumer("diagnostic", ModelSource.Replace("public partial class", "public class"), ProgramSource);
        (int code, string output) = Run("dotnet", "build -c Release", dir, TimeSpan.FromMinutes(6), check: false);
        Assert.That(code, Is.Not.Zero);
        Assert.That(output, Does.Contain("QNT001").And.Contain("ConsumerNet"));
    }

    [Test]
    public void CliInstallsAsADotnetTool()
    {
        string tools = Path.Combine(_work, "tools");
        Run("dotnet", $"tool install Quanto.Cli --version {_version} --tool-path {tools} --add-source {_packages}",
            _work, TimeSpan.FromMinutes(4));
        (int code, string output) = Run(Path.Combine(tools, "quanto"), "--help", _work, TimeSpan.FromMinutes(1),
            check: false);
        Assert.That(code, Is.Zero, output);
        Assert.That(output, Does.Contain("quantize").And.Contain("inspect"));
    }

    private string Consumer(string name, string model, string program)
    {
        string dir = Path.Combine(_work, name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="local" value="{_packages}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(dir, "Consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Quanto" Version="{_version}" />
                <PackageReference Include="libtorch-cpu-linux-x64" Version="2.10.0" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(dir, "ConsumerNet.cs"), model);
        File.WriteAllText(Path.Combine(dir, "Program.cs"), program);
        return dir;
    }

    private static (int Code, string Output) Run(string file, string arguments, string directory, TimeSpan timeout,
        bool check = true)
    {
        (int code, string output) = ChildProcess.Run(file, arguments, directory, timeout);
        if (check) Assert.That(code, Is.Zero, $"`{file} {arguments}` failed:\n{output}");
        return (code, output);
    }
}
