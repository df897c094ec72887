using Quanto.Kernels;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Functional;

/// <summary>
/// The quantized operations, in one place: the eager modules (QLinear, QConv2d, QLayerNorm) and the generated
/// ForwardQuantized code both call these, so both paths compute the same values bit for bit. Names are snake_case
/// like TorchSharp's functional API.
/// </summary>
public static partial class QuantizedOps
{
    /// <summary>Quant stub: int8 or float8 codes of x with a per-tensor (scalar) or broadcastable scale.</summary>
    public static Tensor quantize(Tensor input, QType qtype, Tensor scale) =>
        SymmetricQuantizer.QuantizeValues(input, qtype, scale.to(input.dtype));

    /// <summary>Dequant stub: codes * scale in <paramref name="dtype"/>.</summary>
    public static Tensor dequantize(Tensor codes, Tensor scale, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        return codes.to(dtype).mul_(scale.to(dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// quantize then dequantize. When gradients flow (training), the gradient passes straight through to x
    /// (straight-through estimator); the scale receives none.
    /// </summary>
    public static Tensor fake_quantize(Tensor input, QType qtype, Tensor scale)
    {
        using var scope = NewDisposeScope();
        Tensor dq;
        using (no_grad())
        {
            dq = dequantize(quantize(input.detach(), qtype, scale), scale, input.dtype);
        }
        return StraightThrough(input, dq).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The weight as the quantized layer sees it in dynamic (not yet frozen) mode: quantized with the layer's
    /// settings and dequantized, with a straight-through gradient to the float weight when gradients flow (QAT).
    /// </summary>
    public static Tensor fake_quantize_weight(Tensor weight, QType qtype, int? groupSize, Optimizer? optimizer)
    {
        using var scope = NewDisposeScope();
        Tensor dq;
        using (no_grad())
        {
            using QuantizedWeight q = WeightQuantizer.Quantize(weight.detach(), qtype, groupSize, optimizer);
            dq = q.Dequantize();
        }
        return StraightThrough(weight, dq).MoveToOuterDisposeScope();
    }

    /// <summary>y = x · dequant(W)ᵀ (+ bias) on the weight's backend. x (..., K) float; y (..., N) in x's dtype.</summary>
    public static Tensor linear(Tensor input, PreparedWeight weight, Tensor? bias) =>
        weight.Backend.Linear(input, weight, bias);

    /// <summary>
    /// y = x̂ · dequant(W)ᵀ (+ bias) with x̂ = x quantized to int8 on the fly (<see cref="DynamicActivations"/>) on
    /// the weight's backend; with <see cref="DynamicActivations.None"/>, exactly <see cref="linear"/>.
    /// </summary>
    public static Tensor linear_dynamic(Tensor input, PreparedWeight weight, Tensor? bias, DynamicActivations mode) =>
        mode == DynamicActivations.None
            ? weight.Backend.Linear(input, weight, bias)
            : weight.Backend.LinearDynamic(input, weight, bias, mode);

    /// <summary>W8A8: int8 input codes with a per-tensor scale times int8 weights, int32 accumulation, one rescale.</summary>
    public static Tensor linear_int8(Tensor inputCodes, Tensor inputScale, PreparedWeight weight, Tensor? bias,
        ScalarType outputDtype) =>
        weight.Backend.LinearInt8(inputCodes, inputScale, weight, bias, outputDtype);

    /// <summary>
    /// 2-D convolution with a quantized weight (out, in/groups, kh, kw) on the weight's backend
    /// (<see cref="IQuantKernels.Conv2d"/>: by default an unfold followed by the backend's quantized matmul; the torch
    /// backend runs the direct convolution on its float copy).
    /// </summary>
    /// <exception cref="ArgumentException">The input is not (batch, in, h, w) with the weight's input channels, or is
    /// smaller than the kernel after padding.</exception>
    public static Tensor conv2d(Tensor input, PreparedWeight weight, Tensor? bias, long[] stride, long[] padding,
        long[] dilation, long groups)
    {
        ReadOnlySpan<long> shape = weight.Source.Shape;
        if (input.dim() != 4 || input.shape[1] != shape[1] * groups)
        {
            throw new ArgumentException(
                $"conv2d input {QuantizedWeight.FormatShape(input.shape)} does not match weight " +
                $"{QuantizedWeight.FormatShape(shape)} with {groups} group(s): expected (batch, {shape[1] * groups}, h, w).",
                nameof(input));
        }
        _ = Convolutions.OutputSize(input, shape, stride, padding, dilation); // for every backend
        return weight.Backend.Conv2d(input, weight, bias, stride, padding, dilation, groups);
    }

    /// <summary>Layer normalization (weights stay float, as in optimum-quanto's QLayerNorm).</summary>
    public static Tensor layer_norm(Tensor input, long[] normalizedShape, Tensor? weight, Tensor? bias, double eps) =>
        nn.functional.layer_norm(input, normalizedShape, weight, bias, eps);

    // dq with the gradient of x: x + (dq - x).detach() when gradients flow, else dq itself (bit-exact).
    private static Tensor StraightThrough(Tensor x, Tensor dq) =>
        x.requires_grad && is_grad_enabled() ? x.add(dq.sub(x.detach())) : dq;
}
