using Quanto.Nn;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>
/// The graph work shared by activation-aware scaling (AWQ) and SmoothQuant. TorchSharp keeps no graph, so it is
/// measured: (1) one pass groups the quantized linear layers that receive the same input tensor and gathers
/// per-input-channel statistics; (2) each producer candidate (LayerNorm or Linear of the right width) has its
/// output channels perturbed by random factors for one pass, and it feeds a group directly when the group's input
/// scales by exactly those factors (a ReLU in between qualifies, being positively homogeneous; a GELU does not);
/// (3) after folding a scale into a producer and its group, one more pass checks the model's float output is
/// unchanged (to 1e-4 relative), which also catches a producer whose output feeds something else too (a residual
/// sum in a post-LN transformer); if not, the fold is undone and the group is reported as not smoothed.
/// </summary>
internal sealed class Smoothing : IDisposable
{
    private const double DetectionTolerance = 1e-4;
    private const double OutputTolerance = 1e-4;
    private const int SampleRows = 512;

    private readonly ModuleProbe _probe;
    private readonly Func<Tensor> _pass;
    private readonly Tensor _baseline;

    private Smoothing(ModuleProbe probe, Func<Tensor> pass)
    {
        _probe = probe;
        _pass = pass;
        _baseline = probe.Run(pass);
    }

    /// <summary>Consumer groups, in the order the pass first reaches them.</summary>
    internal List<ConsumerGroup> Groups { get; } = [];

    /// <summary>Probes <paramref name="modules"/> and gathers the groups of <paramref name="consumers"/>.</summary>
    internal static Smoothing Start(IEnumerable<QModule> modules, Func<QModule, bool> consumers, Func<Tensor> pass)
    {
        ModuleProbe probe = ModuleProbe.Attach(modules);
        try
        {
            var smoothing = new Smoothing(probe, pass);
            smoothing.Gather(consumers);
            return smoothing;
        }
        catch
        {
            probe.Dispose();
            throw;
        }
    }

    private void Gather(Func<QModule, bool> isConsumer)
    {
        var groupOf = new Dictionary<QModule, ConsumerGroup>(ReferenceEqualityComparer.Instance);
        var byInput = new Dictionary<Tensor, ConsumerGroup>(ReferenceEqualityComparer.Instance);
        _probe.Run(_pass, (module, input) =>
        {
            if (module is not QLinear linear || !isConsumer(module)) return;
            if (!groupOf.TryGetValue(module, out ConsumerGroup? group))
            {
                // A layer seeing a tensor another layer saw in this pass joins that layer's group.
                group = byInput.TryGetValue(input, out ConsumerGroup? shared) && shared.Features == linear.in_features
                    ? shared
                    : new ConsumerGroup(linear.in_features);
                if (!ReferenceEquals(group, shared)) Groups.Add(group);
                group.Consumers.Add(linear);
                groupOf[module] = group;
            }
            byInput.TryAdd(input, group);
            if (ReferenceEquals(group.Consumers[0], module)) group.Observe(input);
        }).Dispose();
    }

    /// <summary>Finds, for each group, the producer that feeds it directly (null where none does).</summary>
    internal void FindProducers(IEnumerable<ChannelProducer> candidates)
    {
        var widths = Groups.Select(g => g.Features).ToHashSet();
        using var generator = new Generator(20250101);
        foreach (ChannelProducer candidate in candidates.Where(c => widths.Contains(c.Channels)))
        {
            using Tensor factors = rand([candidate.Channels], generator: generator).mul_(1.5).add_(0.5);
            var snapshot = candidate.Snapshot();
            var seen = new Dictionary<ConsumerGroup, Tensor>(ReferenceEqualityComparer.Instance);
            try
            {
                candidate.Scale(factors);
                _probe.Run(_pass, (module, input) =>
                {
                    ConsumerGroup? group = Groups.FirstOrDefault(g => ReferenceEquals(g.Consumers[0], module));
                    if (group is { Producer: null } && group.Features == candidate.Channels && !seen.ContainsKey(group))
                        seen[group] = input.detach().clone().DetachFromDisposeScope();
                }).Dispose();
            }
            finally
            {
                candidate.Restore(snapshot);
            }
            foreach ((ConsumerGroup group, Tensor input) in seen)
            {
                using (input)
                {
                    bool scaled = input.shape.SequenceEqual(group.FirstInput!.shape) &&
                                  ScalesBy(group.FirstInput, input, factors);
                    if (scaled) group.Producer = candidate;
                }
            }
        }
    }

