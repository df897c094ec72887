namespace Quanto.Kernels.Ilgpu.Kernels;

/// <summary>
/// The sizes a kernel needs, passed by value as one kernel argument. y (M, N) = x (M, K) · Wᵀ with W stored row-major in
/// <see cref="ChunksPerRow"/> 16-byte chunks per output feature (the row tail padded with zero codes).
/// </summary>
/// <param name="M">Rows of x and y.</param>
/// <param name="N">Output features.</param>
/// <param name="K">Input features.</param>
/// <param name="ChunksPerRow">16-byte chunks per weight row.</param>
/// <param name="PaddedK">Codes per padded weight row (ChunksPerRow x codes per chunk): x is zero-filled up to here.</param>
/// <param name="GroupSize">Elements per affine group (packed formats; K for the others).</param>
/// <param name="GroupsPerRow">Affine groups per output feature (K / GroupSize).</param>
public readonly record struct LinearShape(int M, int N, int K, int ChunksPerRow, int PaddedK, int GroupSize,
    int GroupsPerRow);
