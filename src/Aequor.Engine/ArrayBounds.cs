using System.Buffers.Binary;
using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// An array whose index does not start at 1 ('[0:2]={1,2,3}', what assigning a[0] makes): Npgsql drops the lower
/// bounds, so it read exactly as '{1,2,3}' and every element's index was silently off. No .NET array a script can
/// index keeps them, so such a value is refused naming the column, and the query can renumber it (v[:]).
/// </summary>
internal static class ArrayBounds
{
    // array_send: dimensions, a null flag, the element type, then a length and a lower bound per dimension (at most 6).
    private const int HeaderLength = 12;
    private const int MaxDimensions = 6;

    [ThreadStatic]
    private static byte[]? Header;

    /// <summary>Throws when <paramref name="value"/>, read from an array column, has a dimension that does not start at 1.</summary>
    public static void Check(NpgsqlDataReader reader, int ordinal, object? value)
    {
        if (value is not Array || !reader.GetDataTypeName(ordinal).EndsWith("[]", StringComparison.Ordinal))
        {
            return;
        }

        // GetBytes reads the value's bytes in place; GetStream cost an object per array read.
        var header = Header ??= new byte[HeaderLength + (8 * MaxDimensions)];
        var read = (int)reader.GetBytes(ordinal, 0, header, 0, header.Length);

        var rank = read >= HeaderLength ? BinaryPrimitives.ReadInt32BigEndian(header) : 0;
        for (var d = 0; d < rank && HeaderLength + (8 * d) + 8 <= read; d++)
        {
            var lower = BinaryPrimitives.ReadInt32BigEndian(header[(HeaderLength + (8 * d) + 4)..]);
            if (lower != 1)
            {
                var name = reader.GetName(ordinal);
                throw new InvalidCastException(
                    $"Column {ordinal + 1} ('{name}', type {reader.GetDataTypeName(ordinal)}) holds an array whose dimension {d + 1} starts at index {lower}, not 1: " +
                    $"read as a .NET array its elements would lose their indexes. Renumber it from 1 in the query ({name}[:]{(rank > 1 ? string.Concat(Enumerable.Repeat("[:]", rank - 1)) : string.Empty)}), or cast it to text ({name}::text).");
            }
        }
    }
}
