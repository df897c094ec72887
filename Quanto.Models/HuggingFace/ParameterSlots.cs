using System.Reflection;
using TorchSharp.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace Quanto.Models.HuggingFace;

/// <summary>
/// Puts a loaded tensor in place of a module's parameter. Models are built on the meta device (shapes, no memory),
/// so loading replaces each parameter object instead of copying into it: the float weights exist once, in the dtype
/// asked for. TorchSharp's layers (Linear, Embedding, LayerNorm) and this project's own modules expose each parameter
/// as a settable property, which also updates the module's registry.
/// </summary>
internal static class ParameterSlots
{
    /// <summary>Replaces the parameter <paramref name="key"/> ("model.layers.0.mlp.up_proj.weight").</summary>
    /// <exception cref="InvalidOperationException">The module has no settable property for it.</exception>
    internal static void Assign(IReadOnlyDictionary<string, nn.Module> modules, string key, Tensor value)
    {
        int dot = key.LastIndexOf('.');
        string owner = dot < 0 ? "" : key[..dot];
        string name = key[(dot + 1)..];
        nn.Module module = modules[owner];
        PropertyInfo? property = module.GetType().GetProperty(name, BindingFlags.Instance | BindingFlags.Public);
        if (property is null || !property.CanWrite || !property.PropertyType.IsAssignableFrom(typeof(Parameter)))
        {
            throw new InvalidOperationException(
                $"{module.GetType().Name} '{owner}' has no settable parameter property '{name}' to load into.");
        }
        property.SetValue(module, new Parameter(value));
    }

    /// <summary>Every module of <paramref name="model"/> by path, the root as "".</summary>
    internal static Dictionary<string, nn.Module> Modules(nn.Module model)
    {
        var modules = new Dictionary<string, nn.Module>(StringComparer.Ordinal) { [""] = model };
        foreach ((string path, nn.Module module) in model.named_modules()) modules.TryAdd(path, module);
        return modules;
    }

    /// <summary>The keys of parameters still on the meta device (never loaded).</summary>
    internal static List<string> Unmaterialised(nn.Module model) =>
        model.named_parameters().Where(p => p.parameter.device_type == DeviceType.META).Select(p => p.name).ToList();
}