    /// <summary>Folds <paramref name="scale"/> (per input channel) into the group and its producer, checks the
    /// model's float output, and undoes it if the output moved.</summary>
    /// <returns>Null when folded, else why not.</returns>
    internal string? Fold(ConsumerGroup group, Tensor scale)
    {
        ChannelProducer producer = group.Producer!;
        var snapshots = group.Consumers
            .Select(c => (c, Snapshot: c.FloatWeight!.detach().clone().DetachFromDisposeScope())).ToList();
        var producerSnapshot = producer.Snapshot();
        using (var noGrad = no_grad())
        {
            using Tensor inverse = scale.reciprocal();
            producer.Scale(inverse);
            foreach (QLinear consumer in group.Consumers)
                consumer.FloatWeight!.mul_(scale.to(consumer.FloatWeight.dtype).unsqueeze(0));
        }
        using Tensor output = _probe.Run(_pass);
        double moved = RelativeDifference(_baseline, output);
        if (moved <= OutputTolerance)
        {
            producerSnapshot.Weight.Dispose();
            producerSnapshot.Bias?.Dispose();
            foreach ((QLinear _, Tensor snapshot) in snapshots) snapshot.Dispose();
            return null;
        }
        producer.Restore(producerSnapshot);
        using (var noGrad = no_grad())
        {
            foreach ((QLinear consumer, Tensor snapshot) in snapshots)
            {
                consumer.FloatWeight!.copy_(snapshot);
                snapshot.Dispose();
            }
        }
        return $"'{producer.Path}' feeds these layers but also other operations (the float output moved by " +
               $"{moved:E1} when the scale was folded into it), so the scale cannot be folded there";
    }

    private static bool ScalesBy(Tensor original, Tensor perturbed, Tensor factors)
    {
        using var scope = NewDisposeScope();
        Tensor expected = original.mul(factors.to(original.dtype));
        return RelativeDifference(expected, perturbed) <= DetectionTolerance;
    }

    private static double RelativeDifference(Tensor expected, Tensor actual)
    {
        using var scope = NewDisposeScope();
        if (!expected.shape.SequenceEqual(actual.shape)) return double.PositiveInfinity;
        Tensor e = expected.to(ScalarType.Float64), a = actual.to(ScalarType.Float64);
        double scale = e.abs().max().item<double>();
        double difference = e.sub(a).abs().max().item<double>();
        return scale > 0 ? difference / scale : difference;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _probe.Dispose();
        _baseline.Dispose();
        foreach (ConsumerGroup group in Groups) group.Dispose();
    }

    /// <summary>Quantized linear layers that receive the same input, with the statistics of that input.</summary>
    internal sealed class ConsumerGroup(long features) : IDisposable
    {
        private Tensor? _sumAbs;
        private long _rows;
        private readonly List<Tensor> _sample = [];
        private long _sampleRows;

        /// <summary>Input features.</summary>
        internal long Features { get; } = features;

        /// <summary>The layers, in the order they first saw the input.</summary>
        internal List<QLinear> Consumers { get; } = [];

        /// <summary>The producer that feeds the input directly, once found.</summary>
        internal ChannelProducer? Producer { get; set; }

        /// <summary>The first batch's input, for producer detection.</summary>
        internal Tensor? FirstInput { get; private set; }

        /// <summary>max |x| per input channel over every row.</summary>
        internal Tensor? MaxAbs { get; private set; }

        /// <summary>mean |x| per input channel.</summary>
        internal Tensor MeanAbs => _sumAbs!.div(_rows);

        /// <summary>Up to 512 input rows (the first seen), for error searches.</summary>
        internal Tensor Sample => cat(_sample, 0);

        /// <summary>Paths of the consumers, for reports.</summary>
        internal IReadOnlyList<string> Paths => Consumers.Select(c => c.Path).ToList();

        internal void Observe(Tensor input)
        {
            using var scope = NewDisposeScope();
            Tensor rows = input.detach().reshape(-1, Features).to(ScalarType.Float32);
            Tensor abs = rows.abs();
            Tensor max = abs.amax([0]), sum = abs.sum([0]);
            if (FirstInput is null)
            {
                FirstInput = input.detach().clone().DetachFromDisposeScope();
                MaxAbs = max.DetachFromDisposeScope();
                _sumAbs = sum.DetachFromDisposeScope();
            }
            else
            {
                MaxAbs!.copy_(MaxAbs.maximum(max));
                _sumAbs!.add_(sum);
            }
            _rows += rows.shape[0];
            if (_sampleRows < SampleRows)
            {
                long take = Math.Min(SampleRows - _sampleRows, rows.shape[0]);
                _sample.Add(rows.narrow(0, 0, take).clone().DetachFromDisposeScope());
                _sampleRows += take;
            }
        }

        public void Dispose()
        {
            FirstInput?.Dispose();
            MaxAbs?.Dispose();
            _sumAbs?.Dispose();
            foreach (Tensor t in _sample) t.Dispose();
        }
    }
}
