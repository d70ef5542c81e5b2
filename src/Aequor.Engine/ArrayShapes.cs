namespace Aequor.Engine;

/// <summary>Arrays read from the server mapped element by element into another element type, any rank.</summary>
internal static class ArrayShapes
{
    /// <summary>
    /// <paramref name="source"/>'s elements mapped, in its shape; of nullables (or strings) only when one is null,
    /// as Npgsql reads an array with a NULL in it.
    /// </summary>
    public static Array Reshape(Array source, Type element, Func<object?, object?> map)
    {
        var values = source.Cast<object?>().Select(map).ToArray();
        var type = values.Contains(null) && element.IsValueType ? typeof(Nullable<>).MakeGenericType(element) : element;
        var lengths = Enumerable.Range(0, source.Rank).Select(source.GetLength).ToArray();
        var result = Array.CreateInstance(type, lengths);
        var index = new int[lengths.Length];
        foreach (var value in values)
        {
            result.SetValue(value, index);

            // Row-major, as an array enumerates: the last index turns fastest.
            for (var d = index.Length - 1; d >= 0 && ++index[d] == lengths[d]; d--)
            {
                index[d] = d > 0 ? 0 : index[d];
            }
        }

        return result;
    }
}
