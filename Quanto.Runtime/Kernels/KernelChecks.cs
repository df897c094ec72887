using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Kernels;

/// <summary>Argument checks every backend shares, so each reports shape errors the same clear way.</summary>
public static class KernelChecks
{
    /// <summary>Returns <paramref name="weight"/> as the backend's own prepared type, or throws a clear error.</summary>
    public static T Expect<T>(PreparedWeight weight, IQuantKernels backend) where T : PreparedWeight
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (weight is T typed && ReferenceEquals(weight.Backend, backend)) return typed;
        throw new ArgumentException(
            $"This weight was prepared by backend '{weight.Backend.Name}', not '{backend.Name}'; prepare it with the " +
            "backend that runs it.", nameof(weight));
    }

    /// <summary>Checks x (..., K) against W (N, K) and bias (N); throws naming the shapes.</summary>
    public static void CheckLinear(Tensor input, PreparedWeight weight, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() < 1 || input.size(-1) != weight.InFeatures)
        {
            throw new ArgumentException(
                $"Input shape {QuantizedWeight.FormatShape(input.shape)} does not match weight " +
                $"{QuantizedWeight.FormatShape(weight.Source.Shape)}: the last input dimension must be " +
                $"{weight.InFeatures}.", nameof(input));
        }
        if (bias is not null && (bias.dim() != 1 || bias.size(0) != weight.OutFeatures))
        {
            throw new ArgumentException(
                $"Bias shape {QuantizedWeight.FormatShape(bias.shape)} does not match the {weight.OutFeatures} " +
                "output features.", nameof(bias));
        }
    }

    /// <summary>Throws for an undefined <see cref="DynamicActivations"/> value.</summary>
    public static void CheckDynamic(DynamicActivations mode)
    {
        if (!Enum.IsDefined(mode))
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode,
                $"Not a DynamicActivations mode; use one of {string.Join(", ", Enum.GetNames<DynamicActivations>())}.");
        }
    }
}
