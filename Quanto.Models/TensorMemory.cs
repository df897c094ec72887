using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Quanto.Models;

/// <summary>Raw access to tensor memory for the models' one-pass CPU paths (RowsNorm, DecodeAttention).</summary>
internal static unsafe class TensorMemory
{
    /// <summary>The first float of a contiguous CPU float32 tensor <paramref name="t"/> (libtorch's memory, which
    /// the GC does not move; keep <paramref name="t"/> alive while the pointer is used).</summary>
    internal static float* Floats(Tensor t) => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(t.bytes));
}
