using Quanto.Functional;
using Quanto.Kernels;
using Quanto.Quantization;
using Quanto.Tensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Nn;

/// <summary>
/// Base of the quantized modules. Until <see cref="Freeze"/> the module shares the float module's parameters and
/// quantizes its weight on every call (dynamic mode: calibration and QAT work on the float weight); after it, the
/// float weight is gone and a <see cref="Tensors.QuantizedWeight"/> prepared for a kernel backend takes its place.
/// A forward pass is three explicit steps, which generated code calls one by one:
/// <see cref="InputStub"/> (quant stub), <see cref="Compute"/> (the quantized op), <see cref="OutputStub"/> (dequant
/// stub). Activation scales live in the <c>input_scale</c> / <c>output_scale</c> buffers; 1.0 means "not calibrated",
/// as in optimum-quanto's files.
/// </summary>
public abstract class QModule : nn.Module<Tensor, Tensor>
{
    /// <summary>Initialises the quantization settings and scale buffers.</summary>
    /// <param name="name">TorchSharp module name.</param>
    /// <param name="weights">Weight qtype, or null for modules whose weights stay float.</param>
    /// <param name="activations">Activation qtype (qint8 or a float8 type), or null.</param>
    /// <param name="groupSize">Requested group size for 2/4-bit weights (default 128).</param>
    /// <param name="optimizer">Weight optimizer (default per qtype).</param>
    /// <exception cref="ArgumentException">Activations given a 2/4-bit qtype.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An undefined qtype, or a group size that is not a positive
    /// multiple of 8.</exception>
    protected QModule(string name, QType? weights, QType? activations, int? groupSize, Optimizer? optimizer)
        : base(name)
    {
        CheckSettings(weights, activations, groupSize);
        WeightQType = weights;
        ActivationQType = activations;
        GroupSize = groupSize;
        Optimizer = optimizer;
        Path = name;
        input_scale = ones(Array.Empty<long>()).DetachFromDisposeScope();
        output_scale = ones(Array.Empty<long>()).DetachFromDisposeScope();
        register_buffer(nameof(input_scale), input_scale);
        register_buffer(nameof(output_scale), output_scale);
    }

    /// <summary>
    /// The checks every quantized module makes on its settings; Quantizer.Quantize and generated code's Quantize
    /// overrides call them first, so a bad request fails before any module is built.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An undefined qtype (such as <c>default(QType)</c>), or a group
    /// size that is not a positive multiple of 8.</exception>
    /// <exception cref="ArgumentException">Activations given a 2/4-bit qtype.</exception>
    internal static void CheckSettings(QType? weights, QType? activations, int? groupSize)
    {
        if (weights is QType w) CheckDefined(w, nameof(weights));
        if (activations is QType a)
        {
            CheckDefined(a, nameof(activations));
            if (a.Info().IsPacked)
            {
                throw new ArgumentException(
                    $"Activations are quantized per tensor to qint8 or a float8 type; {a.QuantoName()} is for " +
                    "weights only.", nameof(activations));
            }
        }
        if (groupSize is int g) WeightChecks.CheckGroupSize(g);
    }

    /// <summary><see cref="CheckSettings"/> for a request that must quantize something (weights, activations or
    /// both), as Quantizer.Quantize and the generated overrides take it.</summary>
    /// <exception cref="ArgumentException">Neither qtype given; see also <see cref="CheckSettings"/>.</exception>
    internal static void CheckRequest(QType? weights, QType? activations, int? groupSize)
    {
        if (weights is null && activations is null)
        {
            throw new ArgumentException("Quantize needs a weights qtype, an activations qtype, or both.",
                nameof(weights));
        }
        CheckSettings(weights, activations, groupSize);
    }

    private static void CheckDefined(QType qtype, string parameter)
    {
        if (!QTypes.All.Contains(qtype))
        {
            throw new ArgumentOutOfRangeException(parameter, qtype,
                $"Not a defined qtype; use one of {string.Join(", ", QTypes.All)}.");
        }
    }

