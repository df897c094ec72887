using System.Buffers;
using System.IO.MemoryMappedFiles;

namespace Quanto.Serialization;

/// <summary>
/// A read-only memory map of a whole file exposed as a <see cref="ReadOnlySequence{T}"/>, split into segments of at
/// most <see cref="SegmentBytes"/> so that files over 2 GB (beyond a single Memory's int length) work. Nothing is
/// copied: the OS pages the file in as it is read.
/// </summary>
internal sealed unsafe class MappedSequence : IDisposable
{
    /// <summary>Default segment size (1 GiB).</summary>
    internal const int SegmentBytes = 1 << 30;

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private bool _disposed;

    /// <summary>Maps <paramref name="path"/>; the file must not be empty.</summary>
    internal MappedSequence(string path, long length, int segmentBytes = SegmentBytes)
    {
        _file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            _view = _file.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            pointer += _view.PointerOffset;
            Sequence = Build(pointer, length, segmentBytes);
        }
        catch
        {
            _view?.Dispose();
            _file.Dispose();
            throw;
        }
    }

    /// <summary>The file's bytes.</summary>
    internal ReadOnlySequence<byte> Sequence { get; }

    /// <summary>Builds a sequence over unmanaged memory, segment by segment.</summary>
    internal static ReadOnlySequence<byte> Build(byte* pointer, long length, int segmentBytes)
    {
        if (length <= segmentBytes) return new ReadOnlySequence<byte>(new UnmanagedMemory(pointer, (int)length).Memory);
        Segment? first = null, last = null;
        for (long offset = 0; offset < length; offset += segmentBytes)
        {
            int size = (int)Math.Min(segmentBytes, length - offset);
            var segment = new Segment(new UnmanagedMemory(pointer + offset, size).Memory, offset);
            if (last is null) first = segment;
            else last.Next = segment;
            last = segment;
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    /// <summary>Unmaps the file. Tensors already read hold their own copies.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        internal Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        internal new Segment? Next
        {
            get => (Segment?)base.Next;
            set => base.Next = value;
        }
    }

    private sealed class UnmanagedMemory(byte* pointer, int length) : MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => new(pointer, length);

        public override MemoryHandle Pin(int elementIndex = 0) => new(pointer + elementIndex);

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}
