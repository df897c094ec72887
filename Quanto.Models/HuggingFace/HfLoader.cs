using Quanto.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace Quanto.Models.HuggingFace;

/// <summary>
/// The float load shared by the model classes: build the model on the meta device (shapes only), then replace
/// each parameter with the checkpoint's tensor in the requested dtype, so no float weight is ever allocated twice.
/// </summary>
internal static class HfLoader
{
    /// <summary>The meta device (no memory).</summary>
    internal static Device Meta { get; } = new(DeviceType.META);

    /// <summary>Builds and loads a model.</summary>
    internal static TModel Load<TModel>(string folder, LoadOptions? options, Func<Device, ScalarType, TModel> build,
        CheckpointNaming naming, out LoadReport report) where TModel : nn.Module
    {
        options ??= new LoadOptions();
        ScalarType dtype = options.DType ?? ScalarType.Float32;
        DTypes.Check(dtype);
        Device device = options.Device ?? CPU;
        using HfCheckpoint checkpoint = HfCheckpoint.Open(folder);
        TModel model = build(Meta, dtype);
        try
        {
            report = WeightLoader.Load(model, checkpoint, naming, dtype, device, options.Strict);
            if (model is ITiedWeights tied) tied.TieWeights();
            List<string> left = ParameterSlots.Unmaterialised(model);
            if (left.Count > 0)
                throw new QuantoFormatException(checkpoint.Source, $"never loaded: {string.Join(", ", left)}.");
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}

/// <summary>A model whose output projection shares the input embedding's weight once loaded.</summary>
internal interface ITiedWeights
{
    /// <summary>Points the tied parameters at one tensor (no-op when the config does not tie them).</summary>
    void TieWeights();
}
