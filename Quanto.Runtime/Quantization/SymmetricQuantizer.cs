using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>Symmetric quantization for int8 and float8 (optimum-quanto's quantize_symmetric).</summary>
public static class SymmetricQuantizer
{
    /// <summary>
    /// The codes of x / scale: int8 = clamp(round(x / scale), -128, 127) with ties to even; float8 =
    /// cast(clamp(x / scale, -max, max)) with round-to-nearest-even. The scale broadcasts against x
    /// (per channel (out, 1), or per tensor as a scalar).
    /// </summary>
    /// <param name="x">Float values.</param>
    /// <param name="qtype">qint8 or a float8 qtype.</param>
    /// <param name="scale">Positive scale, broadcastable to x.</param>
    /// <returns>int8 codes, or float8 codes in libtorch's float8 dtype.</returns>
    /// <exception cref="ArgumentException">qtype is a 2/4-bit type.</exception>
    public static Tensor QuantizeValues(Tensor x, QType qtype, Tensor scale)
    {
        QTypeInfo info = qtype.Info();
        if (info.Bits != 8)
        {
            throw new ArgumentException(
                $"Symmetric quantization covers qint8 and float8; {info.Name} is group-wise affine " +
                "(use AffineQuantizer).", nameof(qtype));
        }
        using var scope = NewDisposeScope();
        Tensor scaled = x.div(scale);
        Tensor codes = info.IsFloat
            ? scaled.clamp(info.QMin, info.QMax).to(info.Storage)
            : scaled.round().clamp(info.QMin, info.QMax).to(ScalarType.Int8);
        return codes.MoveToOuterDisposeScope();
    }

    /// <summary>Quantizes a weight per index of <paramref name="axis"/> (0: output channels).</summary>
    /// <param name="weight">Float weight, at least 2-D, finite.</param>
    /// <param name="qtype">qint8 or a float8 qtype.</param>
    /// <param name="optimizer">Chooses the scale; <see cref="AbsmaxOptimizer"/> by default.</param>
    /// <param name="axis">Axis with one scale per index.</param>
    /// <exception cref="ArgumentException">Bad weight (dtype, NaN/Inf, empty, 1-D) or qtype.</exception>
    public static WeightQBytesTensor Quantize(Tensor weight, QType qtype, SymmetricOptimizer? optimizer = null, int axis = 0)
    {
        WeightChecks.Check(weight, qtype);
        if (axis != 0 && axis != -1 && axis != weight.dim() - 1)
            throw new ArgumentOutOfRangeException(nameof(axis), axis, "Weights are quantized along axis 0 or -1.");
        using var noGrad = no_grad();
        int resolvedAxis = axis < 0 ? (int)weight.dim() + axis : axis;
        SymmetricOptimizer chosen = optimizer ?? new AbsmaxOptimizer();
        Tensor w = weight.detach();
        if (resolvedAxis != 0)
        {
            using var scope = NewDisposeScope();
            Tensor s = chosen.Optimize(w, qtype, resolvedAxis).to(w.dtype);
            Tensor codes = QuantizeValues(w, qtype, s);
            return new WeightQBytesTensor(qtype, codes.MoveToOuterDisposeScope(), s.MoveToOuterDisposeScope(), resolvedAxis);
        }

        // Rows are independent along axis 0: fill the outputs block by block (see RowBlocks).
        long[] scaleShape = w.shape.Select((d, i) => i == 0 ? d : 1L).ToArray();
        Tensor scale = empty(scaleShape, w.dtype, w.device);
        Tensor data = empty(w.shape, qtype.Info().Storage, w.device);
        RowBlocks.ForEach(w.shape[0], w.NumberOfElements / w.shape[0], (start, count) =>
        {
            Tensor block = w.narrow(0, start, count);
            Tensor blockScale = chosen.Optimize(block, qtype, 0).to(w.dtype);
            scale.narrow(0, start, count).copy_(blockScale);
            data.narrow(0, start, count).copy_(QuantizeValues(block, qtype, blockScale));
        });
        return new WeightQBytesTensor(qtype, data, scale, 0);
    }
}