    /// <summary>Weight qtype (null: weights stay float).</summary>
    public QType? WeightQType { get; }

    /// <summary>Activation qtype (null: activations stay float).</summary>
    public QType? ActivationQType { get; }

    /// <summary>Requested group size for 2/4-bit weights (null: 128 with optimum-quanto's fallback).</summary>
    public int? GroupSize { get; }

    /// <summary>The weight optimizer (null: the qtype's default).</summary>
    public Optimizer? Optimizer { get; }

    /// <summary>
    /// Whether the matmul quantizes this module's float activations to int8 on the fly at inference
    /// (<see cref="Kernels.DynamicActivations"/>; frozen or dynamic mode, never while training). Null follows
    /// <see cref="QuantKernels.DynamicActivations"/>. Ignored when activations are quantized statically
    /// (<see cref="ActivationQType"/> set). A run-time choice: it is not saved.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An undefined mode.</exception>
    public DynamicActivations? DynamicActivations
    {
        get => _dynamicActivations;
        set
        {
            if (value is { } mode) KernelChecks.CheckDynamic(mode);
            _dynamicActivations = value;
        }
    }

    private DynamicActivations? _dynamicActivations;

    /// <summary>The <see cref="DynamicActivations"/> mode this module's next inference call uses.</summary>
    public DynamicActivations EffectiveDynamicActivations => ActivationQType is null
        ? DynamicActivations ?? QuantKernels.DynamicActivations
        : Kernels.DynamicActivations.None;

    /// <summary>Path of this module in its model ("blocks.0.mlp.fc1"), used in messages and files.</summary>
    public string Path { get; set; }

    /// <summary>Scale of the input activations (scalar; 1.0 = not calibrated).</summary>
#pragma warning disable IDE1006 // TorchSharp buffer names follow optimum-quanto's state-dict keys
    public Tensor input_scale { get; protected set; } // set by TorchSharp's .to() through reflection

    /// <summary>Scale of the output activations (scalar; 1.0 = not calibrated or streamlined away).</summary>
    public Tensor output_scale { get; protected set; }
#pragma warning restore IDE1006

    /// <summary>The quantized weight once frozen; null in dynamic mode or for float-weight modules.</summary>
    public QuantizedWeight? QuantizedWeight { get; private set; }

    /// <summary>True after <see cref="Freeze"/>.</summary>
    public bool IsFrozen => QuantizedWeight is not null;

    /// <summary>The float weight (dynamic mode), or null once frozen. Read from the parameter registry, which
    /// TorchSharp's .to() updates.</summary>
    public Parameter? FloatWeight => _internal_params.TryGetValue("weight", out Parameter? p) ? p : null;

    /// <summary>The bias, always float, or null.</summary>
    public Parameter? FloatBias => _internal_params.TryGetValue("bias", out Parameter? p) ? p : null;

    /// <summary>Replaces the float weight by its quantized form; memory drops. Idempotent.</summary>
    public void Freeze()
    {
        if (IsFrozen || WeightQType is not QType qtype) return;
        Parameter weight = FloatWeight ?? throw new InvalidOperationException($"{Describe()} has no weight to freeze.");
        QuantizedWeight = WeightQuantizer.Quantize(weight, qtype, GroupSize, Optimizer);
        _internal_params.Remove("weight");
    }

