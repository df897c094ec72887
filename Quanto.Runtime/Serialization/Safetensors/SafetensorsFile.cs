using System.IO.Hashing;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// An open safetensors file: the validated header, and tensors read on demand straight from the file into
/// TorchSharp tensor memory (no second copy of the file is ever held). Offsets are 64-bit throughout, so files and
/// tensors over 2 GB work. When the file carries Quanto.NET checksums, each tensor is verified as it is read.
/// Not thread-safe: reads share one file position, so use one instance per thread.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    private readonly Stream _stream;
    private readonly bool _ownsStream;
    private readonly SafetensorsHeader _header;
    private readonly Dictionary<string, SafetensorsEntry> _byName;
    private readonly Dictionary<string, ulong>? _checksums;

    private SafetensorsFile(Stream stream, bool ownsStream, string source)
    {
        _stream = stream;
        _ownsStream = ownsStream;
        Source = source;
        try
        {
            _header = SafetensorsHeader.Read(stream, source);
        }
        catch (EndOfStreamException e)
        {
            throw new QuantoFormatException(source, "truncated: the file ended while reading the header.", e);
        }
        _byName = _header.Entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
        _checksums = SafetensorsChecksums.Verify(_header, source, out Dictionary<string, string> metadata);
        Metadata = metadata;
    }

    /// <summary>Opens a file for reading; the header is read and validated now.</summary>
    /// <exception cref="QuantoFormatException">The header is malformed.</exception>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    public static SafetensorsFile Open(string path)
    {
        // bufferSize 1 disables FileStream buffering: tensor bytes go straight from the OS into tensor memory.
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        try
        {
            return new SafetensorsFile(stream, ownsStream: true, path);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Reads from a seekable stream (e.g. a MemoryStream); the caller keeps ownership of it.</summary>
    /// <param name="stream">Seekable stream holding the whole file.</param>
    /// <param name="source">Name used in error messages.</param>
    public static SafetensorsFile Open(Stream stream, string source)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanSeek || !stream.CanRead)
            throw new ArgumentException("The stream must be readable and seekable.");
        return new SafetensorsFile(stream, ownsStream: false, source);
    }

    /// <summary>The file path (or stream description).</summary>
    public string Source { get; }

    /// <summary>Tensor descriptions in file order.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries => _header.Entries;

    /// <summary>The __metadata__ entries (without Quanto.NET's checksum record).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>True when the file carries Quanto.NET checksums (verified on every read).</summary>
    public bool HasChecksums => _checksums is not null;

    /// <summary>True when a tensor named <paramref name="name"/> is present.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The description of one tensor.</summary>
    /// <exception cref="QuantoFormatException">No such key.</exception>
    public SafetensorsEntry Entry(string name) =>
        _byName.TryGetValue(name, out SafetensorsEntry? e) ? e : throw new QuantoFormatException(Source,
            $"missing key '{name}' ({_byName.Count} tensors present).");

    /// <summary>Reads one tensor into a new CPU tensor that the caller owns.</summary>
    /// <exception cref="QuantoFormatException">No such key, the file is truncated, or its checksum fails.</exception>
    public Tensor Read(string name)
    {
        SafetensorsEntry entry = Entry(name);
        Tensor tensor = TensorBytes.Allocate(entry.ShapeArray, entry.DType);
        try
        {
            XxHash64? hash = _checksums is null ? null : SafetensorsChecksums.Start(entry);
            _stream.Position = _header.DataStart + entry.Begin;
            TensorBytes.ForEachChunk(tensor, chunk =>
            {
                _stream.ReadExactly(chunk);
                hash?.Append(chunk);
            });
            if (hash is not null && hash.GetCurrentHashAsUInt64() != _checksums![name])
            {
                throw new QuantoFormatException(Source,
                    $"checksum mismatch for tensor '{name}': the data or its description is corrupted.");
            }
            return tensor;
        }
        catch (EndOfStreamException e)
        {
            tensor.Dispose();
            throw new QuantoFormatException(Source, $"truncated: the file ended inside tensor '{name}'.", e);
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    /// <summary>Reads every tensor, in file order, with the metadata.</summary>
    public StateDict ReadAll()
    {
        var dict = new StateDict(Source);
        try
        {
            foreach (SafetensorsEntry entry in Entries) dict.Add(entry.Name, Read(entry.Name));
            foreach (var (key, value) in Metadata) dict.Metadata[key] = value;
            return dict;
        }
        catch
        {
            dict.Dispose();
            throw;
        }
    }

    /// <summary>Closes the file.</summary>
    public void Dispose()
    {
        if (_ownsStream) _stream.Dispose();
    }
}
