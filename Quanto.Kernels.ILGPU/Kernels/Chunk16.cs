using System.Runtime.InteropServices;

namespace Quanto.Kernels.Ilgpu.Kernels;

/// <summary>
/// Sixteen bytes of weight codes read by one thread in one load. Casting a byte view to this struct lets the PTX
/// backend emit one 128-bit load (<c>ld.global.v4.u32</c>) instead of sixteen byte loads; the kernel layout keeps every
/// row 16-byte aligned so the cast is always legal. Holds 16 int8/fp8 codes, 32 int4 codes or 64 int2 codes.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = Bytes)]
public struct Chunk16
{
    /// <summary>Size of the struct in bytes (asserted by <see cref="StructLayoutAttribute.Size"/> and the tests).</summary>
    public const int Bytes = 16;

    /// <summary>Bytes 0..3 (little-endian: code 0 in the low bits).</summary>
    public uint X;

    /// <summary>Bytes 4..7.</summary>
    public uint Y;

    /// <summary>Bytes 8..11.</summary>
    public uint Z;

    /// <summary>Bytes 12..15.</summary>
    public uint W;
}
