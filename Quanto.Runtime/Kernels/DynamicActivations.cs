using Quanto.Tensors;

namespace Quanto.Kernels;

/// <summary>
/// Whether the kernels quantize float activations to int8 on the fly (dynamic activation quantization), so that the
/// matmul runs as exact int8 x int8 -> int32 dot products. A run-time mode of frozen modules: nothing about it is
/// saved, and files stay as they are. Only qint8, qint4 and qint2 weights have integer kernels; float8 weights keep
/// float activations in every mode.
/// </summary>
/// <remarks>
/// The values are those of F.linear on the activations quantized and dequantized with one absmax scale per block
/// (scale = max |x| / 127, codes = round(x / scale) with ties to even, in [-127, 127]) and the dequantized weight;
/// integer backends differ from that only by float rounding in the final rescale. The affine weights' shift term uses
/// the same quantized activations. Activations that are not quantized statically (<c>activations: null</c>) are the
/// ones this applies to; a module with calibrated int8 activations keeps its static W8A8 path.
/// </remarks>
public enum DynamicActivations
{
    /// <summary>Float activations (weight-only kernels): the default.</summary>
    None,

    /// <summary>
    /// int8 activations: per token (one scale per row) for qint8 weights, as torchao's
    /// int8_dynamic_activation_int8_weight; per block of 32 inputs inside each weight group for qint4 and qint2
    /// weights (a group's last block is shorter when 32 does not divide the group).
    /// </summary>
    Int8,

    /// <summary>As <see cref="Int8"/>, but one scale per weight group (128 by default) for qint4 and qint2: fewer
    /// rescales, coarser activations.</summary>
    Int8PerGroup,

    /// <summary>
    /// Activations rounded to bfloat16 (round to nearest even, as libtorch's cast; exact for bfloat16 inputs), the
    /// precision of TorchSharp's bf16 matmul, for every weight format: the weights' codes, exact in bfloat16, are
    /// multiplied with AVX-512 BF16's vdpbf16ps (products exact, sums in float32) where the CPU has it, else the
    /// float kernels run on the rounded activations.
    /// </summary>
    BFloat16,
}

/// <summary>How <see cref="DynamicActivations"/> splits a row of K activations for one weight.</summary>
/// <param name="GroupLength">Inputs per weight group (K for per-channel qint8 weights).</param>
/// <param name="BlockLength">Inputs per activation scale inside a group (the last block of a group may be
/// shorter).</param>
internal readonly record struct ActivationBlocking(int GroupLength, int BlockLength)
{
    /// <summary>Inputs per block in the Int8 mode of 2/4-bit weights.</summary>
    public const int Block = 32;

    /// <summary>The int8 blocking <paramref name="mode"/> gives <paramref name="weight"/>, or null when the mode
    /// quantizes no activation to int8 for it (None, BFloat16, float8 weights).</summary>
    public static ActivationBlocking? For(QuantizedWeight weight, DynamicActivations mode)
    {
        if (mode is DynamicActivations.None or DynamicActivations.BFloat16) return null;
        long k = weight.NumberOfElements / weight.Shape[0];
        return weight switch
        {
            WeightQBytesTensor { QType: QType.QInt8 } => new ActivationBlocking((int)k, (int)k),
            WeightQBitsTensor bits => new ActivationBlocking(bits.GroupSize,
                mode == DynamicActivations.Int8 ? Math.Min(Block, bits.GroupSize) : bits.GroupSize),
            _ => null,
        };
    }
}
