using TorchSharp;
using static TorchSharp.torch;

namespace Quanto.Serialization;

/// <summary>
/// Moves raw bytes in and out of TorchSharp tensors without an intermediate managed copy. A tensor's
/// <c>bytes</c> span is limited to 2 GiB (an int length), so large tensors are visited through contiguous
/// views of at most <see cref="ChunkBytes"/> bytes each.
/// </summary>
internal static class TensorBytes
{
    /// <summary>Largest span handed out at once (1 GiB): well inside Span's int range, a multiple of 8.</summary>
    internal const int ChunkBytes = 1 << 30;

    /// <summary>Receives one chunk of a tensor's memory.</summary>
    internal delegate void ChunkAction(Span<byte> chunk);

    /// <summary>Allocates an uninitialised CPU tensor.</summary>
    internal static Tensor Allocate(long[] shape, ScalarType dtype) => empty(shape, dtype: dtype, device: CPU);

    /// <summary>Byte count of a tensor's elements.</summary>
    internal static long ByteCount(Tensor tensor) =>
        checked(tensor.NumberOfElements * SafetensorsDType.ElementSize(tensor.dtype));

    /// <summary>
    /// The tensor itself when it is a contiguous CPU tensor, else a contiguous CPU copy that the caller disposes
    /// (compare references to know).
    /// </summary>
    internal static Tensor ContiguousCpu(Tensor tensor)
    {
        if (tensor.device_type == DeviceType.CPU && tensor.is_contiguous()) return tensor;
        using Tensor cpu = tensor.cpu();
        return cpu.contiguous();
    }

    /// <summary>Calls <paramref name="action"/> on the tensor's memory in order, chunk by chunk.</summary>
    /// <param name="tensor">A contiguous CPU tensor.</param>
    /// <param name="action">Reads or writes each chunk.</param>
    /// <param name="chunkBytes">Chunk limit; tests lower it to exercise the chunked path on small tensors.</param>
    internal static void ForEachChunk(Tensor tensor, ChunkAction action, int chunkBytes = ChunkBytes)
    {
        long total = ByteCount(tensor);
        if (total == 0) return;
        if (total <= chunkBytes)
        {
            action(tensor.bytes);
            return;
        }
        int elementSize = SafetensorsDType.ElementSize(tensor.dtype);
        long perChunk = Math.Max(1, chunkBytes / elementSize);
        using Tensor flat = tensor.reshape(-1); // a view: the tensor is contiguous
        for (long start = 0; start < flat.shape[0]; start += perChunk)
        {
            using Tensor part = flat.narrow(0, start, Math.Min(perChunk, flat.shape[0] - start));
            action(part.bytes); // data_ptr of a view includes its storage offset
        }
    }
}
