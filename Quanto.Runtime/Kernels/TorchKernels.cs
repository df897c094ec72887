using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Kernels;

/// <summary>
/// The reference backend: dequantizes the weight once at Prepare and runs TorchSharp's F.linear. Runs every format on
/// every device, so it is the fallback; it is also the float reference the fast backends are tested against.
/// </summary>
public sealed class TorchKernels : IQuantKernels
{
    /// <summary>The shared instance.</summary>
    public static TorchKernels Instance { get; } = new();

    /// <inheritdoc />
    public string Name => "torch";

    /// <inheritdoc />
    public bool CanRun(QuantizedWeight weight, ScalarType inputDtype, Device device) => true;

    /// <inheritdoc />
    public PreparedWeight Prepare(QuantizedWeight weight) => new Dequantized(weight, this);

    /// <inheritdoc />
    public Tensor Linear(Tensor input, PreparedWeight weight, Tensor? bias)
    {
        var prepared = KernelChecks.Expect<Dequantized>(weight, this);
        KernelChecks.CheckLinear(input, prepared, bias);
        using var scope = NewDisposeScope();
        Tensor w = prepared.Weight.reshape(prepared.OutFeatures, prepared.InFeatures).to(input.dtype, input.device);
        Tensor? b = bias?.to(input.dtype, input.device);
        return nn.functional.linear(input, w, b).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public Tensor LinearInt8(Tensor inputCodes, Tensor inputScale, PreparedWeight weight, Tensor? bias, ScalarType outputDtype)
    {
        var prepared = KernelChecks.Expect<Dequantized>(weight, this);
        if (prepared.Source is not WeightQBytesTensor { QType: QType.QInt8 } w8)
            throw new ArgumentException($"LinearInt8 needs qint8 weights; got {prepared.Source}.", nameof(weight));
        KernelChecks.CheckLinear(inputCodes, prepared, bias);
        using var scope = NewDisposeScope();
        // int8 x int8 products summed in int64 are exact; libtorch has no CPU int32 matmul, and K * 127 * 128 fits
        // int32 for any K below 131072, so the result equals int32 accumulation.
        Tensor acc = inputCodes.to(ScalarType.Int64).matmul(w8.Data.reshape(prepared.OutFeatures, prepared.InFeatures)
            .to(ScalarType.Int64).t());
        Tensor rowScale = w8.Scale.reshape(prepared.OutFeatures).to(ScalarType.Float32);
        Tensor y = acc.to(ScalarType.Float32).mul(inputScale.to(ScalarType.Float32)).mul(rowScale);
        if (bias is not null) y = y.add(bias.to(ScalarType.Float32));
        return y.to(outputDtype).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    /// <remarks>The direct convolution (F.conv2d) on the float copy made at Prepare: for the small kernels QConv2d
    /// sends here (see QConv2d.DirectConvolutionLimit) it beats unfold + matmul.</remarks>
    public Tensor Conv2d(Tensor input, PreparedWeight weight, Tensor? bias, long[] stride, long[] padding,
        long[] dilation, long groups)
    {
        var prepared = KernelChecks.Expect<Dequantized>(weight, this);
        return Convolutions.Direct(input, prepared.Weight, bias, stride, padding, dilation, groups);
    }

    private sealed class Dequantized : PreparedWeight
    {
        public Dequantized(QuantizedWeight source, IQuantKernels backend) : base(source, backend) =>
            Weight = source.Dequantize().DetachFromDisposeScope(); // lives as long as this prepared weight

        public Tensor Weight { get; }

        public override long ByteSize => Weight.NumberOfElements * Weight.ElementSize;

        public override long FloatCopyBytes => ByteSize;

        protected override void Dispose(bool disposing)
        {
            if (disposing) Weight.Dispose();
        }
    }
}
