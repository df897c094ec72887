using Quanto.Nn;
using Quanto.Quantization;
using Quanto.Serialization;
using static TorchSharp.torch;

namespace Quanto.Generated;

/// <summary>
/// The runtime half of a [Quantize] model class: the generated part names the model's layers (a
/// <see cref="LayerTable"/>) and writes <c>ForwardQuantized</c>; this object does the rest, once for every model:
/// builds the quantized twins (from the attributes' settings, a run-time override, or a checkpoint's map), calibrates,
/// freezes (releasing the float weights the user's layers hold), lists, saves and loads them, disposes them, mirrors
/// train/eval onto them and keeps them with their layers through <c>.to()</c>. The twins sit beside the user's layers
/// (TorchSharp's <c>Linear</c> is sealed: a <c>Linear</c> field cannot hold a QLinear) and are not registered
/// submodules, so <c>parameters()</c> and <c>state_dict()</c> list each shared parameter once.
/// </summary>
public sealed class ModelQuantization
{
    private readonly nn.Module _model;
    private readonly string _name;
    private readonly Action<LayerTable> _describe;
    private readonly List<SkippedModuleInfo> _keptFloat = [];
    private LayerTable? _table;

    /// <summary>Creates the lifecycle of <paramref name="model"/> (generated code does, on first use).</summary>
    /// <param name="model">The [Quantize] model.</param>
    /// <param name="name">Its class name, for messages.</param>
    /// <param name="describe">Writes the model's layer table (the generated <c>DescribeLayers</c>).</param>
    public ModelQuantization(nn.Module model, string name, Action<LayerTable> describe)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(describe);
        _model = model;
        _name = name;
        _describe = describe;
    }

    /// <summary>True once Quantize (or LoadQuantized) has built the quantized layers, until DisposeQuantized.</summary>
    public bool IsQuantized => _table is not null;

    /// <summary>Builds the twins with the [Quantize] attributes' settings (dynamic mode until <see cref="Freeze"/>).
    /// </summary>
    /// <param name="optimizer">Weight optimizer (null: the qtype's default).</param>
    /// <exception cref="InvalidOperationException">The model, or a nested [Quantize] model, is already quantized;
    /// nothing is built then.</exception>
    public void Quantize(Optimizer? optimizer = null) => QuantizeRoot(QuantizePlan.FromAttributes(optimizer));

    /// <summary>Builds the twins of the layers the attributes quantize, each with these settings instead (see
    /// <see cref="QuantizePlan.Override"/>).</summary>
    /// <exception cref="ArgumentException">A request <see cref="Quantizer.Quantize"/> refuses too; nothing is built.
    /// </exception>
    /// <exception cref="InvalidOperationException">Already quantized; nothing is built.</exception>
    public void Quantize(QType? weights, QType? activations, int? groupSize, Optimizer? optimizer) =>
        QuantizeRoot(QuantizePlan.Override(weights, activations, groupSize, optimizer));

    /// <summary>
    /// <see cref="Quantize(QType?, QType?, int?, Optimizer?)"/> for the layers whose module path (from this model:
    /// "block.fc1") matches <paramref name="include"/> (all when null or empty) and none of
    /// <paramref name="exclude"/>, fnmatch patterns as <see cref="Quantizer.Quantize"/> takes them; the other layers
    /// get no twin and run float (they are saved as float layers). What a model with its own optimum-quanto-style
    /// <c>Quantize(weights, activations, include, exclude, ...)</c> calls.
    /// </summary>
    /// <exception cref="ArgumentException">A request <see cref="Quantizer.Quantize"/> refuses too; nothing is built.
    /// </exception>
    /// <exception cref="InvalidOperationException">Already quantized; nothing is built.</exception>
    public void Quantize(QType? weights, QType? activations, int? groupSize, Optimizer? optimizer,
        IEnumerable<string>? include, IEnumerable<string>? exclude) =>
        QuantizeRoot(QuantizePlan.Override(weights, activations, groupSize, optimizer, include, exclude));

    /// <summary>
    /// Builds the twins of the layers <paramref name="plan"/> lists, each with its choice (weight qtype, group size,
    /// optimizer) and <paramref name="activations"/>, as <c>model.Quantize(plan)</c>
    /// (<see cref="QuantizationPlanExtensions.Quantize(nn.Module, QuantizationPlan, QType?)"/>) quantizes an eager
    /// model (dynamic mode: calibrate and freeze afterwards). Layers the plan does not list, or keeps float, get no
    /// twin and run float; planned layers the attributes keep float stay float.
    /// </summary>
    /// <exception cref="ArgumentException">2/4-bit activations; nothing is built.</exception>
    /// <exception cref="InvalidOperationException">Already quantized; nothing is built.</exception>
    public void Quantize(QuantizationPlan plan, QType? activations = null) =>
        QuantizeRoot(QuantizePlan.FromLayerPlan(plan, activations));

    /// <summary>What the last Quantize (or Load) built: each twin, nested models' included, with its qtypes and
    /// weight layout as it is now (frozen: as stored), and each layer kept float because its quantized module does
    /// not support an option (<see cref="KeptFloat"/>, nested models' too).</summary>
    /// <exception cref="InvalidOperationException">Not quantized.</exception>
    public QuantizationReport Report()
    {
        var skipped = new List<SkippedModuleInfo>(_keptFloat);
        foreach (LayerTable.Row row in Rows())
        {
            if (row.Model is IQuantizedModel nested) skipped.AddRange(nested.Quantization.Report().Skipped);
        }
        return new QuantizationReport(QuantizationReport.For(QuantizedModules()).Quantized, skipped);
    }

    /// <summary>The layers of this model (not nested ones) that the last Quantize kept float although the table
    /// names them (an option their quantized module does not support), each with the reason; empty until then.
    /// </summary>
    public IReadOnlyList<SkippedModuleInfo> KeptFloat => _keptFloat;

    /// <summary>Starts a calibration of this model's quantized layers (and only theirs); dispose it to end it.
    /// </summary>
    /// <exception cref="InvalidOperationException">Not quantized.</exception>
    public Calibration Calibrate(double momentum = 0.9, Observer? observer = null, bool streamline = true)
    {
        IReadOnlyCollection<QModule> modules = QuantizedModules();
        return new Calibration(modules, _name, momentum, observer, streamline);
    }

    /// <summary>Freezes every twin, nested models' too, and releases the float weights the user's layers hold
    /// (<see cref="LayerKind.ReleaseFloatWeight"/>); idempotent.</summary>
    /// <exception cref="InvalidOperationException">Not quantized.</exception>
    public void Freeze()
    {
        foreach (LayerTable.Row row in Rows())
        {
            if (row.Model is IQuantizedModel nested)
            {
                nested.Quantization.Freeze();
                continue;
            }
            if (row.Slot!.Twin is not QModule twin) continue;
            twin.Freeze();
            if (!twin.IsFrozen || !row.Slot.Kind!.QuantizesWeights) continue;
            row.Slot.Kind.ReleaseFloatWeight(row.Layer!);
            FloatLayers.MarkReleased(row.Layer!, row.Slot.Kind, row.Slot.Path!, _name);
        }
    }

    /// <summary>The twins, nested models' included, in declaration order, each with its module path.</summary>
    /// <exception cref="InvalidOperationException">Not quantized.</exception>
    public IReadOnlyList<QModule> QuantizedModules()
    {
        var modules = new List<QModule>();
        foreach (LayerTable.Row row in Rows())
        {
            if (row.Model is IQuantizedModel nested) modules.AddRange(nested.Quantization.QuantizedModules());
            else if (row.Slot!.Twin is QModule twin) modules.Add(twin);
        }
        return modules;
    }

    /// <summary>Saves the quantized model (<see cref="QuantizedModel.Save(nn.Module, string, IEnumerable{QModule})"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">Not quantized.</exception>
    public void Save(string path) => QuantizedModel.Save(_model, path, QuantizedModules());

    /// <summary>
    /// Loads a quantized checkpoint; the model ends frozen. A model not quantized yet is first quantized as the
    /// file's quantization map says (<see cref="QuantizePlan.FromCheckpoint"/>), and left unquantized again if the
    /// file then does not load; a quantized one must be quantized the way the file is.
    /// </summary>
    /// <exception cref="QuantoFormatException">The file is malformed or does not fit the model.</exception>
    public void Load(string path)
    {
        using QuantizedCheckpoint checkpoint = QuantizedCheckpoint.Load(path);
        LoadCheckpoint(checkpoint);
    }

    /// <summary><see cref="Load(string)"/> from a checkpoint already open (its state dict may have been completed
    /// by the caller, e.g. with a tied weight the file leaves out).</summary>
    /// <exception cref="QuantoFormatException">The checkpoint is malformed or does not fit the model.</exception>
    public void LoadCheckpoint(QuantizedCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        bool quantizedHere = !IsQuantized;
        if (quantizedHere) QuantizeRoot(QuantizePlan.FromCheckpoint(checkpoint));
        try
        {
            QuantizedModel.Load(_model, checkpoint, QuantizedModules());
        }
        catch when (quantizedHere)
        {
            DisposeQuantized();
            throw;
        }
        Freeze();
    }

    /// <summary>Disposes what the twins own (quantized weights, kernel layouts, activation scales; not the float
    /// parameters they share with the layers), nested models' too, and marks the model not quantized; idempotent.
    /// </summary>
    public void DisposeQuantized()
    {
        IReadOnlyList<LayerTable.Row> rows = _table?.Rows ?? [];
        ReleaseOwn();
        foreach (LayerTable.Row row in rows) row.Model?.Quantization.DisposeQuantized();
    }

    /// <summary>What generated <c>ForwardQuantized</c> runs first: checks the model is quantized and mirrors its
    /// train/eval mode onto the twins (they are not submodules, so <c>train()</c> does not reach them).</summary>
    /// <exception cref="InvalidOperationException">Not quantized.</exception>
    public void BeginForward()
    {
        bool training = _model.training;
        foreach (LayerTable.Row row in Rows())
        {
            if (row.Slot?.Twin is QModule twin && twin.training != training) twin.train(training);
        }
    }

    /// <summary>
    /// What a generated <c>_to</c> override returns after the base <c>_to</c> moved the model: the user's layers
    /// have new parameters (TorchSharp disposes the old ones), so each twin takes them in place of the ones it
    /// shared and moves what it owns (scales, quantized weight) to the same device and dtype. Nested models move
    /// their own twins (TorchSharp calls their <c>_to</c>).
    /// </summary>
    /// <param name="moved">What the base <c>_to</c> returned.</param>
    /// <param name="device">The target device, or null (dtype only).</param>
    /// <param name="dtype">The target dtype, or null (device only).</param>
    /// <param name="nonBlocking">As passed to <c>_to</c>.</param>
    public nn.Module Moved(nn.Module moved, Device? device, ScalarType? dtype, bool nonBlocking)
    {
        if (_table is null) return moved;
        foreach (LayerTable.Row row in _table.Rows)
        {
            if (row.Slot?.Twin is QModule twin)
                twin.FollowLayer(row.Layer!, t => t.MoveTo(device, dtype, nonBlocking));
        }
        return moved;
    }

    /// <summary>The rows, once quantized.</summary>
    private IReadOnlyList<LayerTable.Row> Rows() => _table?.Rows ?? throw new InvalidOperationException(
        $"{_name} is not quantized yet: call Quantize() first (or LoadQuantized(path)), then Calibrate and Freeze " +
        "as needed; DisposeQuantized() releases the quantized layers.");

    private void QuantizeRoot(QuantizePlan plan)
    {
        if (IsQuantized) throw new InvalidOperationException($"{_name} is already quantized.");
        var built = new List<ModelQuantization>();
        try
        {
            Describe("", built);
            foreach (ModelQuantization model in built) model.Build(plan);
        }
        catch
        {
            // Only what this call built: a nested model quantized on its own (the refusal) keeps its twins.
            foreach (ModelQuantization model in built) model.ReleaseOwn();
            throw;
        }
    }

    /// <summary>Releases this model's own twins (not nested models') and forgets its table.</summary>
    private void ReleaseOwn()
    {
        if (_table is not LayerTable table) return;
        _table = null;
        foreach (LayerTable.Row row in table.Rows) row.Slot?.Release();
        foreach (QuantizedLayerList list in table.Lists) list.Clear();
    }

    /// <summary>Writes this model's table and its nested models' (their paths under <paramref name="prefix"/>),
    /// refusing a nested model quantized on its own before anything is built.</summary>
    private void Describe(string prefix, List<ModelQuantization> built)
    {
        if (IsQuantized)
        {
            throw new InvalidOperationException(
                $"'{prefix.TrimEnd('.')}' is already quantized: quantize the outermost [Quantize] model only (it " +
                "quantizes the nested ones), or call DisposeQuantized() on the nested model first.");
        }
        var table = new LayerTable(_name, prefix);
        _describe(table);
        _keptFloat.Clear();
        _table = table;
        built.Add(this);
        foreach (LayerTable.Row row in table.Rows)
            row.Model?.Quantization.Describe(prefix + row.Name + ".", built);
    }

    /// <summary>Builds the twins of this model's layers (nested models build their own).</summary>
    private void Build(QuantizePlan plan)
    {
        foreach (LayerTable.Row row in _table!.Rows)
        {
            if (row.Slot is not QuantizedLayer slot) continue;
            nn.Module layer = row.Layer!;
            string path = _table.Prefix + row.Name;
            if (layer is QModule)
            {
                throw new InvalidOperationException(
                    $"'{path}' of {_name} already holds a {layer.GetType().Name} (Quantizer.Quantize swapped it): " +
                    "quantize the model one way, with its generated Quantize() or with Quantizer.Quantize.");
            }
            LayerKind kind = LayerKinds.For(layer) ?? throw new InvalidOperationException(
                $"'{path}' of {_name} holds a {layer.GetType().Name}, which has no quantized counterpart " +
                $"({LayerKinds.Names} have); keep it float with [NoQuantize], or assign a layer of one of those.");
            QModule? twin;
            try
            {
                twin = plan.Twin(kind, layer, path, slot.Weights, slot.Activations, slot.GroupSize);
            }
            catch (NotSupportedException e)
            {
                // As the eager path: a layer its quantized module cannot take (an option it does not support, no
                // weights to quantize) runs float, and says why.
                _keptFloat.Add(new SkippedModuleInfo(path, layer.GetType().Name, e.Message));
                twin = null;
            }
            slot.Bind(layer, kind, path, twin);
        }
    }
}
