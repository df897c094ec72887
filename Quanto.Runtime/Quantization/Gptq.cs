using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Quantization;

/// <summary>Settings of <see cref="Gptq"/>.</summary>
public sealed record GptqOptions
{
    /// <summary>Added to the Hessian's diagonal, as a fraction of its mean (GPTQ's percdamp, 0.01). Larger values
    /// trust the calibration data less; on a Cholesky failure the damping is raised tenfold, up to three times.
    /// </summary>
    public double Damping { get; init; } = 0.01;

    /// <summary>Columns updated together before the rest of the matrix catches up (128); with group-wise scales found
    /// as GPTQ goes, rounded up to a multiple of the group size so a group's scale comes from fully updated columns.
    /// </summary>
    public int BlockSize { get; init; } = 128;

    /// <summary>Quantize columns in order of decreasing Hessian diagonal (GPTQ's act-order / desc_act), which
    /// helps most at 2 bits. Group scales then come from the float weight before any update (AutoGPTQ's
    /// static_groups), so groups stay contiguous runs of input features: the optimum-quanto layout.</summary>
    public bool ActOrder { get; init; }

    /// <summary>Finds each group's scale and shift for 2/4-bit weights (default <see cref="HqqOptimizer"/>, which
    /// refines the shift of each group, as <see cref="Optimizer.DefaultFor"/>; <see cref="MaxOptimizer"/> for
    /// optimum-quanto's min/max ranges, <see cref="MseOptimizer"/> for searched clipping).</summary>
    public AffineOptimizer? GroupOptimizer { get; init; }

    /// <summary>
    /// Asymmetric calibration (GPTAQ, Li et al. 2025), for <see cref="Quantizer.Gptq(IEnumerable{Nn.QModule},
    /// Func{Tensor}, GptqOptions?, IProgress{QuantizationProgress}?)"/>: each layer aims at the float model's output
    /// of that layer (W x_float) from the inputs it really gets once the layers before it are quantized (x_q),
    /// instead of at W x_q, so it also makes up for the error upstream. Minimising ||W X_f - Ŵ X_q||² is GPTQ on the
    /// least-squares weight W* = W + W ΔC (H + λI)⁻¹, ΔC = Σ (x_f - x_q) x_qᵀ, H = Σ x_q x_qᵀ (λ the damping). Costs
    /// a second calibration pass per layer and one layer's float inputs in memory (calibration rows x in_features
    /// float32). Off by default (plain GPTQ, as the paper and optimum-quanto's ecosystem run it).
    /// </summary>
    public bool Asymmetric { get; init; }
}

/// <summary>
/// GPTQ (Frantar et al., 2022): quantizes a weight one input column at a time and spreads each column's rounding
/// error over the columns not yet quantized, weighted by the inverse Hessian of the layer's inputs (H = Σ x xᵀ over
/// calibration inputs), so the layer's output on those inputs changes as little as possible. Block-wise updates
/// with a Cholesky factor of H⁻¹ as in the paper. The result is an ordinary quantized weight in optimum-quanto's
/// layout (int2/int4: group-wise affine with the usual group rule; int8: symmetric per channel), so files made from
/// it load anywhere.
/// </summary>
public static class Gptq
{
    /// <summary>Quantizes <paramref name="weight"/> against the Hessian of its inputs.</summary>
    /// <param name="weight">Float weight (out, ...), rows of d = numel / out input features (a convolution's
    /// in x kh x kw, in the order of its unfolded patches).</param>
    /// <param name="hessian">(d, d) Σ x xᵀ of the layer's inputs (any positive multiple; see
    /// <see cref="GptqHessian"/>).</param>
    /// <param name="qtype">qint2, qint4 or qint8.</param>
    /// <param name="groupSize">Wanted group size for 2/4-bit weights (optimum-quanto's fallback applies).</param>
    /// <param name="options">Damping, block size, act-order, group optimizer.</param>
    /// <param name="progress">Called with the fraction of columns done, once per block.</param>
    /// <exception cref="ArgumentException">A float8 qtype, a bad weight, or a Hessian of the wrong shape or with
    /// NaN/Inf.</exception>
    /// <exception cref="InvalidOperationException">The damped Hessian is still not positive definite.</exception>
    public static QuantizedWeight Quantize(Tensor weight, Tensor hessian, QType qtype, int? groupSize = null,
        GptqOptions? options = null, Action<double>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(hessian);
        QTypeInfo info = qtype.Info();
        if (info.IsFloat)
        {
            throw new ArgumentException(
                $"GPTQ covers qint2, qint4 and qint8; {info.Name} weights are cast, not rounded to a grid.",
                nameof(qtype));
        }
        WeightChecks.Check(weight, qtype);
        if (groupSize is int requested) WeightChecks.CheckGroupSize(requested);
        options ??= new GptqOptions();
        long rows = weight.shape[0], d = weight.NumberOfElements / rows;
        if (hessian.dim() != 2 || hessian.shape[0] != d || hessian.shape[1] != d)
        {
            throw new ArgumentException(
                $"The Hessian of a weight with rows of {d} inputs must be [{d}, {d}]; got " +
                $"{QuantizedWeight.FormatShape(hessian.shape)}.", nameof(hessian));
        }
        int group = info.IsPacked ? GroupSize.Resolve(d, groupSize ?? GroupSize.Default) : checked((int)d);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var state = new State(weight, hessian, info, group, options);
        state.Run(progress);
        return state.Build(weight);
    }

