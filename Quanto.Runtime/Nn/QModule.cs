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
/// stub). Activation scales live in the <c>input_scale</c> / <c>output_scale</c> buffers; whether they were
/// calibrated is a flag of its own (<see cref="InputCalibrated"/>, <see cref="OutputCalibrated"/>), never a magic
/// scale value: 1.0 is a scale like any other, as in optimum-quanto's files.
/// </summary>
public abstract class QModule : nn.Module<Tensor, Tensor>
{
    private Tensor _inputScale = null!;
    private Tensor _outputScale = null!;
    private bool _released;
    private readonly Lock _viewGate = new();
    private (QuantizedWeight Of, QuantizedWeight View)? _kernelView; // when KernelView made a view of the weight

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

    /// <summary>Scale of the input activations (scalar; 1.0 until calibrated or loaded).</summary>
#pragma warning disable IDE1006 // TorchSharp buffer names follow optimum-quanto's state-dict keys
    // TorchSharp's .to() sets these through reflection; the setters keep the buffer registry (state_dict) in step.
    public Tensor input_scale
    {
        get => _inputScale;
        protected set => ConditionallyRegisterBuffer(nameof(input_scale), _inputScale = value);
    }

    /// <summary>Scale of the output activations (scalar; 1.0 until calibrated or loaded). Streamlining keeps the
    /// calibrated value (optimum-quanto saves it and quantizes with it on reload) and clears
    /// <see cref="OutputQuantized"/> instead.</summary>
    public Tensor output_scale
    {
        get => _outputScale;
        protected set => ConditionallyRegisterBuffer(nameof(output_scale), _outputScale = value);
    }
#pragma warning restore IDE1006

    /// <summary>True once <c>input_scale</c> holds a calibrated value, or one loaded from a file (optimum-quanto's
    /// files carry no flag: a loaded scale is used as it is, 1.0 included, as optimum-quanto uses it).</summary>
    public bool InputCalibrated { get; private set; }

    /// <summary>True once <c>output_scale</c> holds a calibrated or loaded value.</summary>
    public bool OutputCalibrated { get; private set; }

    /// <summary>Whether the output stub quantizes: activations are quantized, the output scale is calibrated, and
    /// streamlining did not turn it off.</summary>
    public bool OutputQuantized => ActivationQType is not null && OutputCalibrated && !OutputStreamlined;

    /// <summary>Set by an algorithm that measures this module (GPTQ, smoothing, sensitivity): while set, the module
    /// runs in float with the probe's weight and reports its inputs. Never set outside such a pass.</summary>
    internal ModuleProbe? Probe { get; set; }

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
        ThrowIfReleased();
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
        lock (_viewGate) ReleaseKernelView();
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
        ThrowIfReleased();
        if (Probe is ModuleProbe probe)
        {
            probe.Observe(this, input);
            return new QActivation(input, null, null);
        }
        if (ActivationQType is not QType qtype) return new QActivation(input, null, null);
        if (ActiveCalibration is { } calibration)
        {
            calibration.ObserveInput(this, input);
        }
        else if (!InputCalibrated)
        {
            throw new InvalidOperationException(
                $"{Describe()} quantizes its input to {qtype.QuantoName()} but was never calibrated. Run " +
                "representative batches inside `using (new Calibration()) model.forward(x);` first, or quantize " +
                "with activations: null.");
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
        ThrowIfReleased();
        if (Probe is not null || ActivationQType is not QType qtype) return output;
        Calibration? calibration = ActiveCalibration;
        calibration?.ObserveOutput(this, output);
        Tensor result = OutputQuantized ? QuantizedOps.fake_quantize(output, qtype, output_scale) : output;
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
        QuantizedWeight kernel = KernelWeight(weight);
        return kernel.PreparedFor(SelectBackend(kernel, input));
    }

