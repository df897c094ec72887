namespace Quanto.Serialization;

/// <summary>
/// Writes files so that readers see either the old content or the complete new one: the data goes to a hidden
/// temporary file in the same folder (same file system, so the rename is atomic), is flushed to disk, then renamed
/// over the target. If writing fails, the temporary file is deleted and the old file is left untouched; if the
/// process is killed, the temporary file is deleted by the next save or load in that folder (see
/// <see cref="FileSet"/>, which also makes saves of several files crash-safe as a set).
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
        using FileSetWriter save = FileSetWriter.Begin(folder, severalFiles: false);
        save.Write(Path.GetFileName(full), write);
        save.Commit();
    }
}
