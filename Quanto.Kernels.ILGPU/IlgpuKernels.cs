using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.OpenCL;
using Quanto.Kernels.Ilgpu.Accelerators;
using Quanto.Kernels.Ilgpu.Kernels;
using Quanto.Kernels.Ilgpu.Layout;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Kernels.Ilgpu;

/// <summary>
/// The ILGPU backend: packed int2/int4/int8/fp8 weight-only matmuls and W8A8 on CUDA, OpenCL or ILGPU's CPU
/// accelerator. Weights are uploaded once by <see cref="Prepare"/> and stay on the accelerator; a call moves only x
/// and y. Calls are serialised on the accelerator's stream. The CPU accelerator simulates GPU threads: use it to check
/// the kernels, not for speed (<see cref="IsSimulated"/>), and register this backend only where it is fast:
/// <c>if (!ilgpu.IsSimulated) QuantKernels.Register(ilgpu, IlgpuKernels.DefaultPriority);</c>
/// </summary>
public sealed class IlgpuKernels : IQuantKernels, IDisposable
{
    /// <summary>A registry priority above the managed CPU kernels (which register below 100).</summary>
    public const int DefaultPriority = 200;

    private readonly Context _context;
    private readonly Accelerator _accelerator;
    private readonly KernelLaunchers _launchers;
    private readonly Lock _gate = new();
    private readonly Scratch<float> _x;
    private readonly Scratch<int> _xCodes;
    private readonly Scratch<float> _y;

    /// <summary>Chooses an accelerator (see <see cref="IlgpuOptions"/>) and prepares to load kernels on it.</summary>
    /// <exception cref="NotSupportedException">The requested accelerator is not present or usable; the message lists
    /// the devices seen and why each was refused.</exception>
    public IlgpuKernels(IlgpuOptions? options = null)
    {
        options ??= new IlgpuOptions();
        var (context, devices, missing) = DeviceDiscovery.Discover(options);
        try
        {
            Report = AcceleratorSelector.Choose(devices.Select(d => d.Candidate).ToList(), missing, options);
            ILGPU.Runtime.Device device = devices.First(d => ReferenceEquals(d.Candidate, Report.Chosen)).Device;
            if (device is CLDevice cl && !cl.Capabilities.GenericAddressSpace) OpenCLOptIn.Apply(cl);
            _accelerator = device.CreateAccelerator(context);
        }
        catch
        {
            context.Dispose();
            throw;
        }
        _context = context;
        Kind = Report.Chosen.Kind;
        _launchers = new KernelLaunchers(_accelerator);
        _x = new Scratch<float>(_accelerator);
        _xCodes = new Scratch<int>(_accelerator);
        _y = new Scratch<float>(_accelerator);
    }

    /// <summary>What was seen, chosen and refused, and why.</summary>
    public AcceleratorReport Report { get; }

    /// <summary>The accelerator family in use.</summary>
    public AcceleratorKind Kind { get; }

    /// <summary>True on ILGPU's CPU accelerator (simulated threads: correct, slow).</summary>
    public bool IsSimulated => Kind == AcceleratorKind.Cpu;

    /// <summary>The ILGPU accelerator (for diagnostics and benchmarks).</summary>
    public Accelerator Accelerator => _accelerator;

    /// <inheritdoc />
    public string Name => Kind switch
    {
        AcceleratorKind.Cuda => "ilgpu-cuda",
        AcceleratorKind.OpenCL => "ilgpu-opencl",
        _ => "ilgpu-cpu",
    };

    /// <inheritdoc />
    public bool CanRun(QuantizedWeight weight, ScalarType inputDtype, TorchSharp.torch.Device device) =>
        weight is not null && KernelLayout.Unsupported(weight) is null && device.type == TorchSharp.DeviceType.CPU &&
        inputDtype is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16;

    /// <inheritdoc />
    public PreparedWeight Prepare(QuantizedWeight weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        KernelLayout layout = KernelLayout.From(weight);
        lock (_gate) return new IlgpuPreparedWeight(weight, this, _accelerator, layout);
    }