    /// <summary>The frozen weight as the kernels run it: itself, or the module's one view of it (see
    /// <see cref="KernelView"/>), made on first use and kept with its prepared forms until the weight changes.
    /// </summary>
    private QuantizedWeight KernelWeight(QuantizedWeight weight)
    {
        lock (_viewGate)
        {
            if (_kernelView is var (of, view) && ReferenceEquals(of, weight)) return view;
            ReleaseKernelView();
            QuantizedWeight made = KernelView(weight);
            if (!ReferenceEquals(made, weight)) _kernelView = (weight, made);
            return made;
        }
    }

    /// <summary>Bytes the backends' prepared forms of the frozen weight hold besides it (its kernel view's
    /// included): only the float copies (the torch backend's for small convolutions, the CPU kernels' for small
    /// layers: <see cref="PreparedWeight.FloatCopyBytes"/>), or with <paramref name="kernelLayouts"/> every form
    /// (the CPU kernels' layout, a device upload too).</summary>
    internal long PreparedByteSize(bool kernelLayouts)
    {
        lock (_viewGate)
        {
            IEnumerable<PreparedWeight> forms = (QuantizedWeight?.PreparedForms ?? [])
                .Concat(_kernelView?.View.PreparedForms ?? []);
            return forms.Sum(f => kernelLayouts ? f.ByteSize : f.FloatCopyBytes);
        }
    }

    /// <summary>
    /// The linear part of Compute shared by QLinear and QConv2d: the W8A8 kernel when input and weight are both int8,
    /// else the weight-only kernel (frozen) or the dynamic path (weights quantized now; straight-through in training).
    /// </summary>
    protected Tensor RunLinear(QActivation input, Func<Tensor, Tensor> floatPath, Func<PreparedWeight, Tensor> kernelPath,
        Func<PreparedWeight, Tensor>? int8Path)
    {
        if (Probe is ModuleProbe probe) return floatPath(probe.WeightFor(this));
        if (WeightQType is not QType qtype) return floatPath(FloatWeight!);
        bool frozen = IsFrozen;
        if (!frozen && (training || is_grad_enabled() && (FloatWeight!.requires_grad || input.Value.requires_grad)))
            return floatPath(QuantizedOps.fake_quantize_weight(FloatWeight!, qtype, GroupSize, Optimizer));

        if (frozen) return Run(PreparedFor(input.Value));
        // Dynamic inference: quantize now, run the same kernels a frozen module would.
        using QuantizedWeight weight = WeightQuantizer.Quantize(FloatWeight!, qtype, GroupSize, Optimizer);
        QuantizedWeight view = KernelView(weight);
        try
        {
            using PreparedWeight temporary = SelectBackend(view, input.Value).Prepare(view);
            return Run(temporary);
        }
        finally
        {
            if (!ReferenceEquals(view, weight)) view.Dispose();
        }

        // W8A8 when both input and weight are int8 (the input codes exist outside training), else weight-only.
        Tensor Run(PreparedWeight prepared) =>
            int8Path is not null && input.Codes is not null && qtype == QType.QInt8 && ActivationQType == QType.QInt8
                ? int8Path(prepared)
                : kernelPath(prepared);
    }

    /// <summary>
    /// The quantized weight in the shape the kernels run: <paramref name="weight"/> itself, or a new view on its
    /// tensors (QConv1d runs its (out, in, k) weight as the (out, in, 1, k) weight of a height-1 2-D convolution),
    /// which the caller disposes.
    /// </summary>
    protected virtual QuantizedWeight KernelView(QuantizedWeight weight) => weight;

    /// <summary>The backend that runs this module's weight for this input (the registry's choice by default).</summary>
    protected virtual IQuantKernels SelectBackend(QuantizedWeight weight, Tensor input) =>
        QuantKernels.Select(weight, input.dtype, input.device);

    /// <summary>Stores a calibrated input (<paramref name="input"/> true) or output scale and marks it calibrated.
    /// </summary>
    internal void SetCalibratedScale(bool input, double scale)
    {
        using (no_grad()) (input ? input_scale : output_scale).fill_(scale);
        if (input) InputCalibrated = true;
        else OutputCalibrated = true;
    }

