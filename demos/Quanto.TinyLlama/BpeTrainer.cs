namespace Quanto.TinyLlama;

/// <summary>
/// Learns a small byte-pair-encoding vocabulary the way SentencePiece's BPE does: words (with the word-start marker)
/// start as characters, and the most frequent adjacent pair is merged again and again. The merged pieces get
/// decreasing scores, so a SentencePiece BPE tokenizer applies them in the order they were learned.
/// </summary>
internal static class BpeTrainer
{
    /// <summary>Pieces (characters, then merges) for a vocabulary of <paramref name="size"/> entries (including
    /// the three special pieces SentencePieceModel adds).</summary>
    internal static List<(string Piece, float Score)> Train(IEnumerable<string> texts, int size)
    {
        var words = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string text in texts)
        {
            foreach (string word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                string marked = SentencePieceModel.WordStart + word;
                words[marked] = words.GetValueOrDefault(marked) + 1;
            }
        }
        // Characters seen at least twice; rarer ones become <unk>.
        var characters = new Dictionary<char, int>();
        foreach ((string word, int count) in words)
            foreach (char c in word) characters[c] = characters.GetValueOrDefault(c) + count;
        var pieces = characters.Where(p => p.Value >= 2).OrderByDescending(p => p.Value).ThenBy(p => p.Key)
            .Select((p, i) => (p.Key.ToString(), -1000f - i)).ToList();
        var known = pieces.Select(p => p.Item1).ToHashSet(StringComparer.Ordinal);

        var symbols = words.Select(w => (Parts: w.Key.Select(c => c.ToString()).ToList(), Count: w.Value)).ToList();
        int merges = size - 3 - pieces.Count;
        for (int m = 0; m < merges; m++)
        {
            var pairs = new Dictionary<(string, string), int>();
            foreach ((List<string> parts, int count) in symbols)
            {
                for (int i = 0; i + 1 < parts.Count; i++)
                {
                    if (!known.Contains(parts[i]) || !known.Contains(parts[i + 1])) continue;
                    pairs[(parts[i], parts[i + 1])] = pairs.GetValueOrDefault((parts[i], parts[i + 1])) + count;
                }
            }
            if (pairs.Count == 0) break;
            ((string a, string b), int best) = pairs.OrderByDescending(p => p.Value)
                .ThenBy(p => p.Key.Item1, StringComparer.Ordinal).ThenBy(p => p.Key.Item2, StringComparer.Ordinal)
                .First();
            if (best < 2) break;
            string merged = a + b;
            pieces.Add((merged, -m));
            known.Add(merged);
            foreach ((List<string> parts, int _) in symbols)
            {
                for (int i = 0; i + 1 < parts.Count; i++)
                {
                    if (parts[i] != a || parts[i + 1] != b) continue;
                    parts[i] = merged;
                    parts.RemoveAt(i + 1);
                }
            }
        }
        return pieces;
    }
}
