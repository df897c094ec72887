using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// One tensor of a .qnt package with its self-description. Parts of a quantized weight (codes, scale, shift)
/// carry the weight's qtype, axis, group size (2/4-bit) and float shape, so no side file is needed to rebuild it.
/// </summary>
/// <param name="Name">State-dict key, e.g. "fc1.weight._scale".</param>
/// <param name="Tensor">The tensor (owned by the package).</param>
/// <param name="QType">The qtype of the weight this tensor belongs to; null for plain tensors.</param>
/// <param name="Axis">The weight's quantization axis (0); null for plain tensors.</param>
/// <param name="GroupSize">The weight's group size (2/4-bit); null otherwise.</param>
/// <param name="WeightShape">The float weight's shape; null for plain tensors.</param>
public sealed record QntTensor(
    string Name, Tensor Tensor, QType? QType = null, int? Axis = null, int? GroupSize = null,
    IReadOnlyList<long>? WeightShape = null);
