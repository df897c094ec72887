namespace Quanto.Models;

/// <summary>Shapes in messages, written as the serialization layer writes them: [2, 3].</summary>
internal static class Shapes
{
    /// <summary>"[2, 3]".</summary>
    internal static string Format(IEnumerable<long> shape) => $"[{string.Join(", ", shape)}]";
}
