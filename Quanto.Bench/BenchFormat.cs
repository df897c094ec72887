using Quanto.Kernels;
using Quanto.Kernels.Cpu;
using Quanto.Kernels.Cpu.Int8;
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

    /// <summary>Every format, in table order: name and how to make it from a float weight and a rotation budget.</summary>
    public static IReadOnlyList<(string Name, Func<Tensor, long, BenchFormat> Make)> All { get; } =
    [
        ("fp32", (w, r) => new TorchFormat("fp32", w, ScalarType.Float32, r)),
        ("bf16", (w, r) => new TorchFormat("bf16", w, ScalarType.BFloat16, r)),
        ("fp32-gemv", (w, r) => new FloatGemvFormat(w, r)),
        ("int8", (w, r) => new QuantFormat("int8", w, QType.QInt8, r)),
        ("int4", (w, r) => new QuantFormat("int4", w, QType.QInt4, r)),
        ("int2", (w, r) => new QuantFormat("int2", w, QType.QInt2, r)),
        ("int8-panel", (w, r) => new QuantFormat("int8-panel", w, QType.QInt8, r, kernels: QuantFormat.PanelKernels)),
        ("int4-panel", (w, r) => new QuantFormat("int4-panel", w, QType.QInt4, r, kernels: QuantFormat.PanelKernels)),
        ("int2-panel", (w, r) => new QuantFormat("int2-panel", w, QType.QInt2, r, kernels: QuantFormat.PanelKernels)),
        ("int8-block", (w, r) => new QuantFormat("int8-block", w, QType.QInt8, r, kernels: QuantFormat.BlockKernels)),
        ("int4-block", (w, r) => new QuantFormat("int4-block", w, QType.QInt4, r, kernels: QuantFormat.BlockKernels)),
        ("int2-block", (w, r) => new QuantFormat("int2-block", w, QType.QInt2, r, kernels: QuantFormat.BlockKernels)),
        ("fp8_e4m3fn", (w, r) => new QuantFormat("fp8_e4m3fn", w, QType.QFloat8E4M3Fn, r)),
        ("fp8_e5m2", (w, r) => new QuantFormat("fp8_e5m2", w, QType.QFloat8E5M2, r)),
        ("w8a8", (w, r) => new W8A8Format(w, r)),
        ("int8-dyn", (w, r) => new DynamicFormat("int8-dyn", w, QType.QInt8, DynamicActivations.Int8, r)),
        ("int4-dyn", (w, r) => new DynamicFormat("int4-dyn", w, QType.QInt4, DynamicActivations.Int8, r)),
        ("int4-dyng", (w, r) => new DynamicFormat("int4-dyng", w, QType.QInt4, DynamicActivations.Int8PerGroup, r)),
        ("int2-dyn", (w, r) => new DynamicFormat("int2-dyn", w, QType.QInt2, DynamicActivations.Int8, r)),
        ("int8-dyn-portable", (w, r) => new DynamicFormat("int8-dyn-portable", w, QType.QInt8, DynamicActivations.Int8, r,
            DynamicFormat.PortableKernels)),
        ("int4-dyn-portable", (w, r) => new DynamicFormat("int4-dyn-portable", w, QType.QInt4, DynamicActivations.Int8, r,
            DynamicFormat.PortableKernels)),
        ("int2-dyn-portable", (w, r) => new DynamicFormat("int2-dyn-portable", w, QType.QInt2, DynamicActivations.Int8, r,
            DynamicFormat.PortableKernels)),
        ("int8-bf16in", (w, r) => new Bf16InputFormat("int8-bf16in", w, QType.QInt8, r)),
        ("int4-bf16in", (w, r) => new Bf16InputFormat("int4-bf16in", w, QType.QInt4, r)),
        ("int2-bf16in", (w, r) => new Bf16InputFormat("int2-bf16in", w, QType.QInt2, r)),
        ("int8-bf16", (w, r) => new DynamicFormat("int8-bf16", w, QType.QInt8, DynamicActivations.BFloat16, r)),
        ("int4-bf16", (w, r) => new DynamicFormat("int4-bf16", w, QType.QInt4, DynamicActivations.BFloat16, r)),
        ("int2-bf16", (w, r) => new DynamicFormat("int2-bf16", w, QType.QInt2, DynamicActivations.BFloat16, r)),
    ];

    /// <summary>The formats <paramref name="only"/> selects (null: all), always with the fp32 and bf16 baselines
    /// that every row's ratios need.</summary>
    /// <exception cref="ArgumentException">An unknown name.</exception>
    public static IReadOnlyList<(string Name, Func<Tensor, long, BenchFormat> Make)> Selected(IReadOnlySet<string>? only)
    {
        if (only is null) return All;
        string[] unknown = only.Where(name => All.All(f => f.Name != name)).ToArray();
        if (unknown.Length > 0)
        {
            throw new ArgumentException($"Unknown format(s) {string.Join(", ", unknown)}; the formats are " +
                $"{string.Join(", ", All.Select(f => f.Name))}.");
        }
        return All.Where(f => f.Name is "fp32" or "bf16" || only.Contains(f.Name)).ToArray();
    }
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

