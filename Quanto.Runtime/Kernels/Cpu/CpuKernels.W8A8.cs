using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using Quanto.Kernels.Cpu.W8A8;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Kernels.Cpu;

public sealed partial class CpuKernels
{
    /// <summary>K from which int32 accumulation could overflow: |x * w| &lt;= 2^14, so K * 2^14 must stay below 2^31.</summary>
    internal const int MaxInt8K = 131072;

    /// <summary>False makes the W8A8 kernels skip VNNI even where the CPU has it (tests force the fallbacks).</summary>
    internal bool UseVnni { get; init; } = true;

    /// <summary>True when this instance's W8A8 kernel is vpdpbusd (which needs unsigned activations).</summary>
    internal bool UsesVnni => UseVnni && Path switch
    {
        CpuKernelPath.Vector512 or CpuKernelPath.Vector256 => AvxVnni.IsSupported,
        _ => false,
    };

    /// <inheritdoc />
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
        fixed (byte* xBytes = x.bytes, yBytes = y.bytes)
        {
            fixed (byte* biasBytes = b is null ? default : b.bytes)
            {
                if (rows > 0) RunInt8(w, (sbyte*)xBytes, rows, xScale, (float*)yBytes, (float*)biasBytes, null);
            }
        }
        long[] outShape = [.. inputCodes.shape[..^1], w.N];
        return y.reshape(outShape).to(outputDtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// W8A8 on raw buffers: y = acc * xScale * wScale + bias, where acc = x · wᵀ in exact int32 (also written to
    /// <paramref name="accumulators"/> when not null: the tests compare it bit for bit).
    /// </summary>
    internal unsafe void RunInt8(CpuPreparedWeight w, sbyte* x, int rows, float xScale, float* y, float* bias,
        int* accumulators)
    {
        w.EnsureBlocks();
        bool unsigned = UsesVnni;
        int paddedRows = (rows + CpuActivations.RowTile - 1) / CpuActivations.RowTile * CpuActivations.RowTile;
        int stride = w.RowBytes; // = padded K: one byte per code
        using ScratchMemory.Lease memory = ScratchMemory.Rent((long)paddedRows * stride, clear: true);
        byte* xq = (byte*)memory.Pointer;
        {
            for (int r = 0; r < rows; r++)
            {
                sbyte* source = x + (long)r * w.K;
                byte* target = xq + (long)r * stride;
                // vpdpbusd wants unsigned bytes: x + 128 is x with its top bit flipped.
                if (unsigned) for (int k = 0; k < w.K; k++) target[k] = (byte)(source[k] ^ 0x80);
                else new ReadOnlySpan<byte>(source, w.K).CopyTo(new Span<byte>(target, w.K));
            }
            var job = new Int8Job(w, xq, rows, paddedRows, stride, unsigned, xScale, y, bias, accumulators,
                SelectInt8(), rows < CpuActivations.RowTile ? SelectInt8Row() : null, ChunkRows(w.N, rows));
            CpuParallel.Run(job, (w.N + job.ChunkRows - 1) / job.ChunkRows, Parallel(rows, w.K, w.N));
        }
    }

    private unsafe delegate*<byte*, int, sbyte*, int, int, int*, void> SelectInt8() => Path switch
    {
        CpuKernelPath.Vector512 => UsesVnni ? &W8A8Kernels.Vnni256 : &W8A8Kernels.Madd512,
        CpuKernelPath.Vector256 => UsesVnni ? &W8A8Kernels.Vnni256 : &W8A8Kernels.Madd256,
        CpuKernelPath.Vector128 => &W8A8Kernels.Widen128,
        _ => &W8A8Kernels.Scalar,
    };

    private unsafe delegate*<byte*, sbyte*, sbyte*, sbyte*, sbyte*, int, int*, void> SelectInt8Row() => Path switch
    {
        CpuKernelPath.Vector512 => UsesVnni ? &W8A8Kernels.Vnni256Row : &W8A8Kernels.Madd512Row,
        CpuKernelPath.Vector256 => UsesVnni ? &W8A8Kernels.Vnni256Row : &W8A8Kernels.Madd256Row,
        _ => null, // the portable paths pad to the 4 x 2 tile
    };

    private sealed unsafe class Int8Job(
        CpuPreparedWeight w, byte* x, int rows, int paddedRows, int stride, bool unsigned, float xScale, float* y,
        float* bias, int* accumulators, delegate*<byte*, int, sbyte*, int, int, int*, void> micro,
        delegate*<byte*, sbyte*, sbyte*, sbyte*, sbyte*, int, int*, void> rowMicro, int chunkRows)
        : CpuJob
    {
        public int ChunkRows { get; } = chunkRows;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public override void Run(int chunk)
        {
            int n0 = chunk * ChunkRows, n1 = Math.Min(w.N, n0 + ChunkRows);
            int* tile = stackalloc int[8];
            if (rowMicro != null)
            {
                RunRows(n0, n1, tile);
                return;
            }
            for (int m0 = 0; m0 < paddedRows; m0 += CpuGemmBlocking.RowBlock)
            {
                int m1 = Math.Min(paddedRows, m0 + CpuGemmBlocking.RowBlock);
                for (int nt = n0; nt < n1; nt += 2)
                {
                    int cols = Math.Min(2, n1 - nt);
                    sbyte* wRow = (sbyte*)w.Codes + (long)nt * w.RowBytes;
                    int ldw = cols == 2 ? w.RowBytes : 0; // a lone last row is read twice, the copy dropped
                    for (int mt = m0; mt < m1; mt += CpuActivations.RowTile)
                    {
                        micro(x + (long)mt * stride, stride, wRow, ldw, stride, tile);
                        Epilogue(tile, mt, nt, cols);
                    }
                }
            }
        }

        /// <summary>Few rows: each activation row against four weight rows at a time.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void RunRows(int n0, int n1, int* tile)
        {
            for (int nt = n0; nt < n1; nt += 4)
            {
                int cols = Math.Min(4, n1 - nt);
                sbyte* w0 = (sbyte*)w.Codes + (long)nt * w.RowBytes;
                // Missing rows of the last tile re-read row nt; their results are dropped.
                sbyte* w1 = cols > 1 ? w0 + w.RowBytes : w0, w2 = cols > 2 ? w0 + 2L * w.RowBytes : w0;
                sbyte* w3 = cols > 3 ? w0 + 3L * w.RowBytes : w0;
                for (int r = 0; r < rows; r++)
                {
                    rowMicro(x + (long)r * stride, w0, w1, w2, w3, stride, tile);
                    Epilogue(tile, r, nt, cols, tileRows: 1, tileColumns: 4);
                }
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Epilogue(int* tile, int m, int n, int cols, int tileRows = CpuActivations.RowTile,
            int tileColumns = 2)
        {
            for (int r = 0; r < tileRows && m + r < rows; r++)
            {
                for (int c = 0; c < cols; c++)
                {
                    int column = n + c;
                    // With unsigned activations the sum holds an extra 128 * sum(w); int32 wraps, so this is exact.
                    int acc = unchecked(tile[r * tileColumns + c] - (unsigned ? 128 * w.RowSums[column] : 0));
                    long index = (long)(m + r) * w.N + column;
                    if (accumulators != null) accumulators[index] = acc;
                    float value = acc * xScale * w.Scales[column];
                    y[index] = bias == null ? value : value + bias[column];
                }
            }
        }
    }
}
