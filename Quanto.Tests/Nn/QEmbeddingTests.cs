using NUnit.Framework;
using Quanto.Nn;
using Quanto.Tensors;
using Quanto.Tests.TestSupport;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Tests.Nn;

/// <summary>QEmbedding lookups against libtorch's float Embedding at the dequantized table, and hand-made tables
/// whose quantization is exact.</summary>
public sealed class QEmbeddingTests
{
    // (rows, dim, qtype, expected group): dim 384 -> 128, 160 -> 32 (the fallback), 96 -> one group per row.
    [TestCase(50, 384, QType.QInt4, 128)]
    [TestCase(37, 160, QType.QInt4, 32)]
    [TestCase(21, 96, QType.QInt2, 96)]
    [TestCase(64, 256, QType.QInt2, 128)]
    [TestCase(50, 64, QType.QInt8, 0)]
    [TestCase(50, 64, QType.QFloat8E4M3Fn, 0)]
    [TestCase(50, 64, QType.QFloat8E5M2, 0)]
    [TestCase(50, 64, QType.QFloat8E4M3Fnuz, 0)]
    public void FrozenLookupEqualsTheFloatEmbeddingAtTheDequantizedTable(int rows, int dim, QType qtype, int group)
    {
        using QEmbedding embedding = Frozen(rows, dim, qtype);
        if (embedding.QuantizedWeight is WeightQBitsTensor bits) Assert.That(bits.GroupSize, Is.EqualTo(group));
        using Tensor indices = tensor(new long[] { 0, rows - 1, 3, 3, 7, rows / 2, 1, 0, 5, rows - 2, 11, 2 }, [3, 4]);
        using Tensor table = embedding.QuantizedWeight!.Dequantize();
        using Embedding reference = Embedding_from_pretrained(table);
        using Tensor expected = reference.forward(indices);
        using Tensor actual = embedding.forward(indices);
        Assert.That(actual.shape, Is.EqualTo(new long[] { 3, 4, dim }));
        Assert.That(actual.dtype, Is.EqualTo(ScalarType.Float32));
        Assert.That(Reference.BitEqual(actual, expected), Is.True, "the gathered rows decode bit for bit");
    }

    [TestCase(QType.QInt4, 15)]
    [TestCase(QType.QInt2, 3)]
    public void PackedRowsOnEveryBitPlaneDecodeToTheirValues(QType qtype, int maxCode)
    {
        // 5 rows x 16 with group 8: 10 groups, spread over 2 (int4) or 4 (int2) bit planes of the packed rows. Each
        // group holds 0 and maxCode (scale 1, shift 0), so its codes are its values and quantization is exact.
        var values = new float[5, 16];
        var random = new Random(3);
        for (int r = 0; r < 5; r++)
        {
            for (int c = 0; c < 16; c++)
                values[r, c] = c % 8 == 0 ? 0 : c % 8 == 1 ? maxCode : random.Next(maxCode + 1);
        }
        using Tensor table = Reference.Matrix(values);
        using var source = Embedding_from_pretrained(table.clone());
        using var embedding = new QEmbedding(source, qtype, groupSize: 8, path: "tokens");
        embedding.eval();
        embedding.Freeze();
        Assert.That(((WeightQBitsTensor)embedding.QuantizedWeight!).GroupSize, Is.EqualTo(8));
        long[] order = [4, 0, 3, 1, 2, 4];
        using Tensor actual = embedding.forward(tensor(order));
        using Tensor expected = table.index_select(0, tensor(order));
        Assert.That(Reference.BitEqual(actual, expected), Is.True);
    }

    [Test]
    public void QInt8RowsByHand()
    {
        // Row 0: absmax 127 -> scale 1, 2.5 -> 2 (ties to even); row 1: absmax 3.175 -> scale 0.025.
        using Tensor table = Reference.Matrix(new float[,] { { 127f, -2.5f, 0.4f }, { 3.175f, -0.05f, 1f } });
        using var source = Embedding_from_pretrained(table);
        using var embedding = new QEmbedding(source, QType.QInt8);
        embedding.Freeze();
        using Tensor rows = embedding.forward(tensor(new long[] { 1, 0 }));
        float s = 3.175f / 127;
        float[] expected = [127 * s, -2 * s, 40 * s, 127f, -2f, 0f];
        Assert.That(rows.data<float>().ToArray(), Is.EqualTo(expected).Within(1e-6));
    }

