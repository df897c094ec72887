using NUnit.Framework;
using TorchSharp;

namespace Quanto.Tests;

public sealed class QTypeTests
{
    [TestCase(QType.QInt2, "qint2", 2, false, -2, 1)]
    [TestCase(QType.QInt4, "qint4", 4, false, -8, 7)]
    [TestCase(QType.QInt8, "qint8", 8, false, -128, 127)]
    [TestCase(QType.QFloat8E4M3Fn, "qfloat8_e4m3fn", 8, true, -448, 448)]
    [TestCase(QType.QFloat8E5M2, "qfloat8_e5m2", 8, true, -57344, 57344)]
    [TestCase(QType.QFloat8E4M3Fnuz, "qfloat8_e4m3fnuz", 8, true, -240, 240)]
    public void CatalogueMatchesOptimumQuanto(QType qtype, string name, int bits, bool isFloat, double qmin, double qmax)
    {
        QTypeInfo info = qtype.Info();
        Assert.Multiple(() =>
        {
            Assert.That(info.Name, Is.EqualTo(name));
            Assert.That(info.Bits, Is.EqualTo(bits));
            Assert.That(info.IsFloat, Is.EqualTo(isFloat));
            Assert.That(info.QMin, Is.EqualTo(qmin));
            Assert.That(info.QMax, Is.EqualTo(qmax));
            Assert.That(QTypes.Parse(name), Is.EqualTo(qtype));
        });
    }

    [Test]
    public void Float8StorageIdsAreLibtorchs()
    {
        // libtorch's ScalarType ids: 23 = Float8_e5m2, 24 = Float8_e4m3fn, 26 = Float8_e4m3fnuz.
        Assert.Multiple(() =>
        {
            Assert.That((int)QType.QFloat8E5M2.Info().Storage, Is.EqualTo(23));
            Assert.That((int)QType.QFloat8E4M3Fn.Info().Storage, Is.EqualTo(24));
            Assert.That((int)QType.QFloat8E4M3Fnuz.Info().Storage, Is.EqualTo(26));
            Assert.That(QType.QInt8.Info().Storage, Is.EqualTo(torch.ScalarType.Int8));
        });
    }

    [Test]
    public void QFloat8IsTheE4M3FnAlias() => Assert.That(QTypes.Parse("qfloat8"), Is.EqualTo(QType.QFloat8E4M3Fn));

    [TestCase("qint3")]
    [TestCase("QINT4")]
    [TestCase("")]
    [TestCase("none")]
    public void UnknownNamesAreAClearError(string name)
    {
        var error = Assert.Throws<FormatException>(() => QTypes.Parse(name))!;
        Assert.That(error.Message, Does.Contain($"'{name}'").And.Contain("qint4").And.Contain("qfloat8_e5m2"));
        Assert.That(QTypes.TryParse(name, out _), Is.False);
    }

    [Test]
    public void UndefinedEnumValueIsRejected()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => default(QType).Info())!;
        Assert.That(error.Message, Does.Contain("QInt4"));
    }

    [Test]
    public void AllListsEveryQTypeOnce() =>
        Assert.That(QTypes.All, Is.EquivalentTo(Enum.GetValues<QType>()).And.Unique);
}