    /// <inheritdoc />
    public Tensor Linear(Tensor input, PreparedWeight weight, Tensor? bias)
    {
        var prepared = KernelChecks.Expect<IlgpuPreparedWeight>(weight, this);
        KernelChecks.CheckLinear(input, prepared, bias);
        CheckHost(input);
        using var scope = NewDisposeScope();
        (float[] x, int m) = Rows(input.to(ScalarType.Float32), prepared.Shape.K);
        float[] y = new float[(long)m * prepared.Shape.N];
        if (m > 0)
        {
            LinearShape shape = prepared.Shape with { M = m };
            bool gemm = m > 1;
            lock (_gate)
            {
                ArrayView<float> xView = _x.Fill(x);
                ArrayView<float> yView = _y.Reserve(y.Length);
                KernelConfig config = KernelLaunchers.Config(m, shape.N, gemm);
                if (prepared.Format is WeightFormat.Int4 or WeightFormat.Int2)
                {
                    _launchers.Packed(prepared.Format, gemm)(config, xView, prepared.Codes.View, prepared.Scale.View,
                        prepared.Shift.View, yView, shape);
                }
                else
                {
                    _launchers.Bytes(prepared.Format, gemm)(config, xView, prepared.Codes.View, prepared.Scale.View,
                        yView, shape);
                }
                _accelerator.Synchronize();
                yView.CopyToCPU(y);
            }
        }
        return Finish(y, input, prepared, bias, input.dtype).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public Tensor LinearInt8(Tensor inputCodes, Tensor inputScale, PreparedWeight weight, Tensor? bias,
        ScalarType outputDtype)
    {
        var prepared = KernelChecks.Expect<IlgpuPreparedWeight>(weight, this);
        if (prepared.Format != WeightFormat.Int8)
            throw new ArgumentException($"LinearInt8 needs qint8 weights; got {prepared.Source}.", nameof(weight));
        KernelChecks.CheckLinear(inputCodes, prepared, bias);
        CheckHost(inputCodes);
        ArgumentNullException.ThrowIfNull(inputScale);
        if (inputCodes.dtype != ScalarType.Int8)
            throw new ArgumentException($"LinearInt8 needs int8 input codes; got {inputCodes.dtype}.", nameof(inputCodes));
        if (inputScale.NumberOfElements != 1)
        {
            throw new ArgumentException(
                $"LinearInt8 needs one per-tensor input scale; got shape {QuantizedWeight.FormatShape(inputScale.shape)}.",
                nameof(inputScale));
        }
        using var scope = NewDisposeScope();
        float xScale = inputScale.to(ScalarType.Float32).cpu().item<float>();
        LinearShape shape = prepared.Shape;
        int[] words = PaddedCodes(inputCodes, shape, out int m);
        float[] y = new float[(long)m * shape.N];
        if (m > 0)
        {
            bool gemm = m > 1;
            lock (_gate)
            {
                ArrayView<int> xView = _xCodes.Fill(words);
                ArrayView<float> yView = _y.Reserve(y.Length);
                _launchers.W8A8(gemm)(KernelLaunchers.Config(m, shape.N, gemm), xView, prepared.Codes.View,
                    prepared.Scale.View, xScale, yView, shape with { M = m });
                _accelerator.Synchronize();
                yView.CopyToCPU(y);
            }
        }
        return Finish(y, inputCodes, prepared, bias, outputDtype).MoveToOuterDisposeScope();
    }

    /// <summary>Frees the scratch buffers, the accelerator and the context (prepared weights must be disposed first).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _x.Dispose();
            _xCodes.Dispose();
            _y.Dispose();
            _accelerator.Dispose();
            _context.Dispose();
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{Name}: {Report.Chosen.Name}";

    private static void CheckHost(Tensor input)
    {
        if (input.device.type != TorchSharp.DeviceType.CPU)
        {
            throw new ArgumentException(
                $"The ILGPU backend reads activations from host memory; got a tensor on {input.device}.", nameof(input));
        }
    }

    private static (float[] Values, int Rows) Rows(Tensor input, int k)
    {
        using Tensor flat = input.reshape(-1, k).contiguous();
        int rows = checked((int)flat.shape[0]);
        return (rows == 0 ? [] : flat.data<float>().ToArray(), rows);
    }

    // int8 codes, each row zero-padded to the weight's whole 16-byte chunks, as int words for the W8A8 kernel.
    private static int[] PaddedCodes(Tensor codes, LinearShape shape, out int m)
    {
        using Tensor flat = codes.reshape(-1, shape.K).contiguous();
        m = checked((int)flat.shape[0]);
        int rowBytes = shape.ChunksPerRow * Chunk16.Bytes;
        var words = new int[(long)m * rowBytes / 4];
        if (m == 0) return words;
        Span<byte> target = MemoryMarshal.AsBytes(words.AsSpan());
        ReadOnlySpan<byte> source = flat.bytes;
        for (int row = 0; row < m; row++)
            source.Slice(row * shape.K, shape.K).CopyTo(target.Slice(row * rowBytes, shape.K));
        return words;
    }

    private static Tensor Finish(float[] y, Tensor input, IlgpuPreparedWeight weight, Tensor? bias, ScalarType dtype)
    {
        long[] outShape = [.. input.shape[..^1], weight.Shape.N];
        Tensor result = tensor(y, [y.Length / weight.Shape.N, weight.Shape.N]).reshape(outShape);
        if (bias is not null) result = result.add(bias.to(ScalarType.Float32).cpu());
        return result.to(dtype);
    }
}
