using System.Text;

namespace Quanto.Kernels.Ilgpu.Accelerators;

/// <summary>One device seen while choosing an accelerator, and whether it could be used.</summary>
/// <param name="Kind">Its family.</param>
/// <param name="Name">The device name as the driver reports it.</param>
/// <param name="RefusedBecause">Why it cannot be used; null when usable.</param>
public sealed record DeviceCandidate(AcceleratorKind Kind, string Name, string? RefusedBecause = null)
{
    /// <summary>True when nothing refuses the device.</summary>
    public bool IsUsable => RefusedBecause is null;

    /// <inheritdoc />
    public override string ToString() => $"{Kind} '{Name}'" + (IsUsable ? "" : $" (refused: {RefusedBecause})");
}

/// <summary>
/// What accelerator choice saw and did: every device found (usable or refused, with the reason), the families that had
/// no device at all and why, and the device chosen. <see cref="ToString"/> prints it for logs and benchmark headers.
/// </summary>
/// <param name="Seen">Every device found, in discovery order.</param>
/// <param name="Missing">Families that had no device, with the reason ("CUDA: no driver library").</param>
/// <param name="Chosen">The device in use.</param>
/// <param name="Why">Why it was chosen ("first usable in CUDA > OpenCL > CPU", "named by the user").</param>
public sealed record AcceleratorReport(
    IReadOnlyList<DeviceCandidate> Seen, IReadOnlyList<string> Missing, DeviceCandidate Chosen, string Why)
{
    /// <inheritdoc />
    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append("ILGPU accelerator: ").Append(Chosen).Append(" - ").AppendLine(Why);
        foreach (DeviceCandidate device in Seen) text.Append("  seen ").AppendLine(device.ToString());
        foreach (string missing in Missing) text.Append("  none ").AppendLine(missing);
        return text.ToString().TrimEnd();
    }
}
