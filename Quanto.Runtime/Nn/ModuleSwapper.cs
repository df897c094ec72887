using System.Collections;
using System.Reflection;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Quanto.Nn;

/// <summary>
/// Puts a quantized module where a float one was: in the parent's field (when its declared type can hold the
/// replacement), in a ModuleList / ModuleDict / Sequential entry, and in the parent's registry of submodules (so
/// named_modules, state_dict and .to() see it). TorchSharp's Linear, Conv2d and LayerNorm are sealed, so a field
/// declared as <c>Linear</c> cannot hold a QLinear: that case is refused with a reason, never half-done.
/// </summary>
internal static class ModuleSwapper
{
    private const BindingFlags InstanceFields =
        BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;

    private static readonly FieldInfo? Submodules =
        typeof(nn.Module).GetField("_internal_submodules", BindingFlags.Instance | BindingFlags.NonPublic);

    private static readonly FieldInfo? SequentialModules =
        typeof(Sequential).GetField("_modules", BindingFlags.Instance | BindingFlags.NonPublic);

    /// <summary>Replaces <paramref name="old"/> (registered as <paramref name="childName"/> in
    /// <paramref name="parent"/>); returns null on success, else why it could not be done (nothing changed).</summary>
    internal static string? TryReplace(nn.Module parent, string childName, nn.Module old, nn.Module replacement)
    {
        if (Submodules?.GetValue(parent) is not IDictionary<string, nn.Module> registry)
            return $"this TorchSharp version's {nameof(nn.Module)} has no submodule registry Quanto.NET knows how to update";

        var assignments = new List<Action>();
        switch (parent)
        {
            case Sequential sequential:
                if (SequentialModules?.GetValue(sequential) is not IList entries)
                    return "this TorchSharp version's Sequential cannot be updated in place";
                int index = IndexOf(entries, old);
                if (index < 0) return $"Sequential entry '{childName}' was not found";
                assignments.Add(() => entries[index] = replacement);
                break;
            case var _ when IsModuleList(parent):
                // ModuleList<T>: find the entry, check T can hold the replacement, set it through the typed indexer.
                int position = IndexOf(((IEnumerable)parent).Cast<object>().ToList(), old);
                if (position < 0) return $"list entry '{childName}' was not found";
                Type element = parent.GetType().GetGenericArguments()[0];
                if (!element.IsInstanceOfType(replacement))
                    return $"the ModuleList holds {element.Name} items, which cannot hold a {replacement.GetType().Name}";
                PropertyInfo item = parent.GetType().GetProperty("Item", [typeof(int)])!;
                assignments.Add(() => item.SetValue(parent, replacement, [position]));
                break;
            default:
                foreach (FieldInfo field in FieldsHolding(parent, old))
                {
                    if (!field.FieldType.IsAssignableFrom(replacement.GetType()))
                    {
                        return $"field '{field.Name}' of {parent.GetType().Name} is declared as {field.FieldType.Name}, " +
                               $"which cannot hold a {replacement.GetType().Name} (TorchSharp's layer classes are " +
                               "sealed): declare it as Module<Tensor, Tensor>, or annotate the class with [Quantize] " +
                               "to get a generated ForwardQuantized";
                    }
                    assignments.Add(() => field.SetValue(parent, replacement));
                }
                break;
        }

        // ModuleDict keeps its own dictionary; its string indexer updates it.
        if (parent.GetType() is { IsGenericType: true } type && type.GetGenericTypeDefinition() == typeof(ModuleDict<>))
        {
            PropertyInfo indexer = type.GetProperty("Item", [typeof(string)])!;
            assignments.Add(() => indexer.SetValue(parent, replacement, [childName]));
        }

        foreach (Action assign in assignments) assign();
        registry[childName] = replacement;
        return null;
    }

    private static bool IsModuleList(nn.Module parent) =>
        parent.GetType() is { IsGenericType: true } type && type.GetGenericTypeDefinition() == typeof(ModuleList<>);

    private static int IndexOf(IList list, object item)
    {
        for (int i = 0; i < list.Count; i++)
        {
            if (ReferenceEquals(list[i], item)) return i;
        }
        return -1;
    }

    private static IEnumerable<FieldInfo> FieldsHolding(nn.Module parent, nn.Module child)
    {
        for (Type? type = parent.GetType(); type is not null && type != typeof(nn.Module); type = type.BaseType)
        {
            foreach (FieldInfo field in type.GetFields(InstanceFields))
            {
                if (typeof(nn.Module).IsAssignableFrom(field.FieldType) || field.FieldType.IsAssignableFrom(child.GetType()))
                {
                    if (ReferenceEquals(field.GetValue(parent), child)) yield return field;
                }
            }
        }
    }
}
