namespace Quanto.Kernels.Cpu;

/// <summary>
/// Decodes one block of a <see cref="CpuWeightFormat"/> into float vectors of type <typeparamref name="TVec"/>.
/// Structs implement it, one per (format, width), so the JIT specialises and inlines each kernel per format; the
/// block sizes are JIT-time constants.
/// </summary>
/// <typeparam name="TVec">Vector128, Vector256 or Vector512 of float.</typeparam>
internal unsafe interface IBlockDecoder<TVec> where TVec : unmanaged
{
    /// <summary>Weights per block.</summary>
    static abstract int BlockWeights { get; }

    /// <summary>Bytes per block; BlockWeights * bits / 8.</summary>
    static abstract int BlockBytes { get; }

    /// <summary>acc0/acc1 += decoded codes of the block · x[0..BlockWeights) (two chains hide FMA latency).</summary>
    static abstract void Accumulate(byte* block, float* x, ref TVec acc0, ref TVec acc1);

    /// <summary>dst[0..BlockWeights) = code * scale - shift (passed as <paramref name="negShift"/>).</summary>
    static abstract void Dequantize(byte* block, float* dst, TVec scale, TVec negShift);
}

/// <summary>
/// What the shared GEMV and GEMM drivers need of one SIMD width beyond decoding: a few vector operations and the
/// GEMM register tile, whose shape depends on the register file (16 zmm hold a 4x4 tile, 16 ymm/xmm a 4x2 one).
/// </summary>
/// <typeparam name="TVec">Vector128, Vector256 or Vector512 of float.</typeparam>
internal unsafe interface ISimdWidth<TVec> where TVec : unmanaged
{
    /// <summary>Weight rows per GEMM panel (the register tile's width).</summary>
    static abstract int PanelRows { get; }

    /// <summary>A vector with every lane <paramref name="value"/>.</summary>
    static abstract TVec Broadcast(float value);

    /// <summary>a * b + c, fused.</summary>
    static abstract TVec MultiplyAdd(TVec a, TVec b, TVec c);

    /// <summary>a + b.</summary>
    static abstract TVec Add(TVec a, TVec b);

    /// <summary>The sum of the lanes.</summary>
    static abstract float Sum(TVec value);

    /// <summary>
    /// tile[r * PanelRows + c] = x row r · panel row c over <paramref name="len"/> floats (a multiple of the lane
    /// count), for the <see cref="CpuActivations.RowTile"/> rows at <paramref name="x"/> (<paramref name="ldx"/>
    /// apart) and the PanelRows rows at <paramref name="p"/> (<paramref name="ldp"/> apart).
    /// </summary>
    static abstract void Micro(float* x, int ldx, float* p, int ldp, int len, float* tile);
}
