using System.Text.RegularExpressions;

namespace Quanto.Serialization;

/// <summary>
/// Crash-safe saves of several files into one folder (weights or shards, index, quantization map): after a kill at
/// any moment the folder holds the old set or the new one, never a mix. The protocol (<see cref="FileSetWriter"/>):
/// <list type="number">
/// <item>every file is written to a hidden temporary file beside its target and flushed to disk, its handle kept
/// open (which marks it as in use) until it is renamed;</item>
/// <item>a journal (<c>.quanto-commit.{generation}.json</c>) listing the renames and deletions is written the same
/// way and renamed into place: the commit point;</item>
/// <item>the renames and deletions are done, then the journal is removed.</item>
/// </list>
/// Whoever next saves or loads in the folder first finishes a committed journal (every step can be repeated) and
/// deletes temporary files no live process holds open (<see cref="Recover"/>), under the folder's lock.
/// Readers take no lock: a file set's records (<see cref="CheckpointFiles"/>) tell them when they opened files of
/// two saves while one was being renamed, and they open again (<see cref="ReadSet{T}"/>).
/// </summary>
internal static partial class FileSet
{
    /// <summary>Prefix of journal files.</summary>
    internal const string JournalPrefix = ".quanto-commit.";

    /// <summary>How often a reader opens again when the files it opened belong to different saves.</summary>
    private const int ReadAttempts = 8;

    /// <summary>Our temporary files: ".{target}.{32 hex digits}.tmp" (also what earlier versions' atomic writes left,
    /// and ".{base}.{hex}.shard.tmp" from earlier `quanto quantize` runs).</summary>
    [GeneratedRegex(@"^\..+\.[0-9a-f]{32}(\.shard)?\.tmp$")]
    internal static partial Regex TemporaryName();

    [GeneratedRegex(@"^\.quanto-commit\.[0-9a-f]{32}\.json$")]
    private static partial Regex JournalName();

    /// <summary>A new id (32 lowercase hex digits) for a save or a temporary file.</summary>
    internal static string NewId() => Guid.NewGuid().ToString("N");

    /// <summary>The hidden temporary name for a target.</summary>
    internal static string TemporaryFor(string target) => $".{target}.{NewId()}.tmp";

    /// <summary>True when the folder holds a journal or a temporary file of ours (a cheap listing).</summary>
    internal static bool NeedsRecovery(string folder) =>
        Directory.EnumerateFiles(folder, ".*").Select(Path.GetFileName).OfType<string>()
            .Any(n => JournalName().IsMatch(n) || TemporaryName().IsMatch(n));

    /// <summary>
    /// Finishes or removes what interrupted saves left, if no save is running (the folder's lock is free); a
    /// running save finishes its own journal.
    /// </summary>
    /// <exception cref="QuantoFormatException">See <see cref="Recover"/>; or a committed journal waits in a folder
    /// this process cannot write.</exception>
    internal static void TryRecover(string folder)
    {
        if (!NeedsRecovery(folder)) return;
        FolderLock? held;
        try
        {
            held = FolderLock.TryExclusive(folder);
        }
        catch (UnauthorizedAccessException e)
        {
            bool journal = Directory.EnumerateFiles(folder, JournalPrefix + "*")
                .Any(p => JournalName().IsMatch(Path.GetFileName(p)));
            if (journal)
            {
                throw new QuantoFormatException(folder,
                    "a save into this folder was interrupted after it committed, and its files cannot be put in " +
                    "place without write access; open the checkpoint once with write access to the folder.", e);
            }
            return; // only stale temporary files: they change nothing that is read
        }
        using (held)
        {
            if (held is not null) Recover(folder);
        }
    }

    /// <summary>
    /// Finishes committed journals (roll forward) and deletes temporary files of ours that no live process holds
    /// open (a single-file save holds its own open while it writes). The caller holds the folder's lock, so no other
    /// save commits meanwhile.
    /// </summary>
    /// <exception cref="QuantoFormatException">A journal is unreadable, names files it cannot have written, or
    /// names a temporary file that is gone.</exception>
    internal static void Recover(string folder)
    {
        List<string> hidden = Directory.EnumerateFiles(folder, ".*").ToList();
        foreach (string journal in hidden.Where(p => JournalName().IsMatch(Path.GetFileName(p))).Order())
        {
            Apply(folder, Journal.Read(journal));
            Delete(journal);
        }
        foreach (string stale in hidden.Where(p => TemporaryName().IsMatch(Path.GetFileName(p))))
        {
            try
            {
                if (File.Exists(stale) && !FolderLock.IsHeld(stale)) File.Delete(stale);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Best effort: a stale temporary file changes nothing that is read.
            }
        }
    }

