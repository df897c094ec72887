using static TorchSharp.torch;

namespace Quanto.Models.HuggingFace;

/// <summary>Options for loading a Hugging Face checkpoint.</summary>
public sealed record LoadOptions
{
    /// <summary>The dtype the model runs in (float32, float16, bfloat16). Null: float32, as transformers loads
    /// by default whatever the file holds; tensors are converted as they are read.</summary>
    public ScalarType? DType { get; init; }

    /// <summary>The device to load onto (default CPU).</summary>
    public Device? Device { get; init; }

    /// <summary>When true (the default), keys in the file that the model does not use, other than the ones it
    /// knows to skip, are an error; when false they are listed in <see cref="LoadReport.Unexpected"/>.</summary>
    public bool Strict { get; init; } = true;
}

/// <summary>What a load did.</summary>
/// <param name="Source">The weights file or index.</param>
/// <param name="DType">The dtype the model runs in.</param>
/// <param name="Loaded">Model keys read from the file.</param>
/// <param name="Ignored">File keys the model knows it does not use (task heads, buffers transformers recomputes).
/// </param>
/// <param name="Unexpected">Other file keys the model did not use (only when not strict).</param>
public sealed record LoadReport(string Source, ScalarType DType, IReadOnlyList<string> Loaded,
    IReadOnlyList<string> Ignored, IReadOnlyList<string> Unexpected)
{
    /// <inheritdoc />
    public override string ToString()
    {
        string text = $"{Source}: {Loaded.Count} tensor(s) loaded as {DTypes.Name(DType)}";
        if (Ignored.Count > 0) text += $"; ignored {string.Join(", ", Ignored)}";
        if (Unexpected.Count > 0) text += $"; unexpected {string.Join(", ", Unexpected)}";
        return text;
    }
}
