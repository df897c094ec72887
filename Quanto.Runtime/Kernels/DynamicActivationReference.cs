using static TorchSharp.torch;

namespace Quanto.Kernels;

/// <summary>
/// <see cref="DynamicActivations"/> in TorchSharp ops: the activations quantized per block and dequantized, then the
/// backend's float matmul. This is the default of <see cref="IQuantKernels.LinearDynamic"/> (so every backend runs
/// every mode) and the reference the integer kernels are tested against.
/// </summary>
internal static class DynamicActivationReference
{
    /// <summary>x quantized to int8 per block of <paramref name="blocking"/> and dequantized, in Float32, shaped like
    /// <paramref name="input"/> (..., K).</summary>
    public static Tensor FakeQuantize(Tensor input, ActivationBlocking blocking)
    {
        using var scope = NewDisposeScope();
        long k = input.shape[^1];
        int g = blocking.GroupLength, b = blocking.BlockLength;
        long groups = k / g;
        int padded = (g + b - 1) / b * b; // zeros fill a short last block: they change no absmax and add nothing
        Tensor x = input.to(ScalarType.Float32).reshape(-1, groups, g);
        if (padded != g) x = nn.functional.pad(x, [0, padded - g]);
        Tensor blocks = x.reshape(x.shape[0], groups, padded / b, b);
        Tensor scale = blocks.abs().amax([-1], keepdim: true).div(127f);
        Tensor safe = where(scale.eq(0), ones_like(scale), scale); // an all-zero block: codes 0, scale 0
        Tensor dq = blocks.div(safe).round().clamp(-127, 127).mul(scale).reshape(-1, groups, padded);
        if (padded != g) dq = dq.narrow(2, 0, g);
        return dq.reshape(input.shape).MoveToOuterDisposeScope();
    }

    /// <summary>x rounded to bfloat16 (libtorch's cast: nearest even), in Float32.</summary>
    public static Tensor RoundToBFloat16(Tensor input)
    {
        using var scope = NewDisposeScope();
        return input.to(ScalarType.BFloat16).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>F.linear semantics of <see cref="IQuantKernels.LinearDynamic"/> through <paramref name="backend"/>'s
    /// float <see cref="IQuantKernels.Linear"/>.</summary>
    public static Tensor Linear(IQuantKernels backend, Tensor input, PreparedWeight weight, Tensor? bias,
        DynamicActivations mode)
    {
        KernelChecks.CheckDynamic(mode);
        KernelChecks.CheckLinear(input, weight, bias);
        using var scope = NewDisposeScope();
        Tensor? x = mode == DynamicActivations.BFloat16 ? RoundToBFloat16(input)
            : ActivationBlocking.For(weight.Source, mode) is { } blocking ? FakeQuantize(input, blocking)
            : null;
        if (x is null) return backend.Linear(input, weight, bias).MoveToOuterDisposeScope();
        Tensor y = backend.Linear(x, weight, bias);
        return (y.dtype == input.dtype ? y : y.to(input.dtype)).MoveToOuterDisposeScope();
    }
}