/// <summary>The float32 weight through Quanto's float GEMV (Cpu/Float/FloatGemv.cs) at 1-3 rows, whatever its size
/// (the fp32 row's F.linear from 4 rows): against fp32, where its size threshold should sit.</summary>
internal sealed class FloatGemvFormat : BenchFormat
{
    private readonly Tensor[] _copies;

    public FloatGemvFormat(Tensor weight, long rotationBytes)
    {
        WeightBytes = weight.NumberOfElements * sizeof(float);
        _copies = Enumerable.Range(0, CopyCount(WeightBytes, rotationBytes))
            .Select(_ => weight.to(ScalarType.Float32, copy: true)).ToArray();
    }

    public override string Name => "fp32-gemv";

    public override long WeightBytes { get; }

    public override Tensor Run(Tensor x, int copy)
    {
        Tensor w = _copies[copy % _copies.Length];
        return Quanto.Kernels.Cpu.Float.FloatGemv.Fits(x, w, null)
            ? Quanto.Kernels.Cpu.Float.FloatGemv.Linear(x, w, null)
            : nn.functional.linear(x, w);
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

    /// <param name="name">Row name.</param>
    /// <param name="weight">The float weight.</param>
    /// <param name="qtype">Its quantized type.</param>
    /// <param name="rotationBytes">Copies are made until they exceed this many bytes.</param>
    /// <param name="int8Activations">Make the int8-activation layout (the dynamic formats) instead of the
    /// float-activation one, before the copies are cloned from it.</param>
    /// <param name="kernels">The backend (default <see cref="CpuKernels.Instance"/>).</param>
    public QuantFormat(string name, Tensor weight, QType qtype, long rotationBytes, bool int8Activations = false,
        CpuKernels? kernels = null)
    {
        Name = name;
        Kernels = kernels ?? CpuKernels.Instance;
        // Quantized once per weight and qtype (w8a8 reuses int8's): quantizing 4096^2 takes seconds.
        if (!Quantized.TryGetValue((weight, qtype), out QuantizedWeight? quantized))
            Quantized[(weight, qtype)] = quantized = WeightQuantizer.Quantize(weight, qtype);
        WeightBytes = quantized.ByteSize;
        var first = (CpuPreparedWeight)Kernels.Prepare(quantized);
        // The float GEMM (float32 rows on qint8/qint4/qint2, from 4 rows, 16 on AVX2) reads the Dot layout too.
        if (int8Activations || (Kernels.FloatGemmEnabled && qtype is QType.QInt8 or QType.QInt4 or QType.QInt2))
            _ = first.Dot;
        if (!int8Activations) first.EnsureBlocks();
        Copies = Enumerable.Range(0, CopyCount(WeightBytes, rotationBytes))
            .Select(i => i == 0 ? first : (PreparedWeight)first.Clone()).ToArray();
    }

    public override string Name { get; }

    public override long WeightBytes { get; }

    protected PreparedWeight[] Copies { get; }

    /// <summary>Drops the quantized weights kept for reuse (after each shape).</summary>
    public static void ForgetQuantized()
    {
        foreach (QuantizedWeight q in Quantized.Values) q.Dispose();
        Quantized.Clear();
    }

    /// <summary>The weight-only kernels as they were before the float GEMM: the 4 x 4 panel GEMM from 4 rows
    /// (the <c>intN-panel</c> rows, for before/after ratios in one run).</summary>
    public static CpuKernels PanelKernels { get; } = new() { FloatGemmEnabled = false };

    /// <summary>The weight-only GEMV as it was before the Dot-layout GEMV: 1 to 3 rows of qint8/qint4/qint2 on the
    /// block layout (the <c>intN-block</c> rows, for before/after ratios in one run).</summary>
    public static CpuKernels BlockKernels { get; } = new() { DotGemvEnabled = false };

    /// <summary>The backend the copies were prepared for.</summary>
    protected CpuKernels Kernels { get; }

    public override Tensor Run(Tensor x, int copy) => Kernels.Linear(x, Copies[copy % Copies.Length], null);

    public override void Dispose()
    {
        foreach (PreparedWeight p in Copies) p.Dispose();
    }
}

/// <summary>
/// A bf16 model's weight-only layer: x converted to bf16 inside the timed call (as the bf16 baseline does), then
/// <c>CpuKernels.Linear</c>, bf16 out: the apples-to-apples row against TorchSharp bf16. Each copy's panel layout is
/// made before timing.
/// </summary>
internal sealed class Bf16InputFormat(string name, Tensor weight, QType qtype, long rotationBytes)
    : QuantFormat(name, weight, qtype, rotationBytes, int8Activations: true)
{
    public override Tensor Run(Tensor x, int copy)
    {
        using Tensor xt = x.to(ScalarType.BFloat16);
        return CpuKernels.Instance.Linear(xt, Copies[copy % Copies.Length], null);
    }
}

/// <summary>
/// Dynamic activations (<see cref="DynamicActivations"/>): the float input is quantized per token or per block to
/// int8, or rounded to bf16, inside every timed call, then the panel kernels run. Each copy's panel layout is made
/// before timing.
/// </summary>
internal sealed class DynamicFormat : QuantFormat
{
    private readonly DynamicActivations _mode;

    public DynamicFormat(string name, Tensor weight, QType qtype, DynamicActivations mode, long rotationBytes,
        CpuKernels? kernels = null)
        : base(name, weight, qtype, rotationBytes, int8Activations: true, kernels: kernels) =>
        _mode = mode;

    /// <summary>The portable Vector256 int8-activation kernels (<c>-dyn-portable</c> rows: the path that AVX2 CPUs
    /// ran before the vpmaddubsw kernels, timed beside them).</summary>
    public static CpuKernels PortableKernels { get; } = new() { DotPath = DotPath.Portable256 };

    public override Tensor Run(Tensor x, int copy) =>
        Kernels.LinearDynamic(x, Copies[copy % Copies.Length], null, _mode);
}

/// <summary>
/// W8A8: int8 weights x int8 activations. Activations are quantized per tensor (absmax / 127) as a dynamic quant stub
/// would; the codes of the last input are reused when the same input comes again (the gemv/gemm rows time the kernel,
/// the mlp row quantizes each new hidden activation inside the timed call).
/// </summary>
internal sealed class W8A8Format(Tensor weight, long rotationBytes)
    : QuantFormat("w8a8", weight, QType.QInt8, rotationBytes, int8Activations: true)
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
