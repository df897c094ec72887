using System.Reflection;
using ILGPU.Runtime.OpenCL;

namespace Quanto.Kernels.Ilgpu.Accelerators;

/// <summary>
/// The opt-in for OpenCL devices without the generic address space. ILGPU 1.5.3 refuses such a device when the
/// accelerator is constructed, by reading <see cref="CLCapabilityContext.GenericAddressSpace"/>, a get-only property
/// filled from the driver. These kernels pass only global and shared (local) views with known address spaces, so
/// they do not need generic pointers; the opt-in sets that flag on this one device's capability object before the
/// accelerator is built. That is an ILGPU internal (a compiler-generated backing field), so it is done only for the
/// ILGPU version it was tested with, and fails with a clear message otherwise.
/// </summary>
public static class OpenCLOptIn
{
    /// <summary>The ILGPU version the opt-in was written and tested against.</summary>
    public static readonly Version TestedIlgpuVersion = new(1, 5, 3);

    private const string BackingField = "<GenericAddressSpace>k__BackingField";

    /// <summary>The loaded ILGPU version (major.minor.build).</summary>
    public static Version IlgpuVersion
    {
        get
        {
            Version v = typeof(CLDevice).Assembly.GetName().Version ?? new Version(0, 0);
            return new Version(v.Major, v.Minor, Math.Max(v.Build, 0));
        }
    }

    /// <summary>Marks <paramref name="device"/> as having the generic address space, so ILGPU accepts it.</summary>
    /// <exception cref="NotSupportedException">The ILGPU version differs from <see cref="TestedIlgpuVersion"/>, or
    /// its internals changed.</exception>
    public static void Apply(CLDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (IlgpuVersion != TestedIlgpuVersion)
        {
            throw new NotSupportedException(
                $"The OpenCL generic-address-space opt-in was tested with ILGPU {TestedIlgpuVersion} only; this is " +
                $"ILGPU {IlgpuVersion}. Check that version's CLCapabilityContext and update OpenCLOptIn, or use " +
                "CUDA, an OpenCL 2.0 device, or the CPU accelerator.");
        }
        FieldInfo? field = typeof(CLCapabilityContext).GetField(BackingField,
            BindingFlags.Instance | BindingFlags.NonPublic);
        if (field is null || field.FieldType != typeof(bool))
        {
            throw new NotSupportedException(
                $"ILGPU {IlgpuVersion} has no {nameof(CLCapabilityContext)}.{BackingField}: the opt-in cannot be applied.");
        }
        field.SetValue(device.Capabilities, true);
        if (!device.Capabilities.GenericAddressSpace)
            throw new NotSupportedException("Setting the generic-address-space capability had no effect.");
    }
}
