using NUnit.Framework;
using static TorchSharp.torch;

namespace Quanto.Tests.TestSupport;

/// <summary>Independent reference math for tests: plain double-precision loops over copied values.</summary>
internal static class Reference
{
    public static double[] Values(Tensor t)
    {
        using Tensor f = t.detach().to(ScalarType.Float64).cpu().contiguous();
        return f.data<double>().ToArray();
    }

    /// <summary>1 - cos(a, b) over the flattened tensors.</summary>
    public static double CosineError(Tensor a, Tensor b)
    {
        double[] x = Values(a), y = Values(b);
        Assert.That(y, Has.Length.EqualTo(x.Length), "cosine of tensors of different sizes");
        double dot = 0, nx = 0, ny = 0;
        for (int i = 0; i < x.Length; i++)
        {
            dot += x[i] * y[i];
            nx += x[i] * x[i];
            ny += y[i] * y[i];
        }
        return 1 - dot / Math.Sqrt(nx * ny);
    }

    /// <summary>Signal-to-noise ratio in dB of <paramref name="approx"/> against <paramref name="exact"/>.</summary>
    public static double SnrDb(Tensor exact, Tensor approx)
    {
        double[] x = Values(exact), y = Values(approx);
        double signal = 0, noise = 0;
        for (int i = 0; i < x.Length; i++)
        {
            signal += x[i] * x[i];
            noise += (x[i] - y[i]) * (x[i] - y[i]);
        }
        return 10 * Math.Log10(signal / noise);
    }

    /// <summary>max |actual - expected| / max |expected|.</summary>
    public static double MaxRelativeError(Tensor actual, Tensor expected)
    {
        double[] a = Values(actual), e = Values(expected);
        Assert.That(a, Has.Length.EqualTo(e.Length), "relative error of tensors of different sizes");
        return a.Zip(e, (p, q) => Math.Abs(p - q)).Max() / e.Max(Math.Abs);
    }

    /// <summary>True when both tensors have the same shape and dtype and equal elements (bit for bit, barring
    /// NaN and signed zeros).</summary>
    public static bool BitEqual(Tensor a, Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape) || a.dtype != b.dtype) return false;
        using Tensor same = a.eq(b).all();
        return same.item<bool>();
    }

    public static double MeanAbsError(Tensor exact, Tensor approx)
    {
        double[] x = Values(exact), y = Values(approx);
        return x.Zip(y, (p, q) => Math.Abs(p - q)).Average();
    }

    public static Tensor Matrix(float[,] values)
    {
        int rows = values.GetLength(0), cols = values.GetLength(1);
        var flat = new float[rows * cols];
        Buffer.BlockCopy(values, 0, flat, 0, flat.Length * sizeof(float));
        return tensor(flat, [rows, cols]);
    }

    /// <summary>Standard-normal weights from a fixed seed.</summary>
    public static Tensor RandomNormal(long rows, long cols, long seed = 0, ScalarType dtype = ScalarType.Float32)
    {
        using var generator = new Generator((ulong)seed);
        return randn([rows, cols], generator: generator).to(dtype);
    }
}
