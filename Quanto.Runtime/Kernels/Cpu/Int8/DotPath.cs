namespace Quanto.Kernels.Cpu.Int8;

/// <summary>The implementations of the int8-activation kernels, fastest first.</summary>
internal enum DotPath
{
    /// <summary>The fastest this CPU supports.</summary>
    Auto,

    /// <summary>AVX-512 VNNI vpdpbusd on 512-bit registers, assembled at run time (.NET cannot emit it).</summary>
    Vnni512Assembled,

    /// <summary>AVX-VNNI vpdpbusd on 256-bit registers, emitted by the JIT.</summary>
    AvxVnni256,

    /// <summary>AVX2 vpmaddubsw + vpmaddwd on 256-bit registers, emitted by the JIT (qint8 codes split into nibbles
    /// so that no int16 sum saturates).</summary>
    Avx2Madd256,

    /// <summary>Portable Vector256 int32 arithmetic (any SIMD CPU; emulated where 256-bit vectors are not).</summary>
    Portable256,

    /// <summary>Plain scalar C# (<see cref="DotReference"/>).</summary>
    Scalar,
}
