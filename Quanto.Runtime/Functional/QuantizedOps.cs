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
public static class QuantizedOps
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

    /// <summary>W8A8: int8 input codes with a per-tensor scale times int8 weights, int32 accumulation, one rescale.</summary>
    public static Tensor linear_int8(Tensor inputCodes, Tensor inputScale, PreparedWeight weight, Tensor? bias,
        ScalarType outputDtype) =>
        weight.Backend.LinearInt8(inputCodes, inputScale, weight, bias, outputDtype);

    /// <summary>
    /// 2-D convolution with a quantized weight (out, in/groups, kh, kw), as an unfold (im2col) followed by the
    /// backend's quantized matmul, so every backend's kernels serve convolutions too. Grouped convolutions and
    /// weights prepared by the torch backend (a float copy, see QConv2d.DirectConvolutionLimit) run F.conv2d directly.
    /// </summary>
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
        using var scope = NewDisposeScope();
        // The torch backend holds a float copy: run the direct convolution on it. Grouped convolutions have no
        // unfold form: they dequantize.
        Tensor? direct = TorchKernels.DequantizedWeight(weight);
        if (direct is not null || groups != 1)
        {
            Tensor w = (direct ?? weight.Source.Dequantize()).to(input.dtype);
            return nn.functional.conv2d(input, w, bias?.to(input.dtype), stride, padding, dilation, groups)
                .MoveToOuterDisposeScope();
        }
        long batch = input.shape[0], kh = shape[2], kw = shape[3];
        long outH = (input.shape[2] + 2 * padding[0] - dilation[0] * (kh - 1) - 1) / stride[0] + 1;
        long outW = (input.shape[3] + 2 * padding[1] - dilation[1] * (kw - 1) - 1) / stride[1] + 1;
        if (outH <= 0 || outW <= 0)
        {
            throw new ArgumentException(
                $"conv2d input {QuantizedWeight.FormatShape(input.shape)} is smaller than the {kh}x{kw} kernel " +
                "after padding.", nameof(input));
        }
        // (B, C*kh*kw, L) -> (B*L, C*kh*kw): each row one receptive field, in the weight's (in, kh, kw) order.
        Tensor columns = nn.functional.unfold(input, (kh, kw), (dilation[0], dilation[1]), (padding[0], padding[1]),
            (stride[0], stride[1]));
        Tensor rows = columns.transpose(1, 2).reshape(-1, columns.shape[1]);
        Tensor y = weight.Backend.Linear(rows, weight, bias);
        return y.reshape(batch, outH * outW, -1).transpose(1, 2).reshape(batch, -1, outH, outW).contiguous()
            .MoveToOuterDisposeScope();
    }

    /// <summary>Layer normalization (weights stay float, as in optimum-quanto's QLayerNorm).</summary>
    public static Tensor layer_norm(Tensor input, long[] normalizedShape, Tensor? weight, Tensor? bias, double eps) =>
        nn.functional.layer_norm(input, normalizedShape, weight, bias, eps);

    // dq with the gradient of x: x + (dq - x).detach() when gradients flow, else dq itself (bit-exact).
    private static Tensor StraightThrough(Tensor x, Tensor dq) =>
        x.requires_grad && is_grad_enabled() ? x.add(dq.sub(x.detach())) : dq;
}