    /// <summary>The working state of one weight: W transposed (one input column per row, in processing order), the
    /// upper Cholesky factor of H⁻¹, the group parameters and the codes.</summary>
    private sealed class State
    {
        private readonly QTypeInfo _info;
        private readonly int _group;
        private readonly int _block;
        private readonly long _rows, _d;
        private readonly ScalarType _dtype;
        private readonly Tensor _wt;
        private readonly Tensor _codes;
        private readonly Tensor? _perm;
        private readonly long[] _column;
        private readonly Tensor _u;
        private readonly float[] _uDiagonal;
        private readonly Tensor _scale, _shift; // (groups per row, rows), float32, rounded to the weight dtype
        private readonly bool _dynamicGroups;
        private readonly AffineOptimizer _optimizer;

        public State(Tensor weight, Tensor hessian, QTypeInfo info, int group, GptqOptions options)
        {
            _info = info;
            _group = group;
            _dtype = weight.dtype;
            _rows = weight.shape[0];
            _d = weight.NumberOfElements / _rows;
            _optimizer = options.GroupOptimizer ?? Optimizer.DefaultAffine();
            Tensor w = weight.detach().reshape(_rows, _d).to(ScalarType.Float32, copy: true);
            Tensor h = hessian.detach().to(ScalarType.Float32, copy: true).to(w.device);
            if (!h.isfinite().all().item<bool>())
                throw new ArgumentException("The Hessian holds NaN or infinite values.", nameof(hessian));
            // Inputs that were always zero carry no information: their weights cannot matter, so quantize them as 0.
            Tensor dead = h.diagonal().eq(0);
            if (dead.any().item<bool>())
            {
                h.diagonal().masked_fill_(dead, 1);
                w.masked_fill_(dead.unsqueeze(0), 0);
            }
            _perm = options.ActOrder ? h.diagonal().argsort(descending: true) : null;
            _column = _perm is null
                ? Enumerable.Range(0, checked((int)_d)).Select(i => (long)i).ToArray()
                : _perm.cpu().data<long>().ToArray();
            _dynamicGroups = info.IsPacked && _perm is null && group < _d;
            // Dynamic groups are found at their first column from the block's up-to-date rows: blocks hold whole
            // groups. Static parameters leave the block size free.
            int block = Math.Max(1, options.BlockSize);
            _block = checked((int)Math.Min(_d, _dynamicGroups ? (block + group - 1) / group * group : block));
            (_scale, _shift) = StaticParameters(w);
            if (_perm is not null)
            {
                h = h.index_select(0, _perm).index_select(1, _perm);
                w = w.index_select(1, _perm);
            }
            _u = InverseCholeskyUpper(h, options.Damping);
            _uDiagonal = _u.diagonal().cpu().contiguous().data<float>().ToArray();
            _wt = w.t().contiguous();
            _codes = zeros([_d, _rows], ScalarType.Float32, w.device);
        }

