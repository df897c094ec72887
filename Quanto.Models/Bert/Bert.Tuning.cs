using Quanto.Nn;
using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto.Models.Bert;

public sealed partial class Bert
{
    /// <summary>
    /// <see cref="Quantizer.TuneScales(IEnumerable{QModule}, int, Func{int, Tensor}, ScaleTuningOptions?,
    /// IProgress{QuantizationProgress}?)"/> for this encoder: after <see cref="Quantize"/> to qint2/qint4, the group
    /// scales and shifts of the quantized layers move so that the last hidden states on the calibration batches come
    /// closer to the float model's, the loss being the squared error over the tokens each mask keeps, relative to the
    /// float states' energy there (token types 0, as <see cref="SentenceEmbeddings"/> runs). The codes stay, so
    /// <see cref="SavePretrained"/> still writes optimum-quanto's layout. On all-MiniLM-L6-v2 with 512 calibration
    /// sentences it lifted HQQ w4 g128 from 0.959 to 0.984 mean cosine to the float embeddings (the MiniLM demo's
    /// optional row "w4 g128 HQQ + tuned scales").
    /// </summary>
    /// <param name="inputIds">Calibration batches of token ids, int64 (batch, length).</param>
    /// <param name="attentionMasks">Each batch's attention mask (1 = token, 0 = padding), same shape.</param>
    /// <param name="floatHiddenStates">For each batch, the float model's last hidden state (batch, length, hidden):
    /// what <c>forward(ids, mask, zeros_like(ids))</c> gave before <see cref="Quantize"/> (kept by the caller; not
    /// disposed here).</param>
    /// <param name="options">Tuning settings (epochs, learning rate, keep only if better).</param>
    /// <param name="progress">Reports each epoch's progress (stage "scale tuning").</param>
    /// <returns>The layers tuned, the loss before, during and after, and whether the result was kept.</returns>
    /// <exception cref="ArgumentException">No batches, not one mask and one hidden state per batch, or shapes that do
    /// not match (named by batch).</exception>
    /// <exception cref="InvalidOperationException">No layer can be tuned (the model is not quantized to
    /// qint2/qint4 and frozen), or the loss is NaN/Inf (the weights are left as they were).</exception>
    public ScaleTuningReport TuneScales(IReadOnlyList<Tensor> inputIds, IReadOnlyList<Tensor> attentionMasks,
        IReadOnlyList<Tensor> floatHiddenStates, ScaleTuningOptions? options = null,
        IProgress<QuantizationProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMasks);
        ArgumentNullException.ThrowIfNull(floatHiddenStates);
        if (inputIds.Count == 0) throw new ArgumentException("Give at least one calibration batch.", nameof(inputIds));
        if (attentionMasks.Count != inputIds.Count || floatHiddenStates.Count != inputIds.Count)
        {
            throw new ArgumentException($"Give one attention mask and one float hidden state per batch: " +
                $"{inputIds.Count} batches, {attentionMasks.Count} masks, {floatHiddenStates.Count} hidden states.",
                nameof(floatHiddenStates));
        }
        for (int i = 0; i < inputIds.Count; i++)
        {
            Tensor ids = inputIds[i], mask = attentionMasks[i], target = floatHiddenStates[i];
            bool fits = ids.dim() == 2 && mask.shape.SequenceEqual(ids.shape) && target.dim() == 3 &&
                target.size(0) == ids.size(0) && target.size(1) == ids.size(1) && target.size(2) == Config.HiddenSize;
            if (!fits)
            {
                throw new ArgumentException(
                    $"Batch {i}: ids {Shapes.Format(ids.shape)} need a mask of the same shape and float hidden " +
                    $"states [batch, length, {Config.HiddenSize}]; got mask {Shapes.Format(mask.shape)}, " +
                    $"hidden states {Shapes.Format(target.shape)}. Run forward(ids, mask, zeros_like(ids)) on " +
                    "the float model before Quantize to get them.", nameof(floatHiddenStates));
            }
        }
        return Quantizer.TuneScales(Quantizer.QuantizedModules(this), inputIds.Count, i =>
        {
            Tensor ids = inputIds[i], mask = attentionMasks[i];
            return Quantizer.RelativeSquaredError(forward(ids, mask, zeros_like(ids)), floatHiddenStates[i],
                mask.unsqueeze(-1));
        }, options, progress);
    }
}
