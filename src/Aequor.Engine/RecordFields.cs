using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// An anonymous record (ROW(…), a function returning record) is read by Npgsql field by field as its own types,
/// without what the engine does for a column: a timestamp in 294276 came back in 1998, an interval of -1 month as a
/// zero TimeSpan, a timetz of 24:00 as a DateTimeOffset in year 1, an inet without its prefix. A record is handed out
/// only when every field is of a type read as is (numbers, text, booleans, uuids, bytes, records of those);
/// otherwise it is refused naming the column, the field's type and the way out.
/// </summary>
internal static class RecordFields
{
    /// <summary>Throws when <paramref name="value"/>, read from a record column (or an array of them), holds a field of another type.</summary>
    public static void Check(NpgsqlDataReader reader, int ordinal, object? value)
    {
        if (value is not object[] || !reader.GetDataTypeName(ordinal).StartsWith("record", StringComparison.Ordinal))
        {
            return;
        }

        if (Unkept(value) is { } type)
        {
            var name = reader.GetName(ordinal);
            throw new InvalidCastException(
                $"Column {ordinal + 1} ('{name}', type {reader.GetDataTypeName(ordinal)}) holds a field read as {type.Name}, which a record does not carry " +
                $"faithfully (a far timestamp, an interval's months, a timetz's 24:00, an inet's prefix would change): select its fields as columns, or cast it to text ({name}::text).");
        }
    }

    private static Type? Unkept(object? value)
    {
        switch (value)
        {
            case null or DBNull or string or bool or short or int or long or float or double or decimal or Guid or byte[] or uint or ulong:
                return null;
            case object[] fields: // a record, or an array of them (object[][] is an object[])
                foreach (var field in fields)
                {
                    if (Unkept(field) is { } type)
                    {
                        return type;
                    }
                }

                return null;
            default:
                return value.GetType();
        }
    }
}