        public void Run(Action<double>? progress)
        {
            for (long i1 = 0; i1 < _d; i1 += _block)
            {
                using var blockScope = NewDisposeScope();
                long count = Math.Min(_block, _d - i1), i2 = i1 + count;
                Tensor w1 = _wt.narrow(0, i1, count);
                Tensor err1 = empty([count, _rows], ScalarType.Float32, _wt.device);
                QuantizeBlock(w1, err1, i1, count);
                if (i2 < _d)
                    _wt.narrow(0, i2, _d - i2).addmm_(_u.narrow(0, i1, count).narrow(1, i2, _d - i2).t(), err1, 1, -1);
                progress?.Invoke((double)i2 / _d);
            }
        }

        /// <summary>Quantizes the block's columns one by one (rows of <paramref name="w1"/>, from column
        /// <paramref name="i1"/>), spreading each one's error over the block's later columns, and stores the scaled
        /// errors in <paramref name="err1"/> for the update of the columns after the block.</summary>
        /// <remarks>A column step is a dozen libtorch ops on vectors of one weight column (hundreds to thousands of
        /// floats). They run on one libtorch thread (<see cref="TorchThreads"/>): there they cost microseconds, where
        /// each would otherwise wake libtorch's OpenMP pool and wait for its slowest thread, which on a loaded machine
        /// made a 6-layer encoder's GPTQ take minutes instead of seconds. The block update after it is a large matmul
        /// and keeps the caller's setting.</remarks>
        private void QuantizeBlock(Tensor w1, Tensor err1, long i1, long count)
        {
            using var threads = new TorchThreads(1);
            for (long i = 0; i < count; i++)
            {
                long j = i1 + i;
                if (_dynamicGroups && _column[j] % _group == 0)
                    FindGroup(w1.narrow(0, i, _group), _column[j] / _group);
                Tensor w = w1[i];
                long k = _info.IsPacked ? _column[j] / _group : 0;
                Tensor dq = QuantizeColumn(w, k, _codes[j]);
                Tensor err = w.sub(dq).mul_(1 / _uDiagonal[j]);
                if (i + 1 < count)
                    w1.narrow(0, i + 1, count - i - 1).addr_(_u[j].narrow(0, j + 1, count - i - 1), err, 1, -1);
                err1[i].copy_(err);
            }
        }

        public QuantizedWeight Build(Tensor weight)
        {
            Tensor codes = _codes;
            if (_perm is not null) codes = codes.index_select(0, _perm.argsort());
            codes = codes.t().contiguous(); // (rows, d), original column order
            long groupsPerRow = _d / _group;
            Tensor scale = _scale.t().reshape(_rows * groupsPerRow, 1).to(_dtype);
            if (!_info.IsPacked)
            {
                long[] scaleShape = weight.shape.Select((s, i) => i == 0 ? s : 1L).ToArray();
                Tensor data = codes.to(ScalarType.Int8).reshape(weight.shape);
                return new WeightQBytesTensor(_info.QType, data.MoveToOuterDisposeScope(),
                    scale.reshape(scaleShape).MoveToOuterDisposeScope());
            }
            Tensor shift = _shift.t().reshape(_rows * groupsPerRow, 1).to(_dtype);
            int groups = checked((int)(_rows * groupsPerRow));
            using Tensor bytes = codes.to(ScalarType.Byte).cpu().contiguous();
            Tensor packed = empty([Packing.PackedRows(groups, _info.Bits), _group], ScalarType.Byte);
            Packing.Pack(bytes.bytes, groups, _group, _info.Bits, packed.bytes);
            if (weight.device.type != packed.device.type) packed = packed.to(weight.device);
            return new WeightQBitsTensor(_info.QType, weight.shape, _group, packed.MoveToOuterDisposeScope(),
                scale.MoveToOuterDisposeScope(), shift.MoveToOuterDisposeScope());
        }

