using Quanto.Kernels;
using Quanto.Kernels.Cpu;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Bench;

/// <summary>One row format of the table: how its weights are made and how one product is run.</summary>
internal abstract class BenchFormat : IDisposable
{
    public abstract string Name { get; }

    /// <summary>Bytes of one weight matrix as the kernel reads it (codes + scales + shifts, or float).</summary>
    public abstract long WeightBytes { get; }

    /// <summary>y = x · W_copyᵀ; the result is disposed by the caller.</summary>
    public abstract Tensor Run(Tensor x, int copy);

    public abstract void Dispose();

    /// <summary>Copies needed so that rotating through them exceeds <paramref name="rotationBytes"/>.</summary>
    public static int CopyCount(long bytesPerCopy, long rotationBytes) =>
        (int)Math.Max(1, (rotationBytes + bytesPerCopy - 1) / bytesPerCopy);

    public static IEnumerable<Func<Tensor, long, BenchFormat>> All() =>
    [
        (w, r) => new TorchFormat("fp32", w, ScalarType.Float32, r),
        (w, r) => new TorchFormat("bf16", w, ScalarType.BFloat16, r),
        (w, r) => new QuantFormat("int8", w, QType.QInt8, r),
        (w, r) => new QuantFormat("int4", w, QType.QInt4, r),
        (w, r) => new QuantFormat("int2", w, QType.QInt2, r),
        (w, r) => new QuantFormat("fp8_e4m3fn", w, QType.QFloat8E4M3Fn, r),
        (w, r) => new QuantFormat("fp8_e5m2", w, QType.QFloat8E5M2, r),
        (w, r) => new W8A8Format(w, r),
    ];
}

/// <summary>TorchSharp F.linear on a float weight (the baselines).</summary>
internal sealed class TorchFormat : BenchFormat
{
    private readonly Tensor[] _copies;
    private readonly ScalarType _dtype;

    public TorchFormat(string name, Tensor weight, ScalarType dtype, long rotationBytes)
    {
        Name = name;
        _dtype = dtype;
        WeightBytes = weight.NumberOfElements * (dtype == ScalarType.Float32 ? 4 : 2);
        _copies = Enumerable.Range(0, CopyCount(WeightBytes, rotationBytes)).Select(_ => weight.to(dtype, copy: true)).ToArray();
    }

    public override string Name { get; }

    public override long WeightBytes { get; }

    public override Tensor Run(Tensor x, int copy)
    {
        using Tensor xt = x.to(_dtype);
        return nn.functional.linear(xt, _copies[copy % _copies.Length]);
    }

    public override void Dispose()
    {
        foreach (Tensor t in _copies) t.Dispose();
    }
}

/// <summary>A quantized weight run by the CPU kernels; each copy is a separate Prepare (separate memory).</summary>
internal class QuantFormat : BenchFormat
{
    private static readonly Dictionary<(Tensor, QType), QuantizedWeight> Quantized = [];

    public QuantFormat(string name, Tensor weight, QType qtype, long rotationBytes)
    {
        Name = name;
        // Quantized once per weight and qtype (w8a8 reuses int8's): quantizing 4096^2 takes seconds.
        if (!Quantized.TryGetValue((weight, qtype), out QuantizedWeight? quantized))
            Quantized[(weight, qtype)] = quantized = WeightQuantizer.Quantize(weight, qtype);
        WeightBytes = quantized.ByteSize;
        var first = (CpuPreparedWeight)CpuKernels.Instance.Prepare(quantized);
        Copies = Enumerable.Range(0, CopyCount(WeightBytes, rotationBytes))
            .Select(i => i == 0 ? first : (PreparedWeight)first.Clone()).ToArray();
    }

    public override string Name { get; }

    public override long WeightBytes { get; }

    protected PreparedWeight[] Copies { get; }

    public override Tensor Run(Tensor x, int copy) => CpuKernels.Instance.Linear(x, Copies[copy % Copies.Length], null);

    public override void Dispose()
    {
        foreach (PreparedWeight p in Copies) p.Dispose();
    }
}

/// <summary>
/// W8A8: int8 weights x int8 activations. Activations are quantized per tensor (absmax / 127) as a dynamic quant stub
/// would; the codes of the last input are reused when the same input comes again (the gemv/gemm rows time the kernel,
/// the mlp row quantizes each new hidden activation inside the timed call).
/// </summary>
internal sealed class W8A8Format(Tensor weight, long rotationBytes) : QuantFormat("w8a8", weight, QType.QInt8, rotationBytes)
{
    private Tensor? _lastInput;
    private Tensor? _codes;
    private Tensor? _scale;

    public override Tensor Run(Tensor x, int copy)
    {
        if (!ReferenceEquals(x, _lastInput))
        {
            _codes?.Dispose();
            _scale?.Dispose();
            // Kept across calls: detached from every dispose scope (the caller's included), disposed here.
            using (NewDisposeScope())
            {
                _scale = x.abs().max().div(127f).clamp_min(1e-12f).DetachFromDisposeScope();
                _codes = x.div(_scale).round().clamp(-128, 127).to(ScalarType.Int8).DetachFromDisposeScope();
            }
            _lastInput = x;
        }
        return CpuKernels.Instance.LinearInt8(_codes!, _scale!, Copies[copy % Copies.Length], null, ScalarType.Float32);
    }

    public override void Dispose()
    {
        _codes?.Dispose();
        _scale?.Dispose();
        base.Dispose();
    }
}
