namespace Quanto.Generated;

/// <summary>
/// Implemented (explicitly, so it stays off the model's own members) by the generated part of every [Quantize]
/// class: it hands the runtime the model's <see cref="ModelQuantization"/>, through which an enclosing [Quantize]
/// model quantizes it, <see cref="Quantizer.QuantizedModules"/> lists its quantized layers and
/// <see cref="Calibration"/> calibrates it.
/// </summary>
public interface IQuantizedModel
{
    /// <summary>The model's layer table and lifecycle.</summary>
    ModelQuantization Quantization { get; }
}
