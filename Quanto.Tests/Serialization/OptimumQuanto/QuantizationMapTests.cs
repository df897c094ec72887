using NUnit.Framework;
using Quanto.Serialization;

namespace Quanto.Tests.Serialization;

public class QuantizationMapTests
{
    [Test]
    public void ParsesOptimumQuantoMaps()
    {
        // As optimum-quanto's quantization_map() + json.dump writes it.
        const string json = """
            {"model.fc1": {"weights": "qint4", "activations": "none"},
             "model.fc2": {"weights": "qfloat8", "activations": "qint8"},
             "lm_head": {"weights": "none", "activations": "qfloat8_e5m2"}}
            """;
        QuantizationMap map = QuantizationMap.Parse(json, "quanto_qmap.json");
        Assert.That(map.Modules.Keys, Is.EqualTo(new[] { "model.fc1", "model.fc2", "lm_head" }));
        Assert.That(map["model.fc1"], Is.EqualTo(new QuantizationSpec(QType.QInt4, null)));
        Assert.That(map["model.fc2"], Is.EqualTo(new QuantizationSpec(QType.QFloat8E4M3Fn, QType.QInt8)));
        Assert.That(map["lm_head"], Is.EqualTo(new QuantizationSpec(null, QType.QFloat8E5M2)));
    }

    [Test]
    public void WritesTheSameShapeOfJsonAndRoundTrips()
    {
        string folder = SerializationTestUtil.NewFolder();
        try
        {
            var map = new QuantizationMap
            {
                { "a", new QuantizationSpec(QType.QInt2, null) },
                { "b.c", new QuantizationSpec(QType.QFloat8E4M3Fnuz, QType.QFloat8E4M3Fn) },
            };
            string path = Path.Combine(folder, QuantizationMap.FileName);
            map.Save(path);
            var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
            Assert.That((string)node["a"]!["weights"]!, Is.EqualTo("qint2"));
            Assert.That((string)node["a"]!["activations"]!, Is.EqualTo("none"));
            Assert.That((string)node["b.c"]!["weights"]!, Is.EqualTo("qfloat8_e4m3fnuz"));
            QuantizationMap back = QuantizationMap.Load(path);
            Assert.That(back.ToList(), Is.EqualTo(map.ToList()));
        }
        finally
        {
            Directory.Delete(folder, true);
        }
    }

    [Test]
    public void UnknownQTypeNameIsAClearError()
    {
        var e = Assert.Throws<QuantoFormatException>(() => QuantizationMap.Parse(
            """{"fc": {"weights": "qint3", "activations": "none"}}""", "quanto_qmap.json"))!;
        Assert.That(e.Message, Does.StartWith("quanto_qmap.json: module 'fc': unknown weights qtype 'qint3'"));
        Assert.That(e.Message, Does.Contain("qint4").And.Contain("none"));
    }

    [Test]
    public void MalformedMapsAreFormatErrors()
    {
        Assert.Throws<QuantoFormatException>(() => QuantizationMap.Parse("{", "m.json"));
        Assert.Throws<QuantoFormatException>(() => QuantizationMap.Parse("[]", "m.json"));
        Assert.Throws<QuantoFormatException>(() => QuantizationMap.Parse("""{"fc": "qint4"}""", "m.json"));
        var e = Assert.Throws<QuantoFormatException>(
            () => QuantizationMap.Parse("""{"fc": {"weights": "qint4"}}""", "m.json"))!;
        Assert.That(e.Message, Does.Contain("'activations' is missing"));
    }
}