    /// <summary>
    /// Opens the files of a checkpoint: finishes or removes what interrupted saves left, runs
    /// <paramref name="open"/>, and asks <paramref name="mixed"/> whether the files opened belong to one save. While
    /// another process saves into the folder, a mix (or a file that vanished between the index and its shards) is
    /// that save renaming its files: the open is retried a few times. Otherwise the files are what they are.
    /// </summary>
    /// <exception cref="QuantoFormatException">The files are a mix of saves (the message says which).</exception>
    internal static T ReadSet<T>(string path, Func<T> open, Func<T, string?> mixed) where T : IDisposable
    {
        string full = Path.GetFullPath(path);
        string folder = Directory.Exists(full) ? full : Path.GetDirectoryName(full)!;
        for (int attempt = 1; ; attempt++)
        {
            // The first failure is always retried once: a save may have finished between the open and the check.
            bool retry = attempt < ReadAttempts && (attempt == 1 || SaveInProgress(folder));
            T value;
            try
            {
                value = Read(path, open);
            }
            catch (Exception e) when (retry && e is IOException or QuantoFormatException)
            {
                Thread.Sleep(Math.Min(10 << attempt, 200));
                continue;
            }
            string? problem = mixed(value);
            if (problem is null) return value;
            value.Dispose();
            if (!retry) throw new QuantoFormatException(path, problem);
            Thread.Sleep(Math.Min(10 << attempt, 200));
        }
    }

    /// <summary>True while another process holds the folder's lock (a save of several files is running).</summary>
    internal static bool SaveInProgress(string folder)
    {
        if (!File.Exists(Path.Combine(folder, FolderLock.FileName))) return false;
        try
        {
            using FolderLock? held = FolderLock.TryExclusive(folder);
            return held is null;
        }
        catch (UnauthorizedAccessException)
        {
            return false; // nobody can save into a folder that cannot be written
        }
    }

    /// <summary>Opens a file (or a folder's files) after finishing or removing what interrupted saves left there.
    /// </summary>
    internal static T Read<T>(string path, Func<T> open)
    {
        string full = Path.GetFullPath(path);
        string folder = Directory.Exists(full) ? full : Path.GetDirectoryName(full)!;
        if (Directory.Exists(folder)) TryRecover(folder);
        return open();
    }

    /// <summary>Makes a journal's renames and deletions; every step can be repeated after a crash.</summary>
    internal static void Apply(string folder, Journal journal)
    {
        foreach ((string temporary, string target) in journal.Renames)
        {
            string from = Path.Combine(folder, temporary), to = Path.Combine(folder, target);
            try
            {
                File.Move(from, to, overwrite: true);
            }
            catch (FileNotFoundException) when (File.Exists(to))
            {
                // Renamed already (by an earlier attempt, or by a reader finishing this journal).
            }
            catch (FileNotFoundException e)
            {
                throw new QuantoFormatException(Path.Combine(folder, journal.Name),
                    $"the interrupted save's file {temporary} (for {target}) is gone, so the checkpoint cannot be " +
                    "completed: save it again.", e);
            }
        }
        foreach (string name in journal.Deletions) Delete(Path.Combine(folder, name));
    }

    /// <summary>Creates a file for writing, kept open (and so marked in use) until the caller disposes it. On Unix
    /// the share mode becomes a shared flock, which <see cref="FolderLock.IsHeld"/> sees; FileShare.Delete lets
    /// Windows rename it while it is open.</summary>
    internal static FileStream Create(string path) =>
        new(path, FileMode.CreateNew, FileAccess.Write, FileShare.Delete, 1 << 16);

    private static void Delete(string path)
    {
        try
        {
            File.Delete(path); // no error when it is already gone
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    /// <summary>A file name with no folder part.</summary>
    internal static bool IsPlainName(string name) =>
        name.Length > 0 && name == Path.GetFileName(name) && name is not "." and not ".." &&
        name.IndexOfAny(Path.GetInvalidFileNameChars()) < 0;

    /// <summary>The kinds of file a save replaces or removes: weights, shards, an index, a quantization map, a
    /// package (a journal may delete nothing else).</summary>
    internal static bool IsCheckpointFile(string name) =>
        name.EndsWith(".safetensors", StringComparison.Ordinal) ||
        name.EndsWith(".index.json", StringComparison.Ordinal) ||
        name.EndsWith("qmap.json", StringComparison.Ordinal) || name.EndsWith(".qnt", StringComparison.Ordinal);
}
