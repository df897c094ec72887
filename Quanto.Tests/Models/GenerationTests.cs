using NUnit.Framework;
using Quanto.Models.Generation;
using Quanto.Models.Llama;
using Quanto.Tests.TestSupport;
using static TorchSharp.torch;

namespace Quanto.Tests.Models;

public sealed class GenerationTests : TempFolderTests
{
    private Llama Model()
    {
        HfFiles.Write(Folder, TinyLlama.Config(), TinyLlama.Weights());
        return Llama.FromHuggingFace(Folder);
    }

    [Test]
    public void GreedyEqualsArgmaxOfFullRecomputationEachStep()
    {
        using Llama model = Model();
        long[] prompt = [5, 9, 17, 33];
        var options = new GenerationOptions { MaxNewTokens = 10, StopTokens = [] };

        GenerationResult result = model.Generate(prompt, options);

        var sequence = prompt.ToList();
        using var noGrad = no_grad();
        for (int i = 0; i < 10; i++)
        {
            using Tensor logits = model.forward(tensor(sequence.ToArray()).unsqueeze(0), null);
            sequence.Add(logits[0, -1].argmax().item<long>());
        }
        Assert.That(result.Tokens, Is.EqualTo(sequence.Skip(prompt.Length).ToArray()));
        Assert.That(result.Reason, Is.EqualTo(StopReason.MaxTokens));
    }

    [Test]
    public void StopTokenEndsGenerationAndIsIncluded()
    {
        using Llama model = Model();
        long[] prompt = [5, 9, 17, 33];
        IReadOnlyList<long> free = model.Generate(prompt, new GenerationOptions { MaxNewTokens = 6, StopTokens = [] })
            .Tokens;
        long stop = free[3];
        int first = free.ToList().IndexOf(stop);

        GenerationResult result = model.Generate(prompt, new GenerationOptions { MaxNewTokens = 6, StopTokens = [stop] });
        Assert.That(result.Tokens, Is.EqualTo(free.Take(first + 1).ToArray()));
        Assert.That(result.Reason, Is.EqualTo(StopReason.StopToken));
    }

    [Test]
    public async Task StreamingCallbackAndAsyncEnumerableSeeTheSameTokens()
    {
        using Llama model = Model();
        long[] prompt = [3, 4];
        var options = new GenerationOptions { MaxNewTokens = 8, Temperature = 0.9, TopK = 20, TopP = 0.9, Seed = 7 };
        var streamed = new List<long>();
        GenerationResult result = model.Generate(prompt, options, streamed.Add);
        var asynchronous = new List<long>();
        await foreach (long token in model.GenerateAsync(prompt, options)) asynchronous.Add(token);

        Assert.That(streamed, Is.EqualTo(result.Tokens));
        Assert.That(asynchronous, Is.EqualTo(result.Tokens), "same seed, same tokens");
    }

    [Test]
    public void CancellationStopsBeforeTheNextPass()
    {
        using Llama model = Model();
        using var cancellation = new CancellationTokenSource();
        var seen = new List<long>();
        Assert.Throws<OperationCanceledException>(() => model.Generate([3, 4], new GenerationOptions { MaxNewTokens = 20 },
            token =>
            {
                seen.Add(token);
                if (seen.Count == 2) cancellation.Cancel();
            }, cancellation.Token));
        Assert.That(seen, Has.Count.EqualTo(2));
    }

    [Test]
    public void ContextFullEndsGeneration()
    {
        using Llama model = Model();
        GenerationResult result = model.Generate(Enumerable.Range(3, 60).Select(i => (long)i).ToArray(),
            new GenerationOptions { MaxNewTokens = 10, StopTokens = [] });
        Assert.That(result.Tokens, Has.Count.EqualTo(TinyLlama.Positions - 60 + 1));
        Assert.That(result.Reason, Is.EqualTo(StopReason.ContextFull));
    }

    [Test]
    public void SamplerDistributionIsTemperatureThenTopKThenTopP()
    {
        float[] logits = [1f, 4f, 2f, 3f, 0f];
        var sampler = new TokenSampler(new GenerationOptions { Temperature = 2, TopK = 3, TopP = 0.7 });
        // Hand computation: logits / 2 = [0.5, 2, 1, 1.5, 0]; top-3 = tokens 1, 3, 2 with weights e^2, e^1.5, e^1.
        double z = Math.Exp(2) + Math.Exp(1.5) + Math.Exp(1);
        double p1 = Math.Exp(2) / z, p3 = Math.Exp(1.5) / z; // 0.506, 0.307: token 3 is kept (0.506 < 0.7), 2 is not
        Assert.That(p1, Is.LessThan(0.7));
        Assert.That(p1 + p3, Is.GreaterThan(0.7));
        double[] expected = [0, p1 / (p1 + p3), 0, p3 / (p1 + p3), 0];

        Assert.That(sampler.Distribution(logits), Is.EqualTo(expected).Within(1e-12));
    }

    [Test]
    public void SamplerDrawsFollowTheDistribution()
    {
        float[] logits = [0f, 1f, 2f];
        var sampler = new TokenSampler(new GenerationOptions { Temperature = 1, Seed = 11 });
        var counts = new int[3];
        for (int i = 0; i < 20000; i++) counts[sampler.Next(logits)]++;
        double z = 1 + Math.E + Math.Exp(2);
        // 20,000 draws: each frequency within 0.015 of its probability (> 4 standard deviations).
        Assert.That(counts[0] / 20000.0, Is.EqualTo(1 / z).Within(0.015));
        Assert.That(counts[1] / 20000.0, Is.EqualTo(Math.E / z).Within(0.015));
        Assert.That(counts[2] / 20000.0, Is.EqualTo(Math.Exp(2) / z).Within(0.015));
        Assert.That(new TokenSampler(new GenerationOptions()).Next(logits), Is.EqualTo(2), "temperature 0 is greedy");
    }
}
