namespace Quanto.Kernels.Ilgpu.Accelerators;

/// <summary>
/// The choice itself, kept free of ILGPU so it is testable with any list of devices: the user's kind (and name) if
/// given, else the first usable device in the order CUDA, OpenCL, CPU.
/// </summary>
public static class AcceleratorSelector
{
    /// <summary>Picks a device from <paramref name="seen"/>.</summary>
    /// <exception cref="NotSupportedException">No device matches the user's request; the message lists what was
    /// seen and why each was refused.</exception>
    public static AcceleratorReport Choose(
        IReadOnlyList<DeviceCandidate> seen, IReadOnlyList<string> missing, IlgpuOptions options)
    {
        ArgumentNullException.ThrowIfNull(seen);
        ArgumentNullException.ThrowIfNull(options);
        bool NameMatches(DeviceCandidate d) =>
            options.DeviceName is null || d.Name.Contains(options.DeviceName, StringComparison.OrdinalIgnoreCase);

        if (options.Accelerator is { } wanted)
        {
            DeviceCandidate? match = seen.FirstOrDefault(d => d.Kind == wanted && d.IsUsable && NameMatches(d));
            if (match is not null)
                return new AcceleratorReport(seen, missing, match, $"{wanted} named by the user");
            throw new NotSupportedException(
                $"No usable {wanted} device{(options.DeviceName is null ? "" : $" named like '{options.DeviceName}'")}. " +
                Describe(seen, missing));
        }
        foreach (AcceleratorKind kind in new[] { AcceleratorKind.Cuda, AcceleratorKind.OpenCL, AcceleratorKind.Cpu })
        {
            DeviceCandidate? match = seen.FirstOrDefault(d => d.Kind == kind && d.IsUsable && NameMatches(d));
            if (match is null) continue;
            string why = kind == AcceleratorKind.Cpu
                ? "no usable CUDA or OpenCL device, so the ILGPU CPU accelerator (simulated threads: correct but slow)"
                : $"first usable device in the order CUDA > OpenCL > CPU";
            return new AcceleratorReport(seen, missing, match, why);
        }
        throw new NotSupportedException("No usable ILGPU device. " + Describe(seen, missing));
    }

    private static string Describe(IReadOnlyList<DeviceCandidate> seen, IReadOnlyList<string> missing)
    {
        IEnumerable<string> parts = seen.Select(d => d.ToString()).Concat(missing);
        return "Seen: " + string.Join("; ", parts) + ".";
    }
}
