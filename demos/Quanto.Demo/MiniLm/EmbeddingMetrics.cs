namespace Quanto.Demo.MiniLm;

/// <summary>
/// How closely one set of sentence embeddings follows a reference set, in the terms a semantic-search user cares
/// about: per-sentence cosine (mean and worst), whether each sentence's nearest neighbour in the corpus stays the
/// same, and how well the whole ranking of pairwise similarities is kept (Spearman's rho over every pair).
/// </summary>
/// <param name="MeanCosine">Mean cosine between each sentence's two embeddings.</param>
/// <param name="MinCosine">The smallest of those cosines.</param>
/// <param name="NeighbourAgreement">Fraction of sentences whose nearest other sentence is the same under both.</param>
/// <param name="Spearman">Spearman rank correlation of the n(n-1)/2 pairwise cosine similarities.</param>
internal sealed record EmbeddingMetrics(double MeanCosine, double MinCosine, double NeighbourAgreement,
    double Spearman)
{
    /// <summary>Compares <paramref name="candidate"/> with <paramref name="reference"/>, both [count, width]
    /// row-major.</summary>
    public static EmbeddingMetrics Compare(float[] reference, float[] candidate, int width)
    {
        if (reference.Length != candidate.Length || width <= 0 || reference.Length % width != 0)
        {
            throw new ArgumentException($"embeddings of {reference.Length} and {candidate.Length} values do not " +
                                        $"both hold whole rows of {width}");
        }
        int count = reference.Length / width;
        double[] a = Normalised(reference, width);
        double[] b = Normalised(candidate, width);
        var cosines = new double[count];
        for (int i = 0; i < count; i++) cosines[i] = Dot(a, i, b, i, width);
        double[] simA = Similarities(a, count, width);
        double[] simB = Similarities(b, count, width);
        int agree = 0;
        for (int i = 0; i < count; i++)
        {
            if (Nearest(simA, i, count) == Nearest(simB, i, count)) agree++;
        }
        return new EmbeddingMetrics(cosines.Average(), cosines.Min(), (double)agree / count,
            Pearson(Ranks(UpperTriangle(simA, count)), Ranks(UpperTriangle(simB, count))));
    }

    /// <summary>Ranks 1..n, ties sharing their mean rank (Spearman's convention).</summary>
    public static double[] Ranks(double[] values)
    {
        int[] order = Enumerable.Range(0, values.Length).ToArray();
        double[] keys = (double[])values.Clone();
        Array.Sort(keys, order);
        var ranks = new double[values.Length];
        for (int start = 0; start < keys.Length;)
        {
            int end = start;
            while (end + 1 < keys.Length && keys[end + 1] == keys[start]) end++;
            double rank = ((start + end) / 2.0) + 1;
            for (int k = start; k <= end; k++) ranks[order[k]] = rank;
            start = end + 1;
        }
        return ranks;
    }

    /// <summary>Pearson correlation of two equally long series.</summary>
    public static double Pearson(double[] x, double[] y)
    {
        double mx = x.Average(), my = y.Average();
        double sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < x.Length; i++)
        {
            sxy += (x[i] - mx) * (y[i] - my);
            sxx += (x[i] - mx) * (x[i] - mx);
            syy += (y[i] - my) * (y[i] - my);
        }
        return sxy / Math.Sqrt(sxx * syy);
    }

    private static double[] Normalised(float[] rows, int width)
    {
        var result = new double[rows.Length];
        for (int start = 0; start < rows.Length; start += width)
        {
            double norm = 0;
            for (int k = 0; k < width; k++) norm += (double)rows[start + k] * rows[start + k];
            double scale = 1 / Math.Max(Math.Sqrt(norm), 1e-12);
            for (int k = 0; k < width; k++) result[start + k] = rows[start + k] * scale;
        }
        return result;
    }

    /// <summary>The [count, count] cosine similarity matrix of unit rows.</summary>
    private static double[] Similarities(double[] rows, int count, int width)
    {
        var similarities = new double[count * count];
        for (int i = 0; i < count; i++)
        {
            for (int j = i; j < count; j++)
                similarities[(i * count) + j] = similarities[(j * count) + i] = Dot(rows, i, rows, j, width);
        }
        return similarities;
    }

    private static double[] UpperTriangle(double[] matrix, int count)
    {
        var values = new double[count * (count - 1) / 2];
        int at = 0;
        for (int i = 0; i < count; i++)
        {
            for (int j = i + 1; j < count; j++) values[at++] = matrix[(i * count) + j];
        }
        return values;
    }

    /// <summary>The sentence most similar to sentence <paramref name="i"/>, itself excluded (the lowest index on a
    /// tie).</summary>
    private static int Nearest(double[] similarities, int i, int count)
    {
        int best = -1;
        double bestSimilarity = double.NegativeInfinity;
        for (int j = 0; j < count; j++)
        {
            if (j != i && similarities[(i * count) + j] > bestSimilarity)
            {
                bestSimilarity = similarities[(i * count) + j];
                best = j;
            }
        }
        return best;
    }

    private static double Dot(double[] a, int i, double[] b, int j, int width)
    {
        ReadOnlySpan<double> x = a.AsSpan(i * width, width), y = b.AsSpan(j * width, width);
        return System.Numerics.Tensors.TensorPrimitives.Dot(x, y);
    }
}