    /// <summary>After the scale buffers were loaded from a file: what they hold (our files' metadata says; for
    /// optimum-quanto's files both are taken as calibrated and the output as quantized, as it runs them).</summary>
    internal void SetLoadedScaleState(bool inputCalibrated, bool outputCalibrated, bool outputStreamlined)
    {
        InputCalibrated = inputCalibrated;
        OutputCalibrated = outputCalibrated;
        OutputStreamlined = outputStreamlined;
    }

    /// <summary>True once streamlining turned output quantization off.</summary>
    internal bool OutputStreamlined { get; private set; }

    /// <summary>Disposes a replacement that was never put in place, without disposing the float module's
    /// parameters it shares (they still belong to that module).</summary>
    internal void Abandon()
    {
        _released = true;
        _internal_params.Clear();
        Dispose();
    }

    /// <summary>The calibration this module records into: one started on its model (<see cref="Calibration"/>'s
    /// model constructor sets it while it runs), else the ambient one.</summary>
    internal Calibration? ActiveCalibration => ScopedCalibration ?? Calibration.Current;

    /// <summary>The model-scoped calibration running on this module, if any (set and restored by it).</summary>
    internal Calibration? ScopedCalibration { get; set; }

    /// <summary>
    /// Generated models keep this module beside the user's <paramref name="layer"/>, sharing its parameters. After
    /// the layer moved (TorchSharp's <c>.to()</c> replaced and disposed its parameters), this takes the layer's new
    /// parameters in place of the shared ones and moves what it owns (scales, quantized weight) the same way.
    /// </summary>
    /// <param name="layer">The user's layer this module shares parameters with.</param>
    /// <param name="move">This module's own move (its <c>_to</c> overload for the same target), run without the
    /// shared parameters.</param>
    internal void FollowLayer(nn.Module layer, Func<QModule, nn.Module> move)
    {
        string[] shared = _internal_params.Keys.ToArray();
        _internal_params.Clear();
        move(this);
        foreach ((string name, Parameter parameter) in layer.named_parameters(recurse: false))
        {
            if (shared.Contains(name)) register_parameter(name, parameter);
        }
    }

    /// <summary>This module's <c>_to</c> for a device and dtype (for <see cref="FollowLayer"/>).</summary>
    internal nn.Module MoveTo(Device? device, ScalarType? dtype, bool nonBlocking) => (device, dtype) switch
    {
        ({ } d, { } t) => _to(d, t, nonBlocking),
        ({ } d, null) => _to(d.type, d.index, nonBlocking),
        (null, { } t) => _to(t, nonBlocking),
        _ => this,
    };

    /// <summary>Refuses use after the module's model released it (DisposeQuantized, Dispose).</summary>
    private void ThrowIfReleased()
    {
        if (!_released) return;
        throw new InvalidOperationException(
            $"{Describe()} was disposed with its model's quantized layers (DisposeQuantized or Dispose); call " +
            "Quantize() or LoadQuantized(path) on the model again and use its new QuantizedModules().");
    }

    /// <summary>Stops quantizing the output (streamlining); the calibrated output scale stays, for the file.
    /// </summary>
    internal void DisableOutputQuantization() => OutputStreamlined = true;

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
        if (disposing)
        {
            lock (_viewGate) ReleaseKernelView();
            QuantizedWeight?.Dispose();
        }
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
        lock (_viewGate) ReleaseKernelView();
        weight.Dispose();
        QuantizedWeight = moved;
    }

    // Only while no thread runs the weight (as QuantizedWeight.ReleasePrepared): the view's forms are freed here.
    private void ReleaseKernelView()
    {
        _kernelView?.View.Dispose();
        _kernelView = null;
    }
}

/// <summary>An activation after the quant stub: the float value the op sees, plus the int8/fp8 codes and scale when
/// it was quantized (kernels that take integer inputs use those).</summary>
/// <param name="Value">Float (dequantized) activation.</param>
/// <param name="Codes">int8/float8 codes, or null when not quantized or in training.</param>
/// <param name="Scale">The per-tensor scale, or null when not quantized.</param>
public readonly record struct QActivation(Tensor Value, Tensor? Codes, Tensor? Scale);
