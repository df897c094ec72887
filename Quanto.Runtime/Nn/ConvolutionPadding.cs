using Quanto.Tensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Nn;

/// <summary>
/// How a quantized convolution pads its input, taken from the float module it replaces: zero padding goes to the
/// convolution itself; reflect, replicate and circular padding (and the asymmetric zero padding of padding "same"
/// with an even dilated kernel) is an explicit <c>F.pad</c> before a convolution without padding, as TorchSharp's
/// own Conv1d and Conv2d do. Also the input checks every quantized convolution makes before calling libtorch.
/// </summary>
internal sealed class ConvolutionPadding
{
    private readonly long[] _kernel;
    private readonly long[] _dilation;

    private ConvolutionPadding(Convolution source, long[] convolution, long[]? explicitPad, PaddingModes mode,
        string description)
    {
        _kernel = source.kernel_size;
        _dilation = source.dilation;
        Convolution = convolution;
        Explicit = explicitPad;
        Mode = mode;
        Description = description;
    }

    /// <summary>Zero padding per spatial dimension that the convolution applies (symmetric).</summary>
    public long[] Convolution { get; }

    /// <summary>F.pad amounts (last dimension first, (before, after) pairs) applied before the convolution, or
    /// null.</summary>
    public long[]? Explicit { get; }

    /// <summary>The F.pad mode of <see cref="Explicit"/> (Constant: zeros).</summary>
    public PaddingModes Mode { get; }

    /// <summary>"zeros 1x1", "reflect 2", "same (replicate)": for module descriptions.</summary>
    public string Description { get; }

    /// <summary>Reads the padding of <paramref name="source"/> (a Conv1d or Conv2d).</summary>
    /// <param name="source">The float convolution.</param>
    /// <param name="owner">How messages name the quantized module.</param>
    /// <exception cref="NotSupportedException">Padding "same" with a non-zero padding mode whose padding differs
    /// between height and width: TorchSharp 0.107's Conv2d pads each dimension by the other's amount there (its
    /// output is not the input's size), so no quantized twin can both match it and be right.</exception>
    public static ConvolutionPadding From(Convolution source, string owner)
    {
        int dims = source.kernel_size.Length;
        // Constant pads with zeros in TorchSharp's convolutions, as Zeros does.
        bool zeros = source.padding_mode is PaddingModes.Zeros or PaddingModes.Constant;
        PaddingModes mode = zeros ? PaddingModes.Constant : source.padding_mode;
        string name = source.padding_mode.ToString().ToLowerInvariant();
        long[] none = new long[dims];
        if (source.padding_type == Padding.Valid) return new(source, none, null, mode, "valid");
        if (source.padding_type == Padding.Same)
        {
            var before = new long[dims];
            var after = new long[dims];
            for (int i = 0; i < dims; i++)
            {
                long total = source.dilation[i] * (source.kernel_size[i] - 1);
                before[i] = total / 2;
                after[i] = total - before[i];
            }
            string description = $"same ({name})";
            if (zeros && before.SequenceEqual(after)) return new(source, before, null, mode, description);
            if (!zeros && dims == 2 && (before[0] != before[1] || after[0] != after[1]))
            {
                throw new NotSupportedException(
                    $"{owner}: padding 'same' with padding mode {name} and kernel " +
                    $"{string.Join("x", source.kernel_size)} " +
                    "pads height and width differently, and TorchSharp 0.107's Conv2d applies each dimension's " +
                    "amount to the other there (its output is not the input's size); give the padding as numbers " +
                    "or use a square kernel.");
            }
            return new(source, none, ReversedPairs(before, after), mode, description);
        }
        long[] padding = source.padding ?? none;
        string amounts = $"{name} {string.Join("x", padding)}";
        if (zeros || padding.All(p => p == 0)) return new(source, padding, null, mode, amounts);
        return new(source, none, ReversedPairs(padding, padding), mode, amounts);
    }

    /// <summary>
    /// Checks a batched input's spatial sizes (the dimensions after batch and channels) against the padding and
    /// the kernel, then applies the explicit padding. Throws before libtorch could.
    /// </summary>
    /// <param name="input">(batch, channels, spatial...).</param>
    /// <param name="owner">How messages name the module.</param>
    /// <exception cref="ArgumentException">A reflect padding not smaller than the input, a circular one larger than
    /// it, an empty input for replicate padding, or an input smaller than the kernel after padding.</exception>
    public Tensor Apply(Tensor input, string owner)
    {
        int dims = _kernel.Length;
        for (int i = 0; i < dims; i++)
        {
            long size = input.shape[2 + i];
            (long before, long after) = Explicit is null ? (Convolution[i], Convolution[i])
                : (Explicit[2 * (dims - 1 - i)], Explicit[2 * (dims - 1 - i) + 1]);
            long most = Math.Max(before, after);
            string? bad = Explicit is null ? null : Mode switch
            {
                PaddingModes.Reflect when most >= size => $"reflect padding {most} needs at least {most + 1} elements",
                PaddingModes.Circular when most > size => $"circular padding {most} needs at least {most} elements",
                PaddingModes.Replicate when size == 0 => "replicate padding needs at least 1 element",
                _ => null,
            };
            if (bad is not null)
            {
                throw new ArgumentException(
                    $"{owner}: input {QuantizedWeight.FormatShape(input.shape)} is too small in spatial dimension " +
                    $"{i} ({size}): {bad}.", nameof(input));
            }
            long span = _dilation[i] * (_kernel[i] - 1) + 1;
            if (size + before + after < span)
            {
                throw new ArgumentException(
                    $"{owner}: input {QuantizedWeight.FormatShape(input.shape)} is smaller than the " +
                    $"{string.Join("x", _kernel)} kernel after padding (spatial dimension {i}: {size} padded to " +
                    $"{size + before + after}, dilated kernel {span}).", nameof(input));
            }
        }
        return Explicit is null ? input : nn.functional.pad(input, Explicit, Mode);
    }

    // F.pad takes (before, after) pairs starting from the last dimension.
    private static long[] ReversedPairs(long[] before, long[] after) =>
        Enumerable.Range(0, before.Length).Reverse().SelectMany(i => new[] { before[i], after[i] }).ToArray();
}
