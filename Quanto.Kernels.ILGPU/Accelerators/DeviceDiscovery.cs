using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace Quanto.Kernels.Ilgpu.Accelerators;

/// <summary>
/// Finds every device ILGPU can see, including the OpenCL devices that <c>Context.Builder.OpenCL()</c> silently drops,
/// and says why each unusable one is refused. Builds the ILGPU context the chosen accelerator lives in.
/// </summary>
public static class DeviceDiscovery
{
    /// <summary>The OpenCL C version ILGPU needs without the opt-in.</summary>
    private static readonly Version OpenCL2 = new(2, 0);

    /// <summary>
    /// ILGPU's CPU accelerator as these kernels need it: 128 threads per group (the default device allows 16), as
    /// 32 simulated warps of 4, on one multiprocessor. Every simulated thread is an OS thread and each group barrier
    /// wakes all 128, so a second multiprocessor only adds contention (measured 5.3 s vs 3.9 s for one 256 x 1024
    /// GEMV on 2 cores; the sequential mode took 357 s).
    /// </summary>
    public static CPUDevice CpuDevice { get; } = new(numThreadsPerWarp: 4, numWarpsPerMultiprocessor: 32,
        numMultiprocessors: 1);

    static DeviceDiscovery() => AssemblyLoadContext.Default.ResolvingUnmanagedDll += ResolveOpenCL;

    // ILGPU imports "opencl"; Debian's ICD loader (ocl-icd-libopencl1) ships only libOpenCL.so.1, and the unversioned
    // name comes with the -dev package. Resolve the versioned name for ILGPU only, and only when probing failed.
    private static IntPtr ResolveOpenCL(Assembly assembly, string name)
    {
        if (assembly != typeof(Context).Assembly || !name.Contains("opencl", StringComparison.OrdinalIgnoreCase))
            return IntPtr.Zero;
        foreach (string candidate in new[] { "libOpenCL.so.1", "libOpenCL.so", "OpenCL.dll" })
        {
            if (NativeLibrary.TryLoad(candidate, out IntPtr handle)) return handle;
        }
        return IntPtr.Zero;
    }

    /// <summary>Creates a context with all devices registered and describes them.</summary>
    /// <returns>The context (caller disposes), each device with its description, and the families with none.</returns>
    public static (Context Context, IReadOnlyList<(DeviceCandidate Candidate, Device Device)> Devices,
        IReadOnlyList<string> Missing) Discover(IlgpuOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var missing = new List<string>();
        Context context = Context.Create(builder =>
        {
            builder.Optimize(OptimizationLevel.O2).CPU(CpuDevice);
            builder.Cuda();
            // All OpenCL devices, compatible or not, so refused ones can be reported.
            try { builder.OpenCL(_ => true); }
            catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException)
            {
                missing.Add($"OpenCL: the ICD loader failed ({e.GetType().Name}: {e.Message})");
            }
        });
        var devices = new List<(DeviceCandidate, Device)>();
        foreach (Device device in context.Devices)
        {
            AcceleratorKind kind = device.AcceleratorType switch
            {
                AcceleratorType.Cuda => AcceleratorKind.Cuda,
                AcceleratorType.OpenCL => AcceleratorKind.OpenCL,
                _ => AcceleratorKind.Cpu,
            };
            string? refused = device is CLDevice cl ? OpenCLRefusal(cl, options) : null;
            devices.Add((new DeviceCandidate(kind, device.Name, refused), device));
        }
        if (!devices.Any(d => d.Item1.Kind == AcceleratorKind.Cuda))
        {
            missing.Add(CanLoad(OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1")
                ? "CUDA: the driver loaded but reports no device"
                : "CUDA: no NVIDIA driver (libcuda not found), so no CUDA device");
        }
        if (!devices.Any(d => d.Item1.Kind == AcceleratorKind.OpenCL) && missing.All(m => !m.StartsWith("OpenCL", StringComparison.Ordinal)))
        {
            missing.Add(CanLoad(OperatingSystem.IsWindows() ? "OpenCL.dll" : "libOpenCL.so.1")
                ? "OpenCL: the ICD loader found no platform or device (install a driver, e.g. pocl-opencl-icd)"
                : "OpenCL: no ICD loader (libOpenCL.so.1 not found; e.g. ocl-icd-libopencl1)");
        }
        return (context, devices, missing);
    }

    /// <summary>Why ILGPU would refuse an OpenCL device, or null when it is usable (possibly through the opt-in).</summary>
    public static string? OpenCLRefusal(CLDevice device, IlgpuOptions options)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(options);
        var cVersion = new Version(device.CLStdVersion.Major, device.CLStdVersion.Minor);
        bool generic = device.Capabilities.GenericAddressSpace;
        if (generic && cVersion >= OpenCL2) return null;
        if (options.AllowOpenCLWithoutGenericAddressSpace) return null;
        string what = generic ? $"OpenCL C {cVersion} (ILGPU needs 2.0)" : $"OpenCL C {cVersion} without the generic address space";
        return $"{what}; ILGPU refuses it - set {nameof(IlgpuOptions.AllowOpenCLWithoutGenericAddressSpace)} to use it";
    }

    private static bool CanLoad(string library)
    {
        if (!NativeLibrary.TryLoad(library, out IntPtr handle)) return false;
        NativeLibrary.Free(handle);
        return true;
    }
}
