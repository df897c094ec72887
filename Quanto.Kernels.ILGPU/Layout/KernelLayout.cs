using Quanto.Kernels.Ilgpu.Kernels;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Kernels.Ilgpu.Layout;

/// <summary>Which kernel family a weight runs on.</summary>
public enum WeightFormat
{
    /// <summary>qint8, per-channel scale.</summary>
    Int8,

    /// <summary>float8 e4m3fn, per-channel scale.</summary>
    Float8E4M3Fn,

    /// <summary>float8 e5m2, per-channel scale.</summary>
    Float8E5M2,

    /// <summary>qint4, group-wise affine.</summary>
    Int4,

    /// <summary>qint2, group-wise affine.</summary>
    Int2,
}

/// <summary>
/// A weight in the kernels' layout, on the host: every output row's codes consecutive (least significant bits first for
/// 2/4-bit codes) and zero-padded to whole 16-byte chunks, so each row starts 16-byte aligned and a thread reads 16, 32
/// or 64 codes with one vector load. Scales (and shifts) are float32. Made once at Prepare from the canonical
/// (optimum-quanto) layout, uploaded, and never saved.
/// </summary>
/// <param name="Format">Kernel family.</param>
/// <param name="Shape">Sizes (M is 0: it depends on the call).</param>
/// <param name="Codes">(N, ChunksPerRow * 16) bytes.</param>
/// <param name="Scale">(N) per-channel or (N, GroupsPerRow) per-group scales.</param>
/// <param name="Shift">(N, GroupsPerRow) float shifts for packed formats, else empty.</param>
public sealed record KernelLayout(WeightFormat Format, LinearShape Shape, byte[] Codes, float[] Scale, float[] Shift)
{
    /// <summary>Codes in one 16-byte chunk for this format.</summary>
    public int CodesPerChunk => CodesPerChunkOf(Format);

    /// <summary>Bits per code.</summary>
    public int Bits => Format switch { WeightFormat.Int4 => 4, WeightFormat.Int2 => 2, _ => 8 };

    /// <summary>Codes in one 16-byte chunk for <paramref name="format"/>.</summary>
    public static int CodesPerChunkOf(WeightFormat format) => format switch
    {
        WeightFormat.Int4 => 32,
        WeightFormat.Int2 => 64,
        _ => ByteWeightKernel.CodesPerChunk,
    };

    /// <summary>The kernel family for a qtype, or null when no ILGPU kernel runs it.</summary>
    public static WeightFormat? FormatOf(QType qtype) => qtype switch
    {
        QType.QInt8 => WeightFormat.Int8,
        QType.QFloat8E4M3Fn => WeightFormat.Float8E4M3Fn,
        QType.QFloat8E5M2 => WeightFormat.Float8E5M2,
        QType.QInt4 => WeightFormat.Int4,
        QType.QInt2 => WeightFormat.Int2,
        _ => null,
    };

    /// <summary>Why <paramref name="weight"/> cannot use this layout, or null when it can.</summary>
    public static string? Unsupported(QuantizedWeight weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (FormatOf(weight.QType) is null)
            return $"no ILGPU kernel for {weight.QType.QuantoName()} (supported: qint2, qint4, qint8, qfloat8_e4m3fn, qfloat8_e5m2)";
        if (weight.Shape.Length != 2) return $"only 2-D (Linear) weights; got shape {Describe(weight.Shape)}";
        if (weight.Shape[0] > int.MaxValue / 2 || weight.Shape[1] > int.MaxValue / 2)
            return $"shape {Describe(weight.Shape)} is too large for 32-bit kernel indices";
        if (weight is WeightQBitsTensor bits && weight.Shape[1] % bits.GroupSize != 0)
        {
            return $"group size {bits.GroupSize} does not divide in_features {weight.Shape[1]} (groups would span rows)";
        }
        return null;
    }

    /// <summary>Builds the kernel layout of a canonical weight.</summary>
    /// <exception cref="NotSupportedException">See <see cref="Unsupported"/>.</exception>
    public static KernelLayout From(QuantizedWeight weight)
    {
        if (Unsupported(weight) is { } why) throw new NotSupportedException($"ILGPU kernels cannot run {weight}: {why}.");
        WeightFormat format = FormatOf(weight.QType)!.Value;
        int n = (int)weight.Shape[0];
        int k = (int)weight.Shape[1];
        int perChunk = CodesPerChunkOf(format);
        int chunksPerRow = (k + perChunk - 1) / perChunk;
        return weight switch
        {
            WeightQBytesTensor bytes => FromBytes(format, bytes, n, k, chunksPerRow),
            WeightQBitsTensor packed => FromPacked(format, packed, n, k, chunksPerRow),
            _ => throw new NotSupportedException($"ILGPU kernels cannot run {weight}: unknown weight class."),
        };
    }

    private static KernelLayout FromBytes(WeightFormat format, WeightQBytesTensor weight, int n, int k, int chunksPerRow)
    {
        int rowBytes = chunksPerRow * Chunk16.Bytes;
        var codes = new byte[(long)n * rowBytes];
        using (Tensor data = weight.Data.cpu().contiguous())
        {
            ReadOnlySpan<byte> source = data.bytes;
            for (int row = 0; row < n; row++) source.Slice(row * k, k).CopyTo(codes.AsSpan(row * rowBytes, k));
        }
        float[] scale = ToFloats(weight.Scale);
        var shape = new LinearShape(0, n, k, chunksPerRow, chunksPerRow * ByteWeightKernel.CodesPerChunk, k, 1);
        return new KernelLayout(format, shape, codes, scale, []);
    }

    private static KernelLayout FromPacked(WeightFormat format, WeightQBitsTensor weight, int n, int k, int chunksPerRow)
    {
        int bits = format == WeightFormat.Int4 ? 4 : 2;
        int perByte = 8 / bits;
        int rowBytes = chunksPerRow * Chunk16.Bytes;
        var codes = new byte[(long)n * rowBytes];
        using (Tensor unpacked = weight.UnpackCodes())
        {
            // (groups, g) row-major is (N, K) row-major, because every group lies inside one row (g divides K).
            ReadOnlySpan<byte> source = unpacked.bytes;
            for (int row = 0; row < n; row++)
            {
                Span<byte> target = codes.AsSpan(row * rowBytes, rowBytes);
                for (int i = 0; i < k; i++) target[i / perByte] |= (byte)(source[row * k + i] << (bits * (i % perByte)));
            }
        }
        float[] scale = ToFloats(weight.Scale);
        float[] shift;
        if (weight.HasZeroPoint)
        {
            // (q - zp) * s == q * s - zp * s: one float shift per group keeps a single kernel for both variants.
            using Tensor zp = weight.Shift.to(ScalarType.Float32).cpu();
            shift = ToFloats(zp);
            for (int i = 0; i < shift.Length; i++) shift[i] *= scale[i];
        }
        else
        {
            shift = ToFloats(weight.Shift);
        }
        int groupsPerRow = k / weight.GroupSize;
        var shape = new LinearShape(0, n, k, chunksPerRow, chunksPerRow * (Chunk16.Bytes * perByte), weight.GroupSize,
            groupsPerRow);
        return new KernelLayout(format, shape, codes, scale, shift);
    }

    private static float[] ToFloats(Tensor t)
    {
        using Tensor f = t.to(ScalarType.Float32).cpu().contiguous();
        return f.data<float>().ToArray();
    }

    private static string Describe(ReadOnlySpan<long> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";
}
