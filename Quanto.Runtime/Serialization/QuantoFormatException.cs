namespace Quanto.Serialization;

/// <summary>
/// The one exception Quanto.NET throws for malformed or mismatched checkpoint input: a truncated or corrupted file,
/// a header that is not what the format says, a missing or extra key, a shape that does not fit the model, an
/// unknown qtype name, a checksum mismatch. The message names the file and what is wrong.
/// </summary>
public sealed class QuantoFormatException : Exception
{
    /// <summary>Creates the exception; the message is prefixed with the file path.</summary>
    /// <param name="filePath">The file (or stream description) being read.</param>
    /// <param name="problem">What is wrong, with the key and shapes where relevant.</param>
    /// <param name="innerException">The lower-level error, if any.</param>
    public QuantoFormatException(string filePath, string problem, Exception? innerException = null)
        : base($"{filePath}: {problem}", innerException)
    {
        FilePath = filePath;
        Problem = problem;
    }

    /// <summary>The file (or stream description) being read or written.</summary>
    public string FilePath { get; }

    /// <summary>The problem, without the file prefix.</summary>
    public string Problem { get; }
}
