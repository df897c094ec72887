using Quanto.Quantization;

namespace Quanto.Nn;

/// <summary>
/// How one layer is quantized: what a <see cref="LayerKind"/>'s factory gets besides the float layer. A kind whose
/// weights stay float (<see cref="LayerKind.QuantizesWeights"/> false) ignores <see cref="Weights"/>,
/// <see cref="GroupSize"/> and <see cref="Optimizer"/>.
/// </summary>
/// <param name="Weights">Weight qtype (null: float weights).</param>
/// <param name="Activations">Activation qtype (qint8 or a float8 type), or null.</param>
/// <param name="GroupSize">Requested group size for 2/4-bit weights (null: 128 with optimum-quanto's fallback).</param>
/// <param name="Optimizer">Weight optimizer (null: the qtype's default).</param>
/// <param name="Path">The layer's module path in its model ("blocks.0.fc1"), used in messages and files.</param>
public sealed record LayerSettings(QType? Weights, QType? Activations = null, int? GroupSize = null,
    Optimizer? Optimizer = null, string Path = "");
