using NUnit.Framework;
using Quanto.Cli;

namespace Quanto.Tests.Cli;

public class CliErrorTests
{
    private CliFixture _fixture = null!;

    [SetUp]
    public void Create() => _fixture = new CliFixture();

    [TearDown]
    public void Delete() => _fixture.Dispose();

    [Test]
    public void HelpReadsWell()
    {
        var (code, stdout, _) = CliFixture.Run("--help");
        Assert.That(code, Is.Zero);
        Assert.That(stdout, Does.Contain("quanto quantize INPUT -o OUTPUT --weights QTYPE").And.Contain("quanto inspect"));
        (code, stdout, _) = CliFixture.Run("quantize", "--help");
        Assert.That(code, Is.Zero);
        Assert.That(stdout, Does.Contain("--exclude PATTERN").And.Contain("--format safetensors|qnt"));
        Assert.That(CliFixture.Run().Out, Is.EqualTo(CliApp.MainHelp + Environment.NewLine));
    }

    [TestCase(new[] { "frobnicate" }, "unknown command 'frobnicate'")]
    [TestCase(new[] { "quantize", "IN", "-o", "x.qnt", "--weights", "qint3" },
        "unknown qtype 'qint3'; valid: qint2, qint4, qint8, qfloat8_e4m3fn")]
    [TestCase(new[] { "quantize", "IN", "-o", "x.qnt", "-w", "qint4", "--group", "100" },
        "bad group size '100': use a positive multiple of 8")]
    [TestCase(new[] { "quantize", "IN", "-o", "x.qnt", "-w", "qint4", "--group", "-8" },
        "bad group size '-8'")]
    [TestCase(new[] { "quantize", "IN", "-o", "x.qnt", "-w", "qint8", "--group", "64" },
        "--group applies to qint2/qint4")]
    [TestCase(new[] { "quantize", "IN", "-o", "x.qnt", "-w", "qint4", "--optimizer", "gptq" },
        "unknown optimizer 'gptq'")]
    [TestCase(new[] { "quantize", "IN", "-o", "x.bin", "-w", "qint4" }, "the output must be a *.safetensors")]
    [TestCase(new[] { "quantize", "IN", "-o", "x.safetensors", "-w", "qint4", "--format", "qnt" },
        "--format qnt writes a .qnt file")]
    [TestCase(new[] { "quantize", "IN", "-w", "qint4" }, "quantize needs an output: -o OUT")]
    [TestCase(new[] { "quantize", "IN", "-o", "x.qnt" }, "quantize needs a weight qtype")]
    [TestCase(new[] { "quantize", "IN", "-o", "x.qnt", "-w", "qint4", "--bits", "4" }, "unknown option '--bits'")]
    [TestCase(new[] { "quantize", "IN", "-o" }, "option --output needs a value")]
    public void UsageErrorsExitWithTwoAndSayWhatIsWrong(string[] args, string message)
    {
        var (code, stdout, stderr) = CliFixture.Run(args);
        Assert.That(code, Is.EqualTo(ExitCodes.Usage), stdout + stderr);
        Assert.That(stderr, Does.Contain(message));
        Assert.That(stderr, Does.Contain("quanto --help"));
    }

    [Test]
    public void AMissingInputExitsWithOne()
    {
        var (code, _, stderr) = CliFixture.Run("quantize", _fixture.PathOf("nope.safetensors"), "-o",
            _fixture.PathOf("o.qnt"), "-w", "qint8");
        Assert.That(code, Is.EqualTo(ExitCodes.BadInput));
        Assert.That(stderr, Does.Contain("nope.safetensors: no such file or folder"));
    }

    [Test]
    public void ACorruptInputReportsTheFormatError()
    {
        string bad = _fixture.PathOf("bad.safetensors");
        byte[] bytes = File.ReadAllBytes(_fixture.Input);
        File.WriteAllBytes(bad, bytes.AsSpan(0, bytes.Length - 100).ToArray());
        var (code, _, stderr) = CliFixture.Run("quantize", bad, "-o", _fixture.PathOf("o.qnt"), "-w", "qint8");
        Assert.That(code, Is.EqualTo(ExitCodes.BadInput));
        Assert.That(stderr, Does.StartWith("quanto: error: " + bad + ":"));
        Assert.That(File.Exists(_fixture.PathOf("o.qnt")), Is.False);
    }

    [Test]
    public void NothingToQuantizeIsAnError()
    {
        var (code, _, stderr) = CliFixture.Run("quantize", _fixture.Input, "-o", _fixture.PathOf("o.qnt"), "-w",
            "qint8", "--include", "nothing.matches");
        Assert.That(code, Is.EqualTo(ExitCodes.BadInput));
        Assert.That(stderr, Does.Contain("nothing to quantize"));
    }
}