    /// <summary>Puts a quantized weight in place (loading a quantized checkpoint): the module becomes frozen.</summary>
    /// <exception cref="ArgumentException">Its qtype or shape disagrees with this module.</exception>
    public void LoadQuantizedWeight(QuantizedWeight weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.QType != WeightQType)
        {
            throw new ArgumentException(
                $"{Describe()} quantizes weights to {WeightQType?.QuantoName() ?? "none"}; got {weight.QType.QuantoName()}.",
                nameof(weight));
        }
        long[] expected = ExpectedWeightShape();
        if (!weight.Shape.SequenceEqual(expected))
        {
            throw new ArgumentException(
                $"{Describe()} expects a weight of shape {QuantizedWeight.FormatShape(expected)}; got " +
                $"{QuantizedWeight.FormatShape(weight.Shape)}.", nameof(weight));
        }
        QuantizedWeight?.Dispose();
        QuantizedWeight = weight;
        if (_internal_params.ContainsKey("weight")) _internal_params.Remove("weight"); // absent once frozen
    }

    /// <summary>
    /// Quant stub: calibrates (inside a <see cref="Calibration"/>) and quantizes the input. Returns the
    /// input unchanged when activations stay float.
    /// </summary>
    /// <exception cref="InvalidOperationException">Activations are quantized but were never calibrated.</exception>
    public QActivation InputStub(Tensor input)
    {
        if (ActivationQType is not QType qtype) return new QActivation(input, null, null);
        if (Calibration.Current is { } calibration)
        {
            calibration.ObserveInput(this, input);
        }
        else if (input_scale.item<float>() == 1f)
        {
            throw new InvalidOperationException(
                $"{Describe()} quantizes its input to {qtype.QuantoName()} but was never calibrated (input_scale is " +
                "1.0). Run representative batches inside `using (new Calibration()) model.forward(x);` first, or " +
                "quantize with activations: null.");
        }
        if (is_grad_enabled() && input.requires_grad || training && !IsFrozen)
            return new QActivation(QuantizedOps.fake_quantize(input, qtype, input_scale), null, input_scale);
        Tensor codes = QuantizedOps.quantize(input, qtype, input_scale);
        return new QActivation(QuantizedOps.dequantize(codes, input_scale, input.dtype), codes, input_scale);
    }

    /// <summary>The quantized operation on a stubbed input.</summary>
    public abstract Tensor Compute(QActivation input);

    /// <summary>
    /// Dequant stub: calibrates the output scale and, when activations are quantized and the output scale is
    /// calibrated, returns quantize-then-dequantize of the output (what the next layer would see).
    /// </summary>
    public Tensor OutputStub(Tensor output)
    {
        if (ActivationQType is not QType qtype) return output;
        Calibration? calibration = Calibration.Current;
        calibration?.ObserveOutput(this, output);
        Tensor result = output_scale.item<float>() == 1f ? output : QuantizedOps.fake_quantize(output, qtype, output_scale);
        calibration?.TrackOutput(this, result);
        return result;
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        Tensor output = Compute(InputStub(input));
        output.MoveToOuterDisposeScope();
        Tensor result = OutputStub(output);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>The prepared (kernel-layout) weight for inputs of this dtype on this device: made once per backend
    /// and kept in the weight (<see cref="QuantizedWeight.PreparedFor"/>), so concurrent first calls share one.</summary>
    protected PreparedWeight PreparedFor(Tensor input)
    {
        QuantizedWeight weight = QuantizedWeight ?? throw new InvalidOperationException($"{Describe()} is not frozen.");
        return weight.PreparedFor(SelectBackend(weight, input));
    }

    /// <summary>
    /// The linear part of Compute shared by QLinear and QConv2d: the W8A8 kernel when input and weight are both int8,
    /// else the weight-only kernel (frozen) or the dynamic path (weights quantized now; straight-through in training).
    /// </summary>
    protected Tensor RunLinear(QActivation input, Func<Tensor, Tensor> floatPath, Func<PreparedWeight, Tensor> kernelPath,
        Func<PreparedWeight, Tensor>? int8Path)
    {
        if (WeightQType is not QType qtype) return floatPath(FloatWeight!);
        bool frozen = IsFrozen;
        if (!frozen && (training || is_grad_enabled() && (FloatWeight!.requires_grad || input.Value.requires_grad)))
            return floatPath(QuantizedOps.fake_quantize_weight(FloatWeight!, qtype, GroupSize, Optimizer));

        if (frozen) return Run(PreparedFor(input.Value));
        // Dynamic inference: quantize now, run the same kernels a frozen module would.
        using QuantizedWeight weight = WeightQuantizer.Quantize(FloatWeight!, qtype, GroupSize, Optimizer);
        using PreparedWeight temporary = SelectBackend(weight, input.Value).Prepare(weight);
        return Run(temporary);

        // W8A8 when both input and weight are int8 (the input codes exist outside training), else weight-only.
        Tensor Run(PreparedWeight prepared) =>
            int8Path is not null && input.Codes is not null && qtype == QType.QInt8 && ActivationQType == QType.QInt8
                ? int8Path(prepared)
                : kernelPath(prepared);
    }

    /// <summary>The backend that runs this module's weight for this input (the registry's choice by default).</summary>
    protected virtual IQuantKernels SelectBackend(QuantizedWeight weight, Tensor input) =>
        QuantKernels.Select(weight, input.dtype, input.device);

    /// <summary>Blends a new observation into a scale buffer (first batch: set).</summary>
    internal void UpdateScale(Tensor scale, double observedMagnitude, double momentum)
    {
        double qmax = ActivationQType!.Value.Info().QMax;
        double fresh = observedMagnitude > 0 ? observedMagnitude / qmax : 0;
        if (fresh == 0) return; // an all-zero batch says nothing about the range
        double old = scale.item<float>();
        double updated = old == 1.0 ? fresh : momentum * old + (1 - momentum) * fresh;
        if ((float)updated == 1f) updated = Math.BitDecrement(1.0f); // 1.0 is reserved for "not calibrated"
        using (no_grad()) scale.fill_(updated);
    }

    /// <summary>Disposes a replacement that was never put in place, without disposing the float module's
    /// parameters it shares (they still belong to that module).</summary>
    internal void Abandon()
    {
        _internal_params.Clear();
        Dispose();
    }

    /// <summary>Stops quantizing the output (streamlining).</summary>
    internal void DisableOutputQuantization()
    {
        using (no_grad()) output_scale.fill_(1.0);
    }

    /// <summary>The float weight shape this module expects (for loading checks).</summary>
    protected abstract long[] ExpectedWeightShape();

    /// <summary>"QLinear 'fc1' (784 -> 256)": how messages name this module.</summary>
    public abstract string Describe();

    /// <inheritdoc />
    protected override nn.Module _to(Device device, ScalarType dtype, bool non_blocking)
    {
        MoveQuantized(device, dtype);
        return base._to(device, dtype, non_blocking);
    }

    /// <inheritdoc />
    protected override nn.Module _to(DeviceType deviceType, int deviceIndex, bool non_blocking)
    {
        MoveQuantized(new Device(deviceType, deviceIndex), null);
        return base._to(deviceType, deviceIndex, non_blocking);
    }

    /// <inheritdoc />
    protected override nn.Module _to(ScalarType dtype, bool non_blocking)
    {
        MoveQuantized(null, dtype);
        return base._to(dtype, non_blocking);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) QuantizedWeight?.Dispose();
        base.Dispose(disposing);
    }

    private void MoveQuantized(Device? device, ScalarType? dtype)
    {
        if (QuantizedWeight is not QuantizedWeight weight) return;
        if (dtype is ScalarType target && target != weight.DType)
        {
            if (!WeightChecks.IsSupportedFloat(target))
            {
                throw new InvalidOperationException(
                    $"{Describe()} holds {weight.QType.QuantoName()} weights with {weight.DType} scales; it can move to " +
                    $"Float32, Float16 or BFloat16 but not {target}. The weight stays quantized either way.");
            }
        }
        if (device is null && dtype is null) return;
        QuantizedWeight moved = weight.To(device ?? weight.Device, dtype ?? weight.DType);
        weight.Dispose();
        QuantizedWeight = moved;
    }
}

/// <summary>An activation after the quant stub: the float value the op sees, plus the int8/fp8 codes and scale when
/// it was quantized (kernels that take integer inputs use those).</summary>
/// <param name="Value">Float (dequantized) activation.</param>
/// <param name="Codes">int8/float8 codes, or null when not quantized or in training.</param>
/// <param name="Scale">The per-tensor scale, or null when not quantized.</param>
public readonly record struct QActivation(Tensor Value, Tensor? Codes, Tensor? Scale);