        /// <summary>Group parameters that do not follow the updates: int8 per channel, per-channel 2/4-bit, and all
        /// groups under act-order; zeros (filled as the columns come) for dynamic groups.</summary>
        private (Tensor Scale, Tensor Shift) StaticParameters(Tensor w)
        {
            long groupsPerRow = _d / _group;
            Tensor scale = zeros([groupsPerRow, _rows], ScalarType.Float32, w.device);
            Tensor shift = zeros([groupsPerRow, _rows], ScalarType.Float32, w.device);
            if (_dynamicGroups) return (scale, shift);
            if (!_info.IsPacked)
            {
                Tensor s = new AbsmaxOptimizer().Optimize(w.to(_dtype), _info.QType, 0).to(ScalarType.Float32);
                scale.copy_(s.reshape(1, _rows));
                return (scale, shift);
            }
            using var scope = NewDisposeScope();
            Tensor grouped = w.to(_dtype).reshape(-1, _group);
            (Tensor gs, Tensor gh) = _optimizer.Optimize(grouped, _info.QType, ShiftMode.Float);
            scale.copy_(gs.to(ScalarType.Float32).reshape(_rows, groupsPerRow).t());
            shift.copy_(gh.to(ScalarType.Float32).reshape(_rows, groupsPerRow).t());
            return (scale, shift);
        }

        /// <summary>Scale and shift of group <paramref name="k"/> from its columns as updated so far.</summary>
        private void FindGroup(Tensor columns, long k)
        {
            using var scope = NewDisposeScope();
            (Tensor gs, Tensor gh) = _optimizer.Optimize(columns.t().to(_dtype), _info.QType, ShiftMode.Float);
            _scale[k].copy_(gs.to(ScalarType.Float32).flatten());
            _shift[k].copy_(gh.to(ScalarType.Float32).flatten());
        }

        /// <summary>Rounds one column to its group's grid (optimum-quanto's formulas), stores the codes and returns
        /// the dequantized column.</summary>
        private Tensor QuantizeColumn(Tensor w, long k, Tensor codes)
        {
            Tensor scale = _scale[k], shift = _shift[k];
            if (!_info.IsPacked)
            {
                Tensor q = w.div(scale).round_().clamp_(_info.QMin, _info.QMax);
                codes.copy_(q);
                return q.mul_(scale);
            }
            Tensor c = w.add(shift).div_(scale).round_().clamp_(0, _info.MaxCode);
            codes.copy_(c);
            return c.mul_(scale).sub_(shift);
        }
    }

    /// <summary>Upper triangular U with Uᵀ U = (H + λ·mean(diag H)·I)⁻¹, in float32; λ grows tenfold on failure.
    /// Factorised in float32 (twice as fast as float64 at d = 4096), retried in float64 if that fails.</summary>
    internal static Tensor InverseCholeskyUpper(Tensor h, double damping)
    {
        double mean = h.diagonal().to(ScalarType.Float64).mean().item<double>();
        double lambda = Math.Max(damping, 0);
        for (int attempt = 0; attempt < 4; attempt++, lambda = Math.Max(lambda * 10, 1e-4))
        {
            foreach (ScalarType precision in new[] { ScalarType.Float32, ScalarType.Float64 })
            {
                using var scope = NewDisposeScope();
                Tensor damped = h.to(precision, copy: true);
                damped.diagonal().add_(lambda * mean);
                (Tensor l, Tensor info) = linalg.cholesky_ex(damped);
                if (info.item<int>() != 0) continue;
                (Tensor li, Tensor info2) = linalg.cholesky_ex(cholesky_inverse(l));
                if (info2.item<int>() != 0) continue;
                Tensor u = li.t().to(ScalarType.Float32).contiguous();
                if (!u.isfinite().all().item<bool>()) continue;
                return u.MoveToOuterDisposeScope();
            }
        }
        throw new InvalidOperationException(
            $"GPTQ: the calibration inputs' Hessian ({h.shape[0]}x{h.shape[0]}) is not positive definite even with " +
            $"damping {lambda / 10:G3}. Calibrate on more (and more varied) inputs, or raise GptqOptions.Damping.");
    }
}
