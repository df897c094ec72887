namespace Quanto.Serialization;

/// <summary>
/// One crash-safe save into a folder (see <see cref="FileSet"/>): writes each file to a temporary beside its target
/// (kept open until the commit), and makes them all visible at once in <see cref="Commit"/>. Disposed without a
/// commit, it deletes what it wrote and the old files stay as they were. A save of several files holds the folder's
/// <see cref="FolderLock"/> from <see cref="Begin"/> to <see cref="Dispose"/>.
/// </summary>
internal sealed class FileSetWriter : IDisposable
{
    private readonly FolderLock? _lock;
    private readonly List<Staged> _staged = [];
    private readonly List<string> _deletions = [];
    private bool _done;

    private FileSetWriter(string folder, FolderLock? folderLock)
    {
        Folder = folder;
        _lock = folderLock;
    }

    /// <summary>The folder (full path).</summary>
    internal string Folder { get; }

    /// <summary>This save's id, recorded in the files it writes so readers can tell sets apart.</summary>
    internal string Generation { get; } = FileSet.NewId();

    /// <summary>
    /// Starts a save: for several files, waits for the folder's lock; then finishes or cleans up what interrupted
    /// saves left.
    /// </summary>
    /// <param name="folder">The folder; it must exist.</param>
    /// <param name="severalFiles">True for a set (weights and map, shards and index): takes the folder's lock.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    internal static FileSetWriter Begin(string folder, bool severalFiles)
    {
        string full = Path.GetFullPath(folder);
        if (!Directory.Exists(full)) throw new DirectoryNotFoundException($"Cannot write into {full}: no such folder.");
        FolderLock? held = severalFiles ? FolderLock.Exclusive(full) : null;
        try
        {
            if (held is null) FileSet.TryRecover(full);
            else FileSet.Recover(full);
            return new FileSetWriter(full, held);
        }
        catch
        {
            held?.Dispose();
            throw;
        }
    }

    /// <summary>A file written by this save; its target name may be set after it is written (shards are numbered
    /// once their count is known).</summary>
    internal sealed class Staged
    {
        internal Staged(string temporary, FileStream handle)
        {
            Temporary = temporary;
            Handle = handle;
        }

        /// <summary>The temporary file's name.</summary>
        internal string Temporary { get; }

        /// <summary>The open handle that marks the temporary file as in use until the commit.</summary>
        internal FileStream Handle { get; }

        /// <summary>The name it gets at commit.</summary>
        internal string? Target { get; set; }
    }

    /// <summary>Writes a file under a temporary name and flushes it; it becomes <paramref name="target"/> at commit.
    /// </summary>
    /// <param name="target">The final file name in the folder (null: set it later on the result).</param>
    /// <param name="write">Writes the whole content to the stream (do not dispose it).</param>
    internal Staged Write(string? target, Action<Stream> write)
    {
        ObjectDisposedException.ThrowIf(_done, this);
        if (target is not null && !FileSet.IsPlainName(target))
            throw new ArgumentException($"'{target}' is not a file name.", nameof(target));
        string temporary = FileSet.TemporaryFor(target ?? "part");
        FileStream handle = FileSet.Create(Path.Combine(Folder, temporary));
        var staged = new Staged(temporary, handle) { Target = target };
        _staged.Add(staged); // registered first: Dispose removes it if the write fails half-way
        write(handle);
        handle.Flush(flushToDisk: true); // before any rename can expose it, or a power cut may show an empty file
        return staged;
    }

    /// <summary>Removes a file of the previous checkpoint at commit (a stale shard or index), if it exists then.
    /// </summary>
    internal void DeleteAtCommit(string name)
    {
        if (!FileSet.IsPlainName(name) || !FileSet.IsCheckpointFile(name))
            throw new ArgumentException($"'{name}' is not a checkpoint file name.", nameof(name));
        _deletions.Add(name);
    }

    /// <summary>Makes every written file visible under its target name and deletes the files marked for it.</summary>
    /// <exception cref="InvalidOperationException">A written file has no target name.</exception>
    internal void Commit()
    {
        ObjectDisposedException.ThrowIf(_done, this);
        if (_staged.Any(s => s.Target is null))
            throw new InvalidOperationException("Every written file needs its target name before the commit.");
        var targets = _staged.Select(s => s.Target!).ToHashSet(StringComparer.Ordinal);
        var journal = new Journal(FileSet.JournalPrefix + Generation + ".json",
            _staged.Select(s => (s.Temporary, s.Target!)).ToList(),
            _deletions.Where(d => !targets.Contains(d)).Distinct().ToList());
        if (journal.Renames.Count == 1 && journal.Deletions.Count == 0)
        {
            FileSet.Apply(Folder, journal); // one rename is atomic by itself
            _done = true;
        }
        else
        {
            string path = Path.Combine(Folder, journal.Name);
            string temporary = Path.Combine(Folder, FileSet.TemporaryFor(journal.Name));
            using (FileStream handle = FileSet.Create(temporary))
            {
                handle.Write(journal.ToBytes());
                handle.Flush(flushToDisk: true);
                File.Move(temporary, path); // the commit point: from here the journal owns the temporary files
            }
            _done = true;
            FileSet.Apply(Folder, journal);
            File.Delete(path);
        }
        Release(deleteTemporaries: false);
    }

    /// <summary>Deletes what an uncommitted save wrote, and releases the folder.</summary>
    public void Dispose() => Release(deleteTemporaries: !_done);

    private void Release(bool deleteTemporaries)
    {
        try
        {
            foreach (Staged staged in _staged)
            {
                staged.Handle.Dispose();
                if (!deleteTemporaries) continue;
                try
                {
                    File.Delete(Path.Combine(Folder, staged.Temporary));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Best effort: the original error matters more; the next save or load removes it.
                }
            }
            _staged.Clear();
        }
        finally
        {
            _done = true;
            _lock?.Dispose();
        }
    }
}
