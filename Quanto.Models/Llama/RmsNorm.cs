using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Models.Llama;

/// <summary>
/// transformers' LlamaRMSNorm: x / sqrt(mean(x^2) + eps) computed in float32, cast back to the input dtype, times
/// the weight. A float module (as in optimum-quanto, norms are not quantized).
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly double _eps;

    /// <summary>A norm over the last dimension of size <paramref name="size"/>, weight initialised to 1.</summary>
    public RmsNorm(long size, double eps, Device? device = null, ScalarType? dtype = null) : base(nameof(RmsNorm))
    {
        _eps = eps;
        // Only in the registry (no field): RegisterComponents of an enclosing model would register a field too.
        var scale = new Parameter(ones(size, dtype: dtype ?? ScalarType.Float32, device: device));
        register_parameter(nameof(weight), scale);
    }

#pragma warning disable IDE1006 // TorchSharp naming: the parameter is "weight" in state dicts
    /// <summary>The scale (size,). Settable, as TorchSharp's own layers' parameters are.</summary>
    public Parameter weight
    {
        get => _internal_params[nameof(weight)];
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            _internal_params.Remove(nameof(weight)); // register_parameter refuses a name already taken
            register_parameter(nameof(weight), value);
        }
    }
#pragma warning restore IDE1006

    /// <inheritdoc />
    public override Tensor forward(Tensor hidden_states)
    {
        if (RowsNorm.Runs(hidden_states, weight)) return RowsNorm.Apply(hidden_states, weight, _eps);
        using var scope = NewDisposeScope();
        // float32 input skips the two casts (each a no-op that still costs a call per norm and token).
        bool single = hidden_states.dtype == ScalarType.Float32;
        Tensor x = single ? hidden_states : hidden_states.to(ScalarType.Float32);
        Tensor normed = x.mul(x.square().mean([-1], keepdim: true).add_(_eps).rsqrt_());
        return weight.mul(single ? normed : normed.to(hidden_states.dtype)).MoveToOuterDisposeScope();
    }
}
