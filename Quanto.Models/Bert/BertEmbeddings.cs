using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Quanto.Models.Bert;

/// <summary>transformers' BertEmbeddings: word + absolute position + token type embeddings, then LayerNorm.</summary>
[Quantize]
public sealed partial class BertEmbeddings : Module<Tensor, Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> word_embeddings;
    private readonly Module<Tensor, Tensor> position_embeddings;
    private readonly Module<Tensor, Tensor> token_type_embeddings;
    private readonly Module<Tensor, Tensor> LayerNorm;

    /// <summary>Builds the tables for <paramref name="config"/>.</summary>
    public BertEmbeddings(BertConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(BertEmbeddings))
    {
        ArgumentNullException.ThrowIfNull(config);
        word_embeddings = Embedding(config.VocabSize, config.HiddenSize, device: device, dtype: dtype);
        position_embeddings = Embedding(config.MaxPositionEmbeddings, config.HiddenSize, device: device, dtype: dtype);
        token_type_embeddings = Embedding(config.TypeVocabSize, config.HiddenSize, device: device, dtype: dtype);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <summary>(batch, seq) token ids and token types -> (batch, seq, hidden).</summary>
    public override Tensor forward(Tensor input_ids, Tensor token_type_ids)
    {
        Tensor positions = arange(input_ids.shape[1], dtype: ScalarType.Int64, device: input_ids.device);
        Tensor embeddings = word_embeddings.forward(input_ids)
            .add_(token_type_embeddings.forward(token_type_ids))
            .add_(position_embeddings.forward(positions));
        return LayerNorm.forward(embeddings);
    }
}
