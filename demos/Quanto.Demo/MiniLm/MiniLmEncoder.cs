using Quanto.Models.Bert;
using static TorchSharp.torch;

namespace Quanto.Demo.MiniLm;

/// <summary>Our model in one configuration, as a sentence encoder: token batches in, normalised embeddings out.
/// </summary>
internal sealed class MiniLmEncoder(string name, Bert model) : ISentenceEncoder, IDisposable
{
    public string Name { get; } = name;

    /// <summary>The model (owned: disposed with the encoder).</summary>
    public Bert Model { get; } = model;

    public float[] Embed(TokenBatch batch) => Embed(Model, batch);

    /// <summary>Sentence embeddings of a batch through <see cref="Bert.SentenceEmbeddings"/>.</summary>
    public static float[] Embed(Bert model, TokenBatch batch)
    {
        using var scope = NewDisposeScope();
        (Tensor ids, Tensor mask) = batch.Tensors();
        Tensor embeddings = model.SentenceEmbeddings(ids, mask);
        return embeddings.data<float>().ToArray();
    }

    public void Dispose() => Model.Dispose();
}
