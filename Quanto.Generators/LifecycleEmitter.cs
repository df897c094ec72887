using System.Linq;

namespace Quanto.Generators;

/// <summary>Writes the generated lifecycle members: Quantize, Calibrate, Freeze, QuantizedModules, Save/Load.</summary>
internal static class LifecycleEmitter
{
    public static void WriteQuantize(CodeWriter w, ClassModel model)
    {
        string optimizer = Emitter.OptimizerType;
        w.Line("/// <summary>Builds the quantized twins of the layers (dynamic mode: weights are quantized on each call");
        w.Line("/// until <see cref=\"Freeze\"/>); the float layers keep their weights until then.</summary>");
        w.Line("/// <param name=\"optimizer\">Weight optimizer (null: the qtype's default).</param>");
        w.Line($"public void Quantize({optimizer}? optimizer = null) => Quantize(\"\", optimizer);").Line();
        w.Line("/// <summary>Builds the quantized twins with module paths under <paramref name=\"pathPrefix\"/>");
        w.Line("/// (an enclosing quantized model passes \"block.\"; the root passes \"\").</summary>");
        w.Line("/// <param name=\"pathPrefix\">Prefix of every module path, ending with '.' unless empty.</param>");
        w.Line("/// <param name=\"optimizer\">Weight optimizer (null: the qtype's default).</param>");
        w.Open($"public void Quantize(string pathPrefix, {optimizer}? optimizer)");
        w.Line("if (_isQuantized)");
        w.Line($"    throw new global::System.InvalidOperationException(\"{Plain(model.Name)} is already quantized.\");");
        foreach (LayerModel layer in model.Layers)
        {
            if (layer.Kind == LayerKind.Model)
            {
                if (layer.IsList)
                {
                    w.Line($"for (int i = 0; i < {layer.FieldName}.Count; i++)");
                    w.Line($"    {layer.FieldName}[i].Quantize(pathPrefix + \"{layer.FieldName}.\" + i + \".\", optimizer);");
                }
                else
                {
                    w.Line($"{layer.FieldName}.Quantize(pathPrefix + \"{layer.FieldName}.\", optimizer);");
                }
                continue;
            }
            if (layer.IsList)
            {
                w.Line($"{layer.WrapperName} = new {Emitter.WrapperType(layer.Kind)}[{layer.FieldName}.Count];");
                w.Line($"for (int i = 0; i < {layer.FieldName}.Count; i++)");
                w.Lines($"    {layer.WrapperName}[i] = {NewWrapper(layer, $"{layer.FieldName}[i]", $"\"{layer.FieldName}.\" + i", "        ")};");
            }
            else
            {
                w.Lines($"{layer.WrapperName} = {NewWrapper(layer, layer.FieldName, $"\"{layer.FieldName}\"", "    ")};");
            }
        }
        w.Line("_isQuantized = true;");
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
            string target = layer.Kind == LayerKind.Model ? "item" : "twin";
            if (layer.Kind == LayerKind.Model && !layer.IsList) w.Line($"{layer.FieldName}.Freeze();");
            else if (layer.Kind == LayerKind.Model) w.Line($"foreach (var {target} in {layer.FieldName}) {target}.Freeze();");
            else if (layer.IsList) w.Line($"foreach ({Emitter.WrapperType(layer.Kind)} {target} in {layer.WrapperName}) {target}.Freeze();");
            else w.Line($"{layer.WrapperName}.Freeze();");
        }
        w.Line("ReleaseFloatWeights();");
        w.Close().Line();

        w.Line("/// <summary>Empties the float weight of each layer whose quantized twin is frozen.</summary>");
        w.Open("private void ReleaseFloatWeights()");
        foreach (LayerModel layer in model.Layers.Where(l => l.Weights is not null && l.Kind != LayerKind.LayerNorm &&
                                                             l.Kind != LayerKind.Model))
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
        w.Open($"public global::System.Collections.Generic.IEnumerable<{module}> QuantizedModules()");
        w.Line("EnsureQuantized();");
        foreach (LayerModel layer in model.Layers)
        {
            if (layer.Kind == LayerKind.Model && layer.IsList)
                w.Line($"foreach (var item in {layer.FieldName}) foreach ({module} m in item.QuantizedModules()) yield return m;");
            else if (layer.Kind == LayerKind.Model)
                w.Line($"foreach ({module} m in {layer.FieldName}.QuantizedModules()) yield return m;");
            else if (layer.IsList)
                w.Line($"foreach ({module} m in {layer.WrapperName}) yield return m;");
            else
                w.Line($"yield return {layer.WrapperName};");
        }
        w.Close().Line();
    }

    public static void WriteSerialization(CodeWriter w, ClassModel model)
    {
        w.Line("/// <summary>Saves the quantized model: <c>.safetensors</c> (+ quanto_qmap.json) or <c>.qnt</c>.</summary>");
        w.Line("/// <param name=\"path\">The file to write; the extension picks the format.</param>");
        w.Open("public void SaveQuantized(string path)");
        w.Line("EnsureQuantized();");
        w.Line("global::Quanto.Serialization.QuantizedModel.Save(this, path, QuantizedModules());");
        w.Close().Line();
        w.Line("/// <summary>Loads a quantized checkpoint (quantizing first if needed); the model ends frozen, float");
        w.Line("/// weights dropped.</summary>");
        w.Line("/// <param name=\"path\">A <c>.safetensors</c> file (quanto_qmap.json beside it) or a <c>.qnt</c> package.</param>");
        w.Open("public void LoadQuantized(string path)");
        w.Line("if (!_isQuantized) Quantize();");
        w.Line("global::Quanto.Serialization.QuantizedModel.Load(this, path, QuantizedModules());");
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
        foreach (LayerModel layer in model.Layers.Where(l => l.Kind != LayerKind.Model))
        {
            w.Line(layer.IsList
                ? $"foreach ({Emitter.WrapperType(layer.Kind)} twin in {layer.WrapperName}) if (twin.training != training) twin.train(training);"
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

    /// <summary>The constructor call of a twin, arguments on a continuation line.</summary>
    private static string NewWrapper(LayerModel layer, string source, string path, string indent) =>
        layer.Kind == LayerKind.LayerNorm
            ? $"new {Emitter.WrapperType(layer.Kind)}({source},\n{indent}" +
              $"activations: {Emitter.QType(layer.Activations)}, path: pathPrefix + {path})"
            : $"new {Emitter.WrapperType(layer.Kind)}({source},\n{indent}weights: {Emitter.QType(layer.Weights)}, " +
              $"activations: {Emitter.QType(layer.Activations)}, groupSize: {(layer.Group?.ToString() ?? "null")},\n" +
              $"{indent}optimizer: optimizer, path: pathPrefix + {path})";

    private static string Plain(string name) => name.Replace("\"", "");
}
