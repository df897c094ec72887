using System.Diagnostics;
using NUnit.Framework;

namespace Quanto.Tests.TestSupport;

/// <summary>Runs the dotnet CLI or a built program as a child process, for tests that build projects outside the
/// solution (package consumers, a ProjectReference user).</summary>
internal static class ChildProcess
{
    /// <summary>Runs <paramref name="file"/> in <paramref name="directory"/> and returns its exit code and its
    /// standard output followed by its standard error; fails the test when it outlives <paramref name="timeout"/>.
    /// Variables in <paramref name="environment"/> are set, or removed where the value is null.
    /// </summary>
    public static (int Code, string Output) Run(string file, string arguments, string directory, TimeSpan timeout,
        IReadOnlyDictionary<string, string?>? environment = null)
    {
        var start = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        foreach ((string name, string? value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        }
        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"`{file} {arguments}` did not finish within {timeout}.");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>The folder holding quanto.sln, above the test assembly.</summary>
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "quanto.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("quanto.sln not found above the test directory.");
    }
}
