namespace Aequor.Engine;

/// <summary>Arrays of any rank built from their elements in order: arrays read from the server, grids sent to it.</summary>
public static class ArrayShapes
{
    /// <summary>
    /// <paramref name="source"/>'s elements mapped, in its shape; of nullables (or strings) only when one is null,
    /// as Npgsql reads an array with a NULL in it.
    /// </summary>
    internal static Array Reshape(Array source, Type element, Func<object?, object?> map)
    {
        var values = source.Cast<object?>().Select(map).ToArray();
        var type = values.Contains(null) && element.IsValueType ? typeof(Nullable<>).MakeGenericType(element) : element;
        return Shaped(type, Enumerable.Range(0, source.Rank).Select(source.GetLength).ToArray(), values);
    }

    /// <summary>An array of <paramref name="element"/> and <paramref name="lengths"/> filled with <paramref name="values"/> in row-major order, as an array enumerates.</summary>
    public static Array Shaped(Type element, int[] lengths, IEnumerable<object?> values)
    {
        ArgumentNullException.ThrowIfNull(element);
        ArgumentNullException.ThrowIfNull(lengths);
        ArgumentNullException.ThrowIfNull(values);
        var result = Array.CreateInstance(element, lengths);
        var index = new int[lengths.Length];
        foreach (var value in values)
        {
            result.SetValue(value, index);

            // The last index turns fastest.
            for (var d = index.Length - 1; d >= 0 && ++index[d] == lengths[d]; d--)
            {
                index[d] = d > 0 ? 0 : index[d];
            }
        }

        return result;
    }
}
