using Quanto.Kernels.Cpu.Int8;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Kernels.Cpu;

public sealed partial class CpuKernels
{
    /// <summary>K from which int32 accumulation could overflow: |x * w| &lt;= 2^14, so K * 2^14 must stay below 2^31.</summary>
    internal const int MaxInt8K = 131072;

    /// <inheritdoc />
    /// <remarks>Runs on the int8-activation kernels (see <see cref="LinearDynamic"/>) with one scale for every row.</remarks>
    public unsafe Tensor LinearInt8(Tensor inputCodes, Tensor inputScale, PreparedWeight weight, Tensor? bias,
        ScalarType outputDtype)
    {
        var w = KernelChecks.Expect<CpuPreparedWeight>(weight, this);
        ArgumentNullException.ThrowIfNull(inputScale);
        if (w.Format != CpuWeightFormat.Int8)
            throw new ArgumentException($"LinearInt8 needs qint8 weights; got {w.Source}.", nameof(weight));
        KernelChecks.CheckLinear(inputCodes, w, bias);
        CheckCpu(inputCodes, "inputCodes");
        if (inputCodes.dtype != ScalarType.Int8)
            throw new ArgumentException($"LinearInt8 takes int8 input codes; got {inputCodes.dtype}.", nameof(inputCodes));
        if (inputScale.NumberOfElements != 1)
        {
            throw new ArgumentException(
                $"LinearInt8 takes one per-tensor input scale; got shape {QuantizedWeight.FormatShape(inputScale.shape)}.",
                nameof(inputScale));
        }
        if (w.K >= MaxInt8K)
            throw new ArgumentException($"W8A8 needs fewer than {MaxInt8K} input features for exact int32 sums; got {w.K}.");
        using var scope = NewDisposeScope();
        Tensor x = inputCodes.contiguous();
        int rows = checked((int)(x.NumberOfElements / w.K));
        float xScale = inputScale.to(ScalarType.Float32).cpu().item<float>();
        Tensor y = empty([rows, w.N], ScalarType.Float32);
        Tensor? b = bias?.to(ScalarType.Float32, CPU).contiguous();
        if (rows > 0)
        {
            DotWeight dot = w.Dot;
            // Static codes span the full int8 range, -128 included.
            DotKernel kernel = DotKernelFor(dot.Format, rows, out int tileRows, symmetric: false);
            fixed (byte* xBytes = x.bytes, yBytes = y.bytes)
            {
                fixed (byte* biasBytes = b is null ? default : b.bytes)
                {
                    using DotActivations codes = DotActivations.FromCodes((sbyte*)xBytes, rows, dot, xScale, tileRows);
                    RunDot(dot, codes, kernel, (float*)yBytes, (float*)biasBytes);
                }
            }
        }
        long[] outShape = TensorSizes.WithLast(inputCodes, w.N);
        return y.reshape(outShape).to(outputDtype).MoveToOuterDisposeScope();
    }
}
