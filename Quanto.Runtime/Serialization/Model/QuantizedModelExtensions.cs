using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// <c>model.SaveQuantized(path)</c> / <c>model.LoadQuantized(path)</c>: the counterparts of optimum-quanto's
/// <c>QuantizedModelForCausalLM.save_pretrained</c> / <c>from_pretrained</c>, for any TorchSharp model.
/// </summary>
public static class QuantizedModelExtensions
{
    /// <summary>Saves the quantized model (see <see cref="QuantizedModel.Save(nn.Module, string,
    /// IEnumerable{QModule})"/>): <c>.qnt</c> or safetensors + <c>quanto_qmap.json</c> by extension.</summary>
    /// <param name="model">The model.</param>
    /// <param name="path">Target file.</param>
    public static void SaveQuantized(this nn.Module model, string path) => QuantizedModel.Save(model, path);

    /// <summary>
    /// Loads a quantized checkpoint: a float model (no quantized module yet) is requantized from it
    /// (<see cref="Quantizer.Requantize(nn.Module, string)"/>); a model already quantized the same way is loaded
    /// (<see cref="QuantizedModel.Load(nn.Module, string, IEnumerable{QModule})"/>).
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="path">A .qnt package, a .safetensors file, an index or a folder.</param>
    /// <exception cref="QuantoFormatException">The file is malformed or does not fit the model.</exception>
    public static void LoadQuantized(this nn.Module model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (Quantizer.QuantizedModules(model).Any()) QuantizedModel.Load(model, path);
        else Quantizer.Requantize(model, path);
    }
}
