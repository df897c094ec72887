using System.Globalization;

namespace Quanto.Quantization;

/// <summary>Where a long quantization pass stands: which layer, how many of how many, and how far into it.</summary>
/// <param name="Stage">The pass ("GPTQ", "sensitivity", "smoothing").</param>
/// <param name="Module">The layer's path.</param>
/// <param name="Index">0-based position of the layer in the pass.</param>
/// <param name="Count">Layers in the pass.</param>
/// <param name="Fraction">How much of this layer is done, in [0, 1]; 1 once it is finished.</param>
public sealed record QuantizationProgress(string Stage, string Module, int Index, int Count, double Fraction);

/// <summary>
/// A text progress bar per layer: one line that redraws in place while a layer is worked on and stays when it is
/// done ("GPTQ  3/36 blocks.0.attn.q  [##########----------]  50%"). Writes to standard error by default.
/// </summary>
/// <param name="writer">Where to draw (default <see cref="Console.Error"/>).</param>
/// <param name="width">Characters of the bar.</param>
public sealed class ConsoleProgressBar(TextWriter? writer = null, int width = 30) : IProgress<QuantizationProgress>
{
    private readonly TextWriter _writer = writer ?? Console.Error;
    private readonly int _width = Math.Max(1, width);
    private readonly object _gate = new();

    /// <inheritdoc />
    public void Report(QuantizationProgress value)
    {
        ArgumentNullException.ThrowIfNull(value);
        double fraction = Math.Clamp(value.Fraction, 0, 1);
        int filled = (int)Math.Round(fraction * _width);
        string line = string.Create(CultureInfo.InvariantCulture,
            $"\r{value.Stage} {value.Index + 1,3}/{value.Count} {value.Module} " +
            $"[{new string('#', filled)}{new string('-', _width - filled)}] {fraction * 100,3:F0}%");
        lock (_gate)
        {
            _writer.Write(line);
            if (fraction >= 1) _writer.WriteLine();
            _writer.Flush();
        }
    }
}