    [Test]
    public void DynamicLookupEqualsFrozen()
    {
        using var source = Seeded.Create(() => Embedding(40, 160));
        using var dynamic = new QEmbedding(source, QType.QInt4, path: "tokens");
        dynamic.eval();
        using Tensor indices = tensor(new long[] { 3, 39, 0, 3 });
        using Tensor before = no_grad_forward(dynamic, indices);
        dynamic.Freeze();
        Assert.That(dynamic.FloatWeight, Is.Null);
        using Tensor after = dynamic.forward(indices);
        Assert.That(Reference.BitEqual(after, before), Is.True);
    }

    [Test]
    public void TrainingPassesAStraightThroughGradientExceptToThePaddingRow()
    {
        using var source = Seeded.Create(() => Embedding(6, 8, padding_idx: 2));
        using var reference = Seeded.Create(() => Embedding(6, 8, padding_idx: 2));
        using var embedding = new QEmbedding(source, QType.QInt4, path: "tokens");
        Assert.That(embedding.padding_idx, Is.EqualTo(2));
        embedding.train();
        using Tensor indices = tensor(new long[] { 2, 0, 0, 5, 2 });
        using Tensor weights = Seeded.Uniform([5, 8]);
        embedding.forward(indices).mul(weights).sum().backward();
        reference.forward(indices).mul(weights).sum().backward();
        using Tensor grad = embedding.FloatWeight!.grad!;
        using Tensor expected = reference.weight!.grad!;
        Assert.That(grad.allclose(expected, 0, 1e-6), Is.True, "the float Embedding's gradient, padding row zero");
    }

    [TestCase(-1L, 4L)]
    [TestCase(0L, 0L)]
    public void PaddingIdxIsReadFromTheModule(long given, long normalized)
    {
        using var source = Embedding(5, 3, padding_idx: given);
        using var embedding = new QEmbedding(source, QType.QInt8);
        Assert.That(embedding.padding_idx, Is.EqualTo(normalized));
        using var plain = Embedding(5, 3);
        using var other = new QEmbedding(plain, QType.QInt8);
        Assert.That(other.padding_idx, Is.Null);
    }

    [Test]
    public void ToBFloat16KeepsTheTableQuantized()
    {
        using QEmbedding embedding = Frozen(30, 256, QType.QInt4);
        embedding.to(ScalarType.BFloat16);
        Assert.That(embedding.QuantizedWeight!.DType, Is.EqualTo(ScalarType.BFloat16));
        using Tensor indices = tensor(new long[] { 1, 29, 7 });
        using Tensor table = embedding.QuantizedWeight.Dequantize();
        using Tensor expected = table.index_select(0, indices);
        using Tensor actual = embedding.forward(indices);
        Assert.That(actual.dtype, Is.EqualTo(ScalarType.BFloat16));
        Assert.That(Reference.BitEqual(actual, expected), Is.True);
    }

    [Test]
    public void Int32IndicesAndEmptyIndicesWork()
    {
        using QEmbedding embedding = Frozen(10, 16, QType.QInt8);
        using Tensor a = embedding.forward(tensor(new[] { 1, 9 }));
        using Tensor b = embedding.forward(tensor(new long[] { 1, 9 }));
        Assert.That(Reference.BitEqual(a, b), Is.True);
        using Tensor none = embedding.forward(zeros([2, 0], ScalarType.Int64));
        Assert.That(none.shape, Is.EqualTo(new long[] { 2, 0, 16 }));
    }

    /// <summary>A frozen QEmbedding over a seeded float table.</summary>
    internal static QEmbedding Frozen(int rows, int dim, QType qtype)
    {
        using var source = Seeded.Create(() => Embedding(rows, dim));
        var embedding = new QEmbedding(source, qtype, path: "tokens");
        embedding.eval();
        embedding.Freeze();
        return embedding;
    }

    private static Tensor no_grad_forward(QEmbedding module, Tensor indices)
    {
        using var noGrad = no_grad();
        return module.forward(indices);
    }
}
