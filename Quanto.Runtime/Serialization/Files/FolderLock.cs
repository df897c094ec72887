using System.Diagnostics;

namespace Quanto.Serialization;

/// <summary>
/// An advisory lock that serializes saves of several files into one folder (two processes saving the same sharded
/// checkpoint at once would otherwise interleave their renames), held through the file <see cref="FileName"/> in
/// it. Readers do not wait for it: they check the files' records instead (see <see cref="FileSet"/>), and finish an
/// interrupted save's journal only when they can take the lock at once (no save is running). .NET maps
/// FileShare.None to an exclusive flock on Unix and to a share mode on Windows; a killed process loses its lock
/// with its handles, so a crash never leaves the folder locked.
/// </summary>
internal sealed class FolderLock : IDisposable
{
    /// <summary>The lock file's name (hidden and empty; it stays in folders that sharded or map-carrying checkpoints
    /// were saved to: deleting a lock file races with the next process taking it).</summary>
    internal const string FileName = ".quanto.lock";

    /// <summary>How long to wait for another process's save before giving up.</summary>
    internal static TimeSpan Timeout { get; set; } = TimeSpan.FromMinutes(10);

    private readonly FileStream _stream;

    private FolderLock(FileStream stream) => _stream = stream;

    /// <summary>Waits for the exclusive lock of a folder (for a save).</summary>
    /// <exception cref="IOException">Another process held it for longer than <see cref="Timeout"/>.</exception>
    internal static FolderLock Exclusive(string folder) =>
        new(Acquire(folder, () => Open(folder, FileShare.None, FileAccess.ReadWrite)));

    /// <summary>The exclusive lock if no one holds it now (null: a save is running); never waits.</summary>
    /// <exception cref="UnauthorizedAccessException">The folder is read-only.</exception>
    internal static FolderLock? TryExclusive(string folder)
    {
        try
        {
            return new FolderLock(Open(folder, FileShare.None, FileAccess.ReadWrite));
        }
        catch (IOException e) when (HeldByOther(e))
        {
            return null;
        }
    }

    private static FileStream Open(string folder, FileShare share, FileAccess access) =>
        new(Path.Combine(folder, FileName), FileMode.OpenOrCreate, access, share, bufferSize: 1);

    private static FileStream Acquire(string folder, Func<FileStream> open)
    {
        var clock = Stopwatch.StartNew();
        int pause = 1;
        while (true)
        {
            try
            {
                return open();
            }
            catch (IOException e) when (HeldByOther(e))
            {
                // Held by another process (or thread): its save is still running.
                if (clock.Elapsed > Timeout)
                {
                    throw new IOException(
                        $"{Path.Combine(folder, FileName)} has been held for {Timeout.TotalMinutes:0} minutes by " +
                        "another save into this folder; wait for it to finish, or check for a hung process.", e);
                }
                Thread.Sleep(pause);
                pause = Math.Min(pause * 2, 50);
            }
        }
    }

    /// <summary>True when another handle holds the file with FileShare.None (or, for the probe of a temporary file,
    /// at all).</summary>
    internal static bool IsHeld(string path)
    {
        try
        {
            using var probe = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.None, bufferSize: 1);
            return false;
        }
        catch (IOException e) when (HeldByOther(e))
        {
            return true;
        }
    }

    /// <summary>The lock is held elsewhere: EWOULDBLOCK from flock on Linux (11) and macOS (35), a sharing or lock
    /// violation on Windows. Any other error (a read-only file system...) is not worth waiting for.</summary>
    private static bool HeldByOther(IOException e) =>
        e.GetType() == typeof(IOException) &&
        e.HResult is 11 or 35 or unchecked((int)0x80070020) or unchecked((int)0x80070021);

    /// <summary>Releases the lock.</summary>
    public void Dispose() => _stream.Dispose();
}
