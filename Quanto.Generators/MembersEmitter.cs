using System.Linq;

namespace Quanto.Generators;

/// <summary>
/// Writes the thin members of a generated model: each hands the call to the model's
/// <c>Quanto.Generated.ModelQuantization</c>, whose documentation they inherit, so that the lifecycle is written once,
/// in the runtime. Also the <c>Dispose(bool)</c> override (unless the user wrote one) and the <c>_to</c> overrides
/// that keep the twins with their layers through <c>.to()</c> (unless the user wrote them). A lifecycle member whose
/// name the class declares itself (a model with its own optimum-quanto-style <c>Quantize</c>) is not emitted: with both,
/// C# could not choose between the two (CS0121) on calls that pass only weights; the class's own members reach the
/// lifecycle through <c>((IQuantizedModel)this).Quantization</c>.
/// </summary>
internal static class MembersEmitter
{
    /// <summary>The public lifecycle members that a class may declare itself instead (then none of that name is
    /// emitted). <c>DisposeQuantized</c> is not among them: the generated <c>Dispose(bool)</c> calls it.</summary>
    public static readonly string[] Names =
        ["IsQuantized", "Quantize", "Calibrate", "Freeze", "QuantizedModules", "SaveQuantized", "LoadQuantized"];

    private const string Lifecycle = Emitter.Runtime + ".ModelQuantization";
    private const string QType = "global::Quanto.QType";
    private const string Optimizer = "global::Quanto.Quantization.Optimizer";
    private const string Plan = "global::Quanto.Quantization.QuantizationPlan";
    private const string Module = "global::TorchSharp.torch.nn.Module";

    public static void Write(CodeWriter w, ClassModel model, bool withSerialization)
    {
        bool Emits(string name) => !model.OwnMembers.Contains(name);
        if (Emits("IsQuantized")) Member(w, "IsQuantized", "public bool IsQuantized => _lifecycle?.IsQuantized == true;");
        if (Emits("Quantize"))
        {
            Member(w, "Quantize(" + Optimizer + ")",
                $"public void Quantize({Optimizer}? optimizer = null) => Lifecycle.Quantize(optimizer);");
            Member(w, $"Quantize({QType}?, {QType}?, int?, {Optimizer})",
                $"public void Quantize({QType}? weights, {QType}? activations = null, int? groupSize = null,",
                $"    {Optimizer}? optimizer = null) =>",
                "    Lifecycle.Quantize(weights, activations, groupSize, optimizer);");
            Member(w, $"Quantize({Plan}, {QType}?)",
                $"public void Quantize({Plan} plan, {QType}? activations = null) =>",
                "    Lifecycle.Quantize(plan, activations);");
        }
        if (Emits("Calibrate"))
        {
            Member(w, "Calibrate",
                "public global::Quanto.Calibration Calibrate(double momentum = 0.9, global::Quanto.Observer? observer = null,",
                "    bool streamline = true) => Lifecycle.Calibrate(momentum, observer, streamline);");
        }
        if (Emits("Freeze")) Member(w, "Freeze", "public void Freeze() => Lifecycle.Freeze();");
        if (Emits("QuantizedModules"))
        {
            Member(w, "QuantizedModules",
                "public global::System.Collections.Generic.IEnumerable<global::Quanto.Nn.QModule> QuantizedModules() =>",
                "    Lifecycle.QuantizedModules();");
        }
        if (withSerialization && Emits("SaveQuantized"))
            Member(w, "Save", "public void SaveQuantized(string path) => Lifecycle.Save(path);");
        if (withSerialization && Emits("LoadQuantized"))
            Member(w, "Load", "public void LoadQuantized(string path) => Lifecycle.Load(path);");
        Member(w, "DisposeQuantized", "public void DisposeQuantized() => _lifecycle?.DisposeQuantized();");
        if (!model.OverridesDispose)
        {
            // The user's own Dispose(bool) calls DisposeQuantized instead (else QNT009 says so).
            w.Line("/// <inheritdoc/>");
            w.Line("/// <remarks>Disposes the quantized layers too (they are not submodules).</remarks>");
            w.Open("protected override void Dispose(bool disposing)");
            w.Line("if (disposing) DisposeQuantized();");
            w.Line("base.Dispose(disposing);");
            w.Close().Line();
        }
        if (!model.OverridesTo) WriteMoves(w);
    }

    /// <summary>The three <c>_to</c> overloads TorchSharp's <c>.to()</c> calls: the base moves the layers, then the
    /// runtime moves the twins with them.</summary>
    private static void WriteMoves(CodeWriter w)
    {
        const string Device = "global::TorchSharp.torch.Device";
        const string ScalarType = "global::TorchSharp.torch.ScalarType";
        const string Doc = "/// <inheritdoc/>";
        const string See = "/// <remarks>The quantized layers move with their layers (ModelQuantization.Moved).</remarks>";
        w.Line(Doc).Line(See);
        w.Line($"protected override {Module} _to(");
        w.Line($"    {Device} device, {ScalarType} dtype, bool non_blocking) =>");
        w.Line("    Lifecycle.Moved(base._to(device, dtype, non_blocking), device, dtype, non_blocking);").Line();
        w.Line(Doc).Line(See);
        w.Line($"protected override {Module} _to(");
        w.Line("    global::TorchSharp.DeviceType deviceType, int deviceIndex, bool non_blocking) =>");
        w.Line("    Lifecycle.Moved(base._to(deviceType, deviceIndex, non_blocking),");
        w.Line($"        new {Device}(deviceType, deviceIndex), null, non_blocking);").Line();
        w.Line(Doc).Line(See);
        w.Line($"protected override {Module} _to({ScalarType} dtype,");
        w.Line("    bool non_blocking) =>");
        w.Line("    Lifecycle.Moved(base._to(dtype, non_blocking), null, dtype, non_blocking);").Line();
    }

    /// <summary>One member, its documentation inherited from the runtime member it calls.</summary>
    private static void Member(CodeWriter w, string cref, params string[] lines)
    {
        w.Line($"/// <inheritdoc cref=\"{Lifecycle}.{cref}\"/>");
        foreach (string line in lines) w.Line(line);
        w.Line();
    }
}
