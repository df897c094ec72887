using System.Diagnostics;
using Quanto.Quantization;
using Quanto.Tensors;
using static TorchSharp.torch;

namespace Quanto.Demo;

/// <summary>One 4096 x 4096 float layer quantized with every qtype: bytes, accuracy and time (`-- --layer`).</summary>
internal static class LayerTable
{
    public static void Run(bool withHqq)
    {
        // Quantizes one 4096 x 4096 float layer (random normal, fixed seed) with every qtype and prints what it costs and
        // what it keeps: bytes and compression, cosine similarity and SNR against the float weight, and quantization time.
        const int Size = 4096;
        Console.WriteLine($"Quanto.NET demo: one {Size} x {Size} fp32 layer (randn, seed 0), quantized with every qtype");
        Console.WriteLine($"CPU: {Environment.ProcessorCount} logical cores; libtorch threads: {get_num_threads()}");
        Console.WriteLine();

        using var generator = new Generator(0);
        using Tensor weight = randn([Size, Size], generator: generator);
        long floatBytes = weight.NumberOfElements * sizeof(float);

        var rows = new List<(string Name, QType QType, Optimizer? Optimizer)>();
        foreach (QType qtype in QTypes.All) rows.Add((qtype.QuantoName(), qtype, null));
        if (withHqq)
        {
            // HQQ iterates up to 20 times over the weight: about a minute on 2 cores, so it is opt-in.
            rows.Add(("qint4 (hqq)", QType.QInt4, new HqqOptimizer()));
            rows.Add(("qint2 (hqq)", QType.QInt2, new HqqOptimizer()));
        }

        Console.WriteLine($"{"qtype",-18} {"group",6} {"bytes",12} {"vs fp32",8} {"1 - cos",10} {"SNR dB",7} {"quantize ms",12}");
        Console.WriteLine($"{"fp32",-18} {"-",6} {floatBytes,12:N0} {"1.00x",8} {"0",10} {"inf",7} {"-",12}");
        foreach ((string name, QType qtype, Optimizer? optimizer) in rows)
        {
            // Warm-up on a small weight so the timing excludes JIT and first-call costs.
            using (Tensor small = randn(64, 256)) WeightQuantizer.Quantize(small, qtype, optimizer: optimizer).Dispose();
            var clock = Stopwatch.StartNew();
            using QuantizedWeight q = WeightQuantizer.Quantize(weight, qtype, optimizer: optimizer);
            double ms = clock.Elapsed.TotalMilliseconds;
            using var scope = NewDisposeScope();
            Tensor d = q.Dequantize().to(ScalarType.Float64);
            Tensor w = weight.to(ScalarType.Float64);
            double cosine = w.mul(d).sum().item<double>() / Math.Sqrt(w.square().sum().item<double>() * d.square().sum().item<double>());
            double snr = 10 * Math.Log10(w.square().sum().item<double>() / w.sub(d).square().sum().item<double>());
            string group = q is WeightQBitsTensor bits ? bits.GroupSize.ToString() : "-";
            Console.WriteLine(
                $"{name,-18} {group,6} {q.ByteSize,12:N0} {(double)floatBytes / q.ByteSize,7:F2}x {1 - cosine,10:E2} {snr,7:F1} {ms,12:F1}");
        }
        Console.WriteLine();
        Console.WriteLine("bytes: data + scales (+ shifts), exactly as stored; 1 - cos and SNR against the fp32 weight.");
        if (!withHqq) Console.WriteLine("Add `-- --layer --hqq` to compare the HQQ optimizer's rows (about a minute more).");
    }
}
