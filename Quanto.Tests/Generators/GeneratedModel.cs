using Quanto.Nn;
using Quanto.Quantization;
using static TorchSharp.torch;

namespace Quanto.Tests.Generators.Samples;

/// <summary>The generated members every sample model has, so that tests drive any of them with typed calls. The
/// generated code implements it; the samples only declare it, here, outside Samples/ so that the in-memory generator
/// runs (which read Samples/) do not see it.</summary>
internal interface IGeneratedModel
{
    bool IsQuantized { get; }

    void Quantize(Optimizer? optimizer = null);

    void Quantize(QType? weights, QType? activations = null, int? groupSize = null, Optimizer? optimizer = null);

    Calibration Calibrate(double momentum = 0.9, Observer? observer = null, bool streamline = true);

    void Freeze();

    IEnumerable<QModule> QuantizedModules();

    Tensor ForwardQuantized(Tensor x);

    void SaveQuantized(string path);

    void LoadQuantized(string path);
}

public partial class Mlp : IGeneratedModel;

public partial class Cnn : IGeneratedModel;

public partial class ResidualStack : IGeneratedModel;

public partial class Block : IGeneratedModel;

public partial class Encoder : IGeneratedModel;

public partial class BlockList : IGeneratedModel;
