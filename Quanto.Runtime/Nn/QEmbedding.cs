using Quanto.Functional;
using Quanto.Quantization;
using Quanto.Tensors;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Nn;

/// <summary>
/// An Embedding whose table is quantized: qint8 / float8 symmetric per row (one scale per embedding), qint2 / qint4
/// group-wise affine along the embedding dimension (group 128 with the 96/64/32/per-row fallback, as Linear). The
/// table is stored in Linear's layout (rows = output channels), so its file keys are those of a quantized Linear.
/// A lookup decodes only the gathered rows (<see cref="QuantizedOps.embedding"/>). Weights only: the input is
/// indices, and the output stays float. optimum-quanto has no quantized Embedding, so this kind is opt-in
/// (<see cref="Quantizer.Quantize"/>'s <c>embeddings</c>).
/// </summary>
[QuantizedLayer(typeof(Embedding), Operation = "embedding", WeightRank = 2, QuantizedByCli = false, OptIn = true,
    QuantizesActivations = false)]
public sealed class QEmbedding : QModule
{
    /// <summary>Wraps <paramref name="source"/> with <paramref name="settings"/> (the registry's factory): its
    /// weights, group size and optimizer; activations are not quantized (the input is indices).</summary>
    /// <param name="source">The float layer.</param>
    /// <param name="settings">Qtypes, group size, optimizer and the layer's path.</param>
    /// <exception cref="NotSupportedException">The settings quantize no weights (the layer stays float), or see the
    /// other constructor.</exception>
    public QEmbedding(Embedding source, LayerSettings settings)
        : this(source, WeightsOf(settings), settings.GroupSize, settings.Optimizer, settings.Path)
    {
    }

    /// <summary>Wraps <paramref name="source"/>, sharing its table until <see cref="QModule.Freeze"/>.</summary>
    /// <param name="source">The float Embedding.</param>
    /// <param name="weights">Table qtype (required).</param>
    /// <param name="groupSize">Requested group size for qint2/qint4 tables.</param>
    /// <param name="optimizer">Weight optimizer.</param>
    /// <param name="path">The module's path in its model, for messages.</param>
    /// <exception cref="ArgumentException">No weights qtype.</exception>
    /// <exception cref="NotSupportedException">The Embedding uses max_norm (it renormalizes looked-up rows in place,
    /// which a quantized table cannot), sparse or scale_grad_by_freq (gradient options quantization-aware training
    /// does not reproduce), or its table is empty. padding_idx is supported.</exception>
    public QEmbedding(Embedding source, QType? weights, int? groupSize = null, Optimizer? optimizer = null,
        string? path = null)
        : base(nameof(QEmbedding), weights, null, groupSize, optimizer)
    {
        Path = path ?? Path;
        Parameter? weight = null;
        try
        {
            ArgumentNullException.ThrowIfNull(source);
            Parameter table = source.weight ?? throw new ArgumentException($"Embedding '{Path}' has no weight.");
            weight = table;
            (num_embeddings, embedding_dim) = (table.shape[0], table.shape[1]);
            padding_idx = CheckSupported(source, weights, table);
        }
        catch
        {
            weight?.Dispose(); // our own handle; the source keeps its table
            Dispose(); // the scale buffers
            throw;
        }
        register_parameter("weight", weight!);
    }

    private static QType WeightsOf(LayerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return settings.Weights ?? throw new NotSupportedException(
            $"Embedding '{settings.Path}': only its table can be quantized (its input is indices), and no weights " +
            "qtype was given; left float.");
    }

    private long? CheckSupported(Embedding source, QType? weights, Parameter weight)
    {
        if (weights is null)
        {
            throw new ArgumentException(
                $"QEmbedding '{Path}' quantizes its table: give a weights qtype (its input is indices, so there are " +
                "no activations to quantize).", nameof(weights));
        }
        if (num_embeddings == 0 || embedding_dim == 0)
            throw new NotSupportedException($"Embedding '{Path}' has an empty table ({Shape}): nothing to quantize.");
        EmbeddingOptions options = EmbeddingOptions.Read(source, weight);
        string? refused = options switch
        {
            { MaxNorm: true } => "max_norm (lookups renormalize rows of the table in place; a quantized table is " +
                                 "read-only)",
            { Sparse: true } => "sparse gradients (quantization-aware training computes a dense gradient)",
            { ScaleGradByFreq: true } => "scale_grad_by_freq (quantization-aware training does not scale gradients)",
            _ => null,
        };
        if (refused is null) return options.PaddingIdx;
        throw new NotSupportedException(
            $"QEmbedding '{Path}' ({Shape}) does not support {refused}; create the Embedding without it, or leave " +
            "this module float (exclude it).");
    }

#pragma warning disable IDE1006 // TorchSharp naming
    /// <summary>Rows of the table (the vocabulary size).</summary>
    public long num_embeddings { get; }

    /// <summary>Length of each embedding.</summary>
    public long embedding_dim { get; }

    /// <summary>The row that receives no gradient in quantization-aware training (as in the float module), or
    /// null. Lookups of it return its stored values, as libtorch's do.</summary>
    public long? padding_idx { get; }
#pragma warning restore IDE1006

    private string Shape => $"{num_embeddings} x {embedding_dim}";

    /// <summary>
    /// The lookup: frozen, the gathered rows of the quantized table; dynamic inference, the same on the table
    /// quantized now (bit-identical to frozen); training, rows of the fake-quantized table with a straight-through
    /// gradient to the float table (none to the padding row).
    /// </summary>
    /// <exception cref="ArgumentException">Indices are not Int64/Int32 or fall outside the table (the message names
    /// this module, the index and the table size).</exception>
    public override Tensor Compute(QActivation input)
    {
        Tensor indices = input.Value;
        QuantizedOps.CheckIndices(indices, num_embeddings, Describe());
        QType qtype = WeightQType!.Value;
        if (QuantizedWeight is QuantizedWeight frozen) return QuantizedOps.EmbeddingRows(indices, frozen);
        Parameter table = FloatWeight!;
        if (training || is_grad_enabled() && table.requires_grad) return TrainingRows(indices, table, qtype);
        using QuantizedWeight weight = WeightQuantizer.Quantize(table, qtype, GroupSize, Optimizer);
        return QuantizedOps.EmbeddingRows(indices, weight);
    }

    private Tensor TrainingRows(Tensor indices, Parameter table, QType qtype)
    {
        using var scope = NewDisposeScope();
        Tensor flat = indices.reshape(-1).to(ScalarType.Int64, table.device);
        Tensor rows = QuantizedOps.fake_quantize_weight(table, qtype, GroupSize, Optimizer).index_select(0, flat);
        if (padding_idx is long pad) rows = where(flat.eq(pad).unsqueeze(1), rows.detach(), rows);
        return rows.reshape([.. indices.shape, embedding_dim]).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string Describe() => $"QEmbedding '{Path}' ({Shape})";

    /// <inheritdoc />
    protected override long[] ExpectedWeightShape() => [num_embeddings, embedding_dim];
}
