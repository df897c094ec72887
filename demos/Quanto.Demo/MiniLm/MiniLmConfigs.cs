using Quanto.Models.Bert;
using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto.Demo.MiniLm;

/// <summary>One way to run all-MiniLM-L6-v2 through the library.</summary>
/// <param name="Name">Its row in the tables.</param>
/// <param name="Recipe">What it does, in a few words (the table's note).</param>
/// <param name="Apply">Quantizes a freshly loaded float model in place (calibrating on the given batches where it
/// needs activation ranges) and freezes it; null for the float model.</param>
/// <param name="FileFormat">The extension it is saved with: optimum-quanto's safetensors + quanto_qmap.json, or the
/// .qnt package for group sizes that an optimum-quanto reader cannot re-derive from the weight's shape.</param>
internal sealed record MiniLmConfig(string Name, string Recipe, Action<Bert, IReadOnlyList<TokenBatch>>? Apply,
    string FileFormat = ".safetensors")
{
    /// <summary>False for the float model.</summary>
    public bool IsQuantized => Apply is not null;
}

/// <summary>
/// Every configuration the demo measures, through the public API (the eager <see cref="Quantizer"/> on the model the
/// Hugging Face loader built). Embeddings stay float unless a row says otherwise, as optimum-quanto does.
/// </summary>
internal static class MiniLmConfigs
{
    /// <summary>The LayerNorms, by module path (HF spells them "LayerNorm").</summary>
    private const string LayerNorms = "*LayerNorm";

    public static readonly MiniLmConfig Float = new("fp32", "float32, Hugging Face checkpoint", null);

    public static readonly MiniLmConfig[] All =
    [
        Float,
        Weights("w8", "int8 per channel", QType.QInt8),
        Weights("w4 g128", "int4 group 128, default optimizer", QType.QInt4, 128),
        Weights("w4 g128 HQQ", "int4 group 128, HQQ", QType.QInt4, 128, new HqqOptimizer()),
        Weights("w2 g128 HQQ", "int2 group 128, HQQ", QType.QInt2, 128, new HqqOptimizer()),
        Weights("fp8 e4m3fn", "float8 e4m3fn per channel", QType.QFloat8E4M3Fn),
        Static("w8a8 static", "int8 weights + calibrated int8 activations", []),
        Static("w8a8 static, LN float", "as w8a8, LayerNorm inputs/outputs left float", [LayerNorms]),
    ];

    private static MiniLmConfig Weights(string name, string recipe, QType qtype, int? group = null,
        Optimizer? optimizer = null) =>
        new(name, recipe, (model, _) =>
        {
            Quantizer.Quantize(model, qtype, optimizer: optimizer, groupSize: group);
            Quantizer.Freeze(model);
        });

    /// <summary>int8 weights and activations, activation ranges from the calibration batches (absmax with
    /// optimum-quanto's momentum).</summary>
    private static MiniLmConfig Static(string name, string recipe, string[] exclude) =>
        new(name, recipe, (model, calibration) =>
        {
            Quantizer.Quantize(model, QType.QInt8, QType.QInt8, exclude: exclude);
            using (new Calibration())
            {
                foreach (TokenBatch batch in calibration)
                {
                    using (NewDisposeScope()) MiniLmEncoder.Embed(model, batch);
                }
            }
            Quantizer.Freeze(model);
        });
}
