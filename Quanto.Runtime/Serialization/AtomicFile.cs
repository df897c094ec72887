namespace Quanto.Serialization;

/// <summary>
/// Writes files so that readers see either the old content or the complete new one: the data goes to a temporary
/// file in the same folder (same file system, so the rename is atomic), is flushed to disk, then renamed over the
/// target. If writing fails, the temporary file is deleted and the old file is left untouched.
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="path"/> atomically with <paramref name="write"/>.</summary>
    /// <param name="path">Target file; its folder must exist.</param>
    /// <param name="write">Writes the whole content to the stream it is given (do not dispose it).</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full) ?? ".";
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Cannot write {full}: no folder {folder}.");
        // Hidden, unique name beside the target: a crash leaves at most a stray .tmp, never a half-written target.
        string temp = Path.Combine(folder, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true); // fsync before the rename, or a power cut may expose an empty file
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    private static void TryDelete(string temp)
    {
        try
        {
            File.Delete(temp);
        }
        catch (IOException)
        {
            // Best effort: the original error matters more than a stray temporary file.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
