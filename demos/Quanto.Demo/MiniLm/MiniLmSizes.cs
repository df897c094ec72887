using Quanto.Models.Bert;
using Quanto.Nn;
using TorchSharp.Modules;

namespace Quanto.Demo.MiniLm;

/// <summary>What a configuration of the encoder holds, in bytes, and what its weight matrices cost per weight.
/// </summary>
internal static class MiniLmSizes
{
    /// <summary>
    /// Bytes the whole model holds (<see cref="Quantizer.ModelBytes(TorchSharp.torch.nn.Module)"/>), the same
    /// without the word / position / token-type embedding tables, and bits per weight of the encoder's Linear
    /// weights: quantized codes with their scales and shifts, or 32 for a layer left float.
    /// </summary>
    public static (long Bytes, long NonEmbeddingBytes, double BitsPerWeight) Of(Bert model)
    {
        long bytes = Quantizer.ModelBytes(model);
        long embeddings = model.named_modules()
            .Where(m => m.name.StartsWith("embeddings.", StringComparison.Ordinal) &&
                        m.name.EndsWith("_embeddings", StringComparison.Ordinal))
            .Sum(m => Quantizer.ModelBytes(m.module));
        long weightBytes = 0, weights = 0;
        foreach ((string path, TorchSharp.torch.nn.Module module) in model.named_modules())
        {
            if (path.StartsWith("embeddings.", StringComparison.Ordinal)) continue;
            switch (module)
            {
                case QLinear { QuantizedWeight: { } quantized }:
                    weightBytes += quantized.ByteSize;
                    weights += quantized.NumberOfElements;
                    break;
                case QLinear { FloatWeight: { } floatWeight }:
                    weightBytes += floatWeight.NumberOfElements * floatWeight.ElementSize;
                    weights += floatWeight.NumberOfElements;
                    break;
                case Linear linear:
                    weightBytes += linear.weight!.NumberOfElements * linear.weight.ElementSize;
                    weights += linear.weight.NumberOfElements;
                    break;
            }
        }
        return (bytes, bytes - embeddings, weights == 0 ? 0 : 8.0 * weightBytes / weights);
    }
}
