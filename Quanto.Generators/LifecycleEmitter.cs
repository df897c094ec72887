using System.Linq;

namespace Quanto.Generators;

/// <summary>Writes the generated lifecycle members: Quantize, Calibrate, Freeze, QuantizedModules, Save/Load.</summary>
internal static class LifecycleEmitter
{
    private const string Plan = "global::Quanto.Generated.QuantizePlan";

    public static void WriteQuantize(CodeWriter w, ClassModel model)
    {
        string optimizer = Emitter.OptimizerType;
        string qtype = "global::Quanto.QType";
        w.Line("/// <summary>Builds the quantized twins of the layers with their [Quantize] settings (dynamic mode: weights");
        w.Line("/// are quantized on each call until <see cref=\"Freeze\"/>); the float layers keep their weights until then.");
        w.Line("/// </summary>");
        w.Line("/// <param name=\"optimizer\">Weight optimizer (null: the qtype's default).</param>");
        w.Line($"public void Quantize({optimizer}? optimizer = null) =>");
        w.Line($"    Quantize(\"\", {Plan}.FromAttributes(optimizer));").Line();

        w.Line("/// <summary>Builds the quantized twins as Quantize(optimizer) does, but every layer the [Quantize] attributes");
        w.Line("/// quantize, in nested [Quantize] models too, gets these settings instead of its own (as");
        w.Line("/// Quanto.Quantizer.Quantize would give them); layers the attributes keep float stay float, and a LayerNorm keeps");
        w.Line("/// float weights and takes <paramref name=\"activations\"/>. <see cref=\"QuantizationMap\"/> keeps the attributes'");
        w.Line("/// qtypes; SaveQuantized writes these.</summary>");
        w.Line("/// <param name=\"weights\">Weight qtype (null: float weights, activations only).</param>");
        w.Line("/// <param name=\"activations\">Activation qtype (qint8 or a float8 type), or null.</param>");
        w.Line("/// <param name=\"groupSize\">Group size of 2/4-bit weights (null: 128, with optimum-quanto's fallback).</param>");
        w.Line("/// <param name=\"optimizer\">Weight optimizer (null: the qtype's default).</param>");
        w.Line("/// <exception cref=\"global::System.ArgumentException\">Neither qtype given, 2/4-bit activations, an undefined");
        w.Line("/// qtype or a group size that is not a positive multiple of 8; nothing is built then.</exception>");
        w.Line($"public void Quantize({qtype}? weights, {qtype}? activations = null,");
        w.Line($"    int? groupSize = null, {optimizer}? optimizer = null) =>");
        w.Line($"    Quantize(\"\", {Plan}.Override(weights, activations, groupSize, optimizer));").Line();

        w.Line("/// <summary>Builds the quantized twins with their [Quantize] settings and module paths under");
        w.Line("/// <paramref name=\"pathPrefix\"/> (an enclosing quantized model passes \"block.\"; the root passes \"\").</summary>");
        w.Line("/// <param name=\"pathPrefix\">Prefix of every module path, ending with '.' unless empty.</param>");
        w.Line("/// <param name=\"optimizer\">Weight optimizer (null: the qtype's default).</param>");
        w.Line($"public void Quantize(string pathPrefix, {optimizer}? optimizer) =>");
        w.Line($"    Quantize(pathPrefix, {Plan}.FromAttributes(optimizer));").Line();

        w.Line("/// <summary>Builds the quantized twins with module paths under <paramref name=\"pathPrefix\"/>, each with the");
        w.Line("/// settings <paramref name=\"plan\"/> chooses for it from its [Quantize] ones (kept, overridden, or read from a");
        w.Line("/// checkpoint's quantization map); nested [Quantize] models are quantized with the same plan.</summary>");
        w.Line("/// <param name=\"pathPrefix\">Prefix of every module path, ending with '.' unless empty.</param>");
        w.Line("/// <param name=\"plan\">Chooses each twin's settings.</param>");
        w.Line("/// <exception cref=\"global::System.InvalidOperationException\">This model or a nested [Quantize] model is");
        w.Line("/// already quantized; nothing is built then.</exception>");
        w.Open($"public void Quantize(string pathPrefix, {Plan} plan)");
        w.Line("global::System.ArgumentNullException.ThrowIfNull(plan);");
        w.Line("if (_isQuantized)");
        w.Line($"    throw new global::System.InvalidOperationException(\"{Plain(model.Name)} is already quantized.\");");
        foreach (LayerModel layer in model.Layers.Where(l => l.IsModel))
        {
            const string Already = "throw global::Quanto.Generated.Twins.NestedAlreadyQuantized(pathPrefix + ";
            if (layer.IsList)
            {
                w.Line($"for (int i = 0; i < {layer.FieldName}.Count; i++)");
                w.Line($"    if ({layer.FieldName}[i].IsQuantized)");
                w.Line($"        {Already}\"{layer.FieldName}.\" + i);");
            }
            else
            {
                w.Line($"if ({layer.FieldName}.IsQuantized)");
                w.Line($"    {Already}\"{layer.FieldName}\");");
            }
        }
        // A failure part-way (a checkpoint's map that does not fit, bad settings) disposes what this call built.
        w.Open("try");
        foreach (LayerModel layer in model.Layers)
        {
            if (layer.IsModel)
            {
                if (layer.IsList)
                {
                    w.Line($"for (int i = 0; i < {layer.FieldName}.Count; i++)");
                    w.Line($"    {layer.FieldName}[i].Quantize(pathPrefix + \"{layer.FieldName}.\" + i + \".\", plan);");
                }
                else
                {
                    w.Line($"{layer.FieldName}.Quantize(pathPrefix + \"{layer.FieldName}.\", plan);");
                }
                continue;
            }
            if (layer.IsList)
            {
                w.Line($"{layer.WrapperName} = new {layer.Kind!.QuantizedType}[{layer.FieldName}.Count];");
                w.Line($"for (int i = 0; i < {layer.FieldName}.Count; i++)");
                w.Lines($"    {layer.WrapperName}[i] = {NewTwin(layer, $"{layer.FieldName}[i]", $"\"{layer.FieldName}.\" + i", "        ")};");
            }
            else
            {
                w.Lines($"{layer.WrapperName} = {NewTwin(layer, layer.FieldName, $"\"{layer.FieldName}\"", "    ")};");
            }
        }
        w.Close();
        w.Open("catch");
        w.Line("DisposeQuantized();");
        w.Line("throw;");
        w.Close();
        w.Line("_isQuantized = true;");
        w.Close().Line();
    }

    public static void WriteDispose(CodeWriter w, ClassModel model)
    {
        w.Line("/// <summary>Disposes the quantized twins (their quantized weights, kernel layouts and activation scales; not");
        w.Line("/// the float parameters they share with the layers) and those of nested [Quantize] models, and marks the model");
        w.Line("/// not quantized; idempotent. Before Freeze the float model is intact and can be quantized again; after it,");
        w.Line("/// the float weights are gone, so reload the model (LoadQuantized) to use it again.</summary>");
        w.Open("public void DisposeQuantized()");
        foreach (LayerModel layer in model.Layers)
        {
            if (layer.IsModel && layer.IsList)
                w.Line($"foreach (var item in {layer.FieldName}) item.DisposeQuantized();");
            else if (layer.IsModel)
                w.Line($"{layer.FieldName}.DisposeQuantized();");
            else if (layer.IsList)
            {
                w.Line($"if ({layer.WrapperName} is not null)");
                w.Line($"    foreach ({layer.Kind!.QuantizedType}? twin in {layer.WrapperName}) global::Quanto.Generated.Twins.Dispose(twin);");
                w.Line($"{layer.WrapperName} = null!;");
            }
            else
            {
                w.Line($"global::Quanto.Generated.Twins.Dispose({layer.WrapperName});");
                w.Line($"{layer.WrapperName} = null!;");
            }
        }
        w.Line("_isQuantized = false;");
        w.Close().Line();
        if (model.OverridesDispose) return; // the user's Dispose(bool) calls DisposeQuantized (else QNT009 says so)
        w.Line("/// <summary>Disposes the quantized twins too (they are not registered submodules, so the base Dispose does");
        w.Line("/// not reach them), then the model.</summary>");
        w.Line("/// <param name=\"disposing\">True from Dispose(), false from the finalizer.</param>");
        w.Open("protected override void Dispose(bool disposing)");
        w.Line("if (disposing) DisposeQuantized();");
        w.Line("base.Dispose(disposing);");
        w.Close().Line();
    }

    public static void WriteCalibrateAndFreeze(CodeWriter w, ClassModel model)
    {
        w.Line("/// <summary>Starts recording activation ranges; run ForwardQuantized on representative batches inside");
        w.Line("/// it, then dispose it: <c>using (model.Calibrate()) model.ForwardQuantized(x);</c></summary>");
        w.Line("/// <param name=\"momentum\">Weight of the previous scale when a new batch is observed, in [0, 1).</param>");
        w.Open("public global::Quanto.Calibration Calibrate(double momentum = 0.9)");
        w.Line("EnsureQuantized();");
        w.Line("return new global::Quanto.Calibration(momentum);");
        w.Close().Line();

        w.Line("/// <summary>Replaces float weights by quantized ones (prepared once for the kernels) and drops the float");
        w.Line("/// weights the user's layers still hold (see Quanto.Generated.FloatWeights); idempotent. Afterwards only");
        w.Line("/// ForwardQuantized runs the quantized layers: their float forward has no weight left.</summary>");
        w.Open("public void Freeze()");
        w.Line("EnsureQuantized();");
        foreach (LayerModel layer in model.Layers)
        {
            string target = layer.IsModel ? "item" : "twin";
            if (layer.IsModel && !layer.IsList) w.Line($"{layer.FieldName}.Freeze();");
            else if (layer.IsModel) w.Line($"foreach (var {target} in {layer.FieldName}) {target}.Freeze();");
            else if (layer.IsList) w.Line($"foreach ({layer.Kind!.QuantizedType} {target} in {layer.WrapperName}) {target}.Freeze();");
            else w.Line($"{layer.WrapperName}.Freeze();");
        }
        w.Line("ReleaseFloatWeights();");
        w.Close().Line();

        w.Line("/// <summary>Empties the float weight of each layer whose quantized twin is frozen.</summary>");
        w.Open("private void ReleaseFloatWeights()");
        // Every Linear and Conv2d: a Quantize override may quantize weights the attributes leave float.
        foreach (LayerModel layer in model.Layers.Where(l => l.Kind is { QuantizesWeights: true }))
        {
            if (layer.IsList)
            {
                w.Line($"for (int i = 0; i < {layer.WrapperName}.Length; i++)");
                w.Line($"    if ({layer.WrapperName}[i].IsFrozen) global::Quanto.Generated.FloatWeights.Release({layer.FieldName}[i]);");
            }
            else
            {
                w.Line($"if ({layer.WrapperName}.IsFrozen) global::Quanto.Generated.FloatWeights.Release({layer.FieldName});");
            }
        }
        w.Close().Line();
    }

    public static void WriteModules(CodeWriter w, ClassModel model)
    {
        string module = Emitter.ModuleType;
        w.Line("/// <summary>The quantized modules of this model, nested ones included, each with its path.</summary>");
        if (model.Layers.Any(l => l.Kind is { QuantizesWeights: false }))
        {
            w.Line("/// <remarks>A LayerNorm twin is listed only while it quantizes activations: a Quantize override without");
            w.Line("/// activations leaves it a pass-through, saved as the float LayerNorm it wraps.</remarks>");
        }
        w.Open($"public global::System.Collections.Generic.IEnumerable<{module}> QuantizedModules()");
        w.Line("EnsureQuantized();");
        foreach (LayerModel layer in model.Layers)
        {
            if (layer.IsModel && layer.IsList)
                w.Line($"foreach (var item in {layer.FieldName}) foreach ({module} m in item.QuantizedModules()) yield return m;");
            else if (layer.IsModel)
                w.Line($"foreach ({module} m in {layer.FieldName}.QuantizedModules()) yield return m;");
            else if (layer.Kind is { QuantizesWeights: false } && layer.IsList)
                w.Line($"foreach ({module} m in {layer.WrapperName}) if (m.ActivationQType is not null) yield return m;");
            else if (layer.Kind is { QuantizesWeights: false })
                w.Line($"if ({layer.WrapperName}.ActivationQType is not null) yield return {layer.WrapperName};");
            else if (layer.IsList)
                w.Line($"foreach ({module} m in {layer.WrapperName}) yield return m;");
            else
                w.Line($"yield return {layer.WrapperName};");
        }
        w.Close().Line();
    }

    public static void WriteSerialization(CodeWriter w, ClassModel model)
    {
        w.Line("/// <summary>Saves the quantized model: <c>.safetensors</c> (+ quanto_qmap.json) or <c>.qnt</c>. The map it");
        w.Line("/// writes is that of the twins built, a Quantize override's qtypes included.</summary>");
        w.Line("/// <param name=\"path\">The file to write; the extension picks the format.</param>");
        w.Open("public void SaveQuantized(string path)");
        w.Line("EnsureQuantized();");
        w.Line("global::Quanto.Serialization.QuantizedModel.Save(this, path, QuantizedModules());");
        w.Close().Line();
        w.Line("/// <summary>Loads a quantized checkpoint; the model ends frozen, float weights dropped. A model not quantized");
        w.Line("/// yet is first quantized as the file's quantization map says (a file saved after a Quantize override loads");
        w.Line("/// into a fresh instance); a quantized one must be quantized the way the file is.</summary>");
        w.Line("/// <param name=\"path\">A <c>.safetensors</c> file (quanto_qmap.json beside it) or a <c>.qnt</c> package.</param>");
        w.Line("/// <exception cref=\"global::Quanto.Serialization.QuantoFormatException\">The file is malformed, or it does not");
        w.Line("/// quantize the layers this model's [Quantize] attributes quantize (the message names the module).</exception>");
        w.Open("public void LoadQuantized(string path)");
        w.Line("using var checkpoint = global::Quanto.Serialization.QuantizedCheckpoint.Load(path);");
        w.Line($"if (!_isQuantized) Quantize(\"\", {Plan}.FromCheckpoint(checkpoint));");
        w.Line("global::Quanto.Serialization.QuantizedModel.Load(this, checkpoint, QuantizedModules());");
        w.Line("Freeze();");
        w.Close().Line();
    }

    public static void WriteEnsure(CodeWriter w, ClassModel model)
    {
        w.Line();
        w.Line("/// <summary>Checks that Quantize ran, and mirrors this model's train/eval mode onto the quantized twins");
        w.Line("/// (they are not registered submodules, so the model's train() and eval() do not reach them).</summary>");
        w.Open("private void PrepareForward()");
        w.Line("EnsureQuantized();");
        foreach (LayerModel layer in model.Layers.Where(l => !l.IsModel))
        {
            w.Line(layer.IsList
                ? $"foreach ({layer.Kind!.QuantizedType} twin in {layer.WrapperName}) if (twin.training != training) twin.train(training);"
                : $"if ({layer.WrapperName}.training != training) {layer.WrapperName}.train(training);");
        }
        w.Close().Line();
        w.Open("private void EnsureQuantized()");
        w.Line("if (!_isQuantized)");
        w.Line("{");
        w.Line("    throw new global::System.InvalidOperationException(");
        w.Line($"        \"{Plain(model.Name)} is not quantized yet: call Quantize() first, then Calibrate and Freeze as needed.\");");
        w.Line("}");
        w.Close();
    }

    /// <summary>The plan's call that builds a twin with the layer's [Quantize] settings, on two lines.</summary>
    private static string NewTwin(LayerModel layer, string source, string path, string indent) =>
        $"({layer.Kind!.QuantizedType})plan.Twin({source}, pathPrefix + {path},\n{indent}weights: " +
        $"{Emitter.QType(layer.Weights)}, activations: {Emitter.QType(layer.Activations)}, groupSize: " +
        $"{(layer.Group?.ToString() ?? "null")})";

    private static string Plain(string name) => name.Replace("\"", "");
}
