using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.RegularExpressions;
using ILGPU.Runtime.Cuda;
using NUnit.Framework;
using Quanto.Kernels.Ilgpu.Kernels;

namespace Quanto.Tests.Kernels.Ilgpu;

/// <summary>
/// The CUDA evidence without a GPU: every kernel compiles to PTX for sm_75, sm_80, sm_86, sm_89 and sm_90 through
/// ILGPU's PTX backend, and the PTX has the properties the kernels were written for. One snapshot per kernel, checked
/// in beside this file so codegen changes show in review, holds for each architecture what does not depend on the
/// build configuration (<see cref="Summary"/>): Debug and Release IL compile to PTX whose block layout, predicates and
/// register counts differ, but whose loads, stores, barriers and arithmetic are the same. A mismatch writes a
/// .received.txt file next to it.
/// </summary>
[TestFixture]
public sealed partial class PtxTests
{
    private PtxCompiler? _compiler;

    [OneTimeSetUp]
    public void CreateCompiler() => _compiler = new PtxCompiler();

    [OneTimeTearDown]
    public void DisposeCompiler() => _compiler?.Dispose();

    private static IEnumerable<TestCaseData> Cases() =>
        from entry in KernelCatalog.All
        from arch in PtxCompiler.Targets
        select new TestCaseData(entry.Name, arch).SetName($"{entry.Name}_sm_{arch.Major}{arch.Minor}");

    [TestCaseSource(nameof(Cases))]
    public void CompilesWithExpectedProperties(string name, CudaArchitecture architecture)
    {
        KernelEntry entry = KernelCatalog.All.Single(e => e.Name == name);
        string ptx = _compiler!.Compile(entry, architecture);

        // ILGPU 1.5.3 writes .target sm_80 for every architecture from sm_80 up (asked for sm_89 or sm_90 it still
        // emits PTX ISA 7.8 but targets sm_80, which those GPUs JIT); the test pins that so a change is noticed.
        string target = architecture.Major >= 8 ? "sm_80" : $"sm_{architecture.Major}{architecture.Minor}";
        Assert.That(ptx, Does.Contain($".target {target}\n"));
        CudaInstructionSet isa = PtxCompiler.InstructionSetFor(architecture);
        Assert.That(ptx, Does.Contain($".version {isa.Major}.{isa.Minor}\n"));
        Assert.That(EntryRegex().Matches(ptx), Has.Count.EqualTo(1), "exactly one kernel entry");
        // The 16-byte Chunk16 load of the weights, one per lane per step.
        Assert.That(ptx, Does.Contain("ld.global.v4."), "128-bit vector load of the weight chunk");
        Assert.That(ptx, Does.Contain("ld.shared."), "x is read from the shared-memory tile");
        Assert.That(ptx, Does.Contain("bar.sync"), "group barriers around the tile and the reduction");
        if (entry.IsW8A8)
        {
            Assert.That(ptx, Does.Contain("dp4a.s32.s32"), "W8A8 uses dp4a on CUDA");
            // CudaAsm's out-parameter is lowered through a 4-byte local slot per call site, stored and reloaded at
            // once (ptxas keeps such slots in registers); anything larger would be a real spill.
            Assert.That(LocalDeclRegex().Matches(ptx).Select(m => m.Groups[1].Value), Is.All.EqualTo("4"));
            Assert.That(LocalDeclRegex().Matches(ptx), Has.Count.LessThanOrEqualTo(CountOf(ptx, "dp4a.s32.s32")));
        }
        else
        {
            Assert.That(ptx, Does.Not.Contain("dp4a"));
            Assert.That(ptx, Does.Not.Contain(".local"), "no local memory (no spills, no arrays)");
        }
    }

    [TestCaseSource(nameof(SnapshotCases))]
    public void MatchesSnapshot(string name)
    {
        KernelEntry entry = KernelCatalog.All.Single(e => e.Name == name);
        var summary = new StringBuilder();
        foreach (CudaArchitecture architecture in PtxCompiler.Targets)
        {
            summary.Append(CultureInfo.InvariantCulture, $"== sm_{architecture.Major}{architecture.Minor}\n");
            summary.Append(Summary(_compiler!.Compile(entry, architecture)));
        }
        string actual = summary.ToString();
        string directory = Path.Combine(SourceDirectory(), "Ptx");
        string verified = Path.Combine(directory, $"{name}.verified.txt");
        string received = Path.Combine(directory, $"{name}.received.txt");
        string? expected = File.Exists(verified) ? File.ReadAllText(verified) : null;
        if (expected == actual)
        {
            File.Delete(received);
            return;
        }
        Directory.CreateDirectory(directory);
        File.WriteAllText(received, actual);
        Assert.Fail(expected is null
            ? $"No snapshot for {name}; review {received} and rename it to .verified.txt."
            : $"PTX of {name} changed; diff {received} against {verified} and replace it if intended.");
    }

    /// <summary>
    /// What a kernel's PTX is made of, independent of the IL's build configuration: the PTX version and target, the
    /// entry's parameters and its shared and local declarations, then how often each instruction occurs, leaving out
    /// control flow and predicate logic (bra, setp, selp, mov, and any .pred operation), which the Release IL's
    /// different block order changes.
    /// </summary>
    internal static string Summary(string ptx)
    {
        var text = new StringBuilder();
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (string raw in Normalize(ptx).Split('\n'))
        {
            string line = raw.Trim();
            if (DeclarationRegex().IsMatch(line))
            {
                text.Append(line).Append('\n');
                continue;
            }
            Match op = InstructionRegex().Match(line);
            if (!op.Success) continue;
            string opcode = op.Groups[1].Value;
            if (opcode.Split('.')[0] is "bra" or "setp" or "selp" or "mov" || opcode.Contains(".pred")) continue;
            counts[opcode] = counts.GetValueOrDefault(opcode) + 1;
        }
        foreach (var (opcode, count) in counts)
            text.Append(CultureInfo.InvariantCulture, $"{opcode} {count}\n");
        return text.ToString();
    }

    private static IEnumerable<string> SnapshotCases() => KernelCatalog.All.Select(e => e.Name);

    /// <summary>ILGPU numbers parameters and labels from a context-wide counter, so the numbers depend on what was
    /// compiled before; renumber them in order of appearance.</summary>
    private static string Normalize(string ptx)
    {
        var numbers = new Dictionary<string, int>();
        string renumbered = SuffixRegex().Replace(ptx, m =>
        {
            if (!numbers.TryGetValue(m.Groups[1].Value, out int n)) numbers[m.Groups[1].Value] = n = numbers.Count;
            return "_" + n;
        });
        return renumbered.ReplaceLineEndings("\n");
    }

    private static int CountOf(string text, string value) => Regex.Matches(text, Regex.Escape(value)).Count;

    private static string SourceDirectory([CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;

    [GeneratedRegex(@"\.entry\s+\w+")]
    private static partial Regex EntryRegex();

    [GeneratedRegex(@"\.local\s+\.align\s+\d+\s+\.b8\s+\w+\[(\d+)\]")]
    private static partial Regex LocalDeclRegex();

    [GeneratedRegex(@"(?<!\bsm)_(\d+)\b")]
    private static partial Regex SuffixRegex();

    [GeneratedRegex(@"^(\.version|\.target|\.address_size|\.visible|\.param|\.shared|\.local)\b")]
    private static partial Regex DeclarationRegex();

    [GeneratedRegex(@"^(?:@!?%p\d+\s+)?([a-z][\w.]*)\s")]
    private static partial Regex InstructionRegex();
}
