using Microsoft.ML.OnnxRuntime;

namespace Quanto.Demo.MiniLm;

/// <summary>
/// The reference and the peer: ONNX Runtime on the package's own fp32 ONNX model, as a .NET application runs
/// all-MiniLM-L6-v2 today (the SentenceTransformers packages do), with all graph optimisations and a fixed number of
/// intra-op threads. Sentence embeddings are the mean of the last hidden states over the attention mask, L2-normalised
/// (sentence-transformers' pooling for this model).
/// </summary>
internal sealed class OrtEncoder : ISentenceEncoder, IDisposable
{
    private const string LastHiddenState = "last_hidden_state";
    private readonly InferenceSession _session;
    private readonly RunOptions _run = new();

    /// <param name="onnx">The model's bytes.</param>
    /// <param name="threads">Intra-op threads (the demo uses as many as the machine has cores, 2 here).</param>
    public OrtEncoder(byte[] onnx, int threads)
    {
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        _session = new InferenceSession(onnx, options);
        Threads = threads;
    }

    public string Name => MiniLmDemo.OrtName;

    /// <summary>Intra-op threads the session runs with.</summary>
    public int Threads { get; }

    /// <summary>Normalised sentence embeddings, [Count, hidden] row-major.</summary>
    public float[] Embed(TokenBatch batch)
    {
        long[] shape = [batch.Count, batch.Length];
        using OrtValue ids = OrtValue.CreateTensorValueFromMemory(batch.Ids, shape);
        using OrtValue mask = OrtValue.CreateTensorValueFromMemory(batch.Mask, shape);
        using OrtValue types = OrtValue.CreateTensorValueFromMemory(batch.TypeIds, shape);
        var inputs = new Dictionary<string, OrtValue>
        {
            ["input_ids"] = ids,
            ["attention_mask"] = mask,
            ["token_type_ids"] = types,
        };
        using IDisposableReadOnlyCollection<OrtValue> outputs = _session.Run(_run, inputs, [LastHiddenState]);
        ReadOnlySpan<float> hidden = outputs[0].GetTensorDataAsSpan<float>();
        return MeanPoolNormalised(hidden, batch);
    }

    /// <summary>sentence-transformers' mean pooling + L2 normalisation, on [Count, Length, hidden] states.</summary>
    private static float[] MeanPoolNormalised(ReadOnlySpan<float> hidden, TokenBatch batch)
    {
        int width = hidden.Length / (batch.Count * batch.Length);
        var pooled = new float[batch.Count * width];
        for (int i = 0; i < batch.Count; i++)
        {
            Span<float> row = pooled.AsSpan(i * width, width);
            long count = 0;
            for (int t = 0; t < batch.Length; t++)
            {
                if (batch.Mask[(i * batch.Length) + t] == 0) continue;
                count++;
                ReadOnlySpan<float> state = hidden.Slice(((i * batch.Length) + t) * width, width);
                for (int k = 0; k < width; k++) row[k] += state[k];
            }
            double norm = 0;
            for (int k = 0; k < width; k++)
            {
                row[k] /= count;
                norm += (double)row[k] * row[k];
            }
            // sentence-transformers' F.normalize divides by max(norm, 1e-12).
            float scale = (float)(1 / Math.Max(Math.Sqrt(norm), 1e-12));
            for (int k = 0; k < width; k++) row[k] *= scale;
        }
        return pooled;
    }

    public void Dispose()
    {
        _session.Dispose();
        _run.Dispose();
    }
}
