using System.Buffers;

namespace Quanto.Serialization;

/// <summary>
/// An <see cref="IBufferWriter{T}"/> that passes every committed span straight to a stream, so a MessagePack
/// writer never accumulates the whole package in memory. Large tensor bytes bypass it entirely (written to the
/// stream directly after a flush).
/// </summary>
internal sealed class StreamBufferWriter(Stream stream) : IBufferWriter<byte>
{
    private byte[] _buffer = new byte[1 << 16];

    public void Advance(int count) => stream.Write(_buffer, 0, count);

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        if (sizeHint > _buffer.Length) _buffer = new byte[Math.Max(sizeHint, _buffer.Length * 2)];
        return _buffer;
    }

    public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;
}
