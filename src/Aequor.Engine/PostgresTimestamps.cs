using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// timestamp and timestamptz values read from the server's own number for them (microseconds from 2000-01-01),
/// not through Npgsql's DateTime: Npgsql multiplies that number into ticks unchecked, so a year past about
/// 31000 (the server goes to 294276) wrapped round to a wrong date, in 1998 for 294276-01-01.
/// </summary>
internal static class PostgresTimestamps
{
    private static readonly long EpochTicks = new DateTime(2000, 1, 1).Ticks;
    private static readonly long MinMicros = -EpochTicks / 10;
    private static readonly long MaxMicros = (DateTime.MaxValue.Ticks - EpochTicks) / 10;

    /// <summary>Whether a column of this type name is read here: its values, or the elements of its arrays.</summary>
    public static bool IsTimestamp(string dataTypeName) =>
        dataTypeName.StartsWith("timestamp with", StringComparison.Ordinal) || dataTypeName.StartsWith("timestamp without", StringComparison.Ordinal);

    public static DateTimeKind KindOf(string dataTypeName) =>
        dataTypeName.StartsWith("timestamp with time zone", StringComparison.Ordinal) ? DateTimeKind.Utc : DateTimeKind.Unspecified;

    /// <summary>The value, or null for NULL; <see cref="OverflowException"/> beyond DateTime.</summary>
    public static object? Read(NpgsqlDataReader reader, int ordinal, DateTimeKind kind) =>
        reader.GetFieldValue<long?>(ordinal) is { } micros ? ToDateTime(micros, kind) : null;

    /// <summary>
    /// An array of them, in the shape Npgsql read (<paramref name="read"/>: DateTime[] or DateTime?[] of any
    /// rank), with every element taken again from its microseconds.
    /// </summary>
    public static Array ReadArray(NpgsqlDataReader reader, int ordinal, Array read)
    {
        var kind = KindOf(reader.GetDataTypeName(ordinal));
        var raw = read.Rank == 1
            ? reader.GetFieldValue<long?[]>(ordinal)
            : (Array)RawArrayRead.MakeGenericMethod(typeof(long?).MakeArrayType(read.Rank)).Invoke(reader, [ordinal])!;
        return ArrayShapes.Reshape(raw, typeof(DateTime), m => m is long micros ? ToDateTime(micros, kind) : null);
    }

    public static bool IsTimestampArray(Array array)
    {
        var element = array.GetType().GetElementType();
        return element == typeof(DateTime) || element == typeof(DateTime?);
    }

    /// <summary>±infinity is DateTime's end (as Npgsql reads it), with the column's kind.</summary>
    private static DateTime ToDateTime(long micros, DateTimeKind kind) => micros switch
    {
        long.MaxValue => DateTime.SpecifyKind(DateTime.MaxValue, kind),
        long.MinValue => DateTime.SpecifyKind(DateTime.MinValue, kind),
        < 0 when micros < MinMicros => throw new OverflowException("The timestamp is before DateTime.MinValue."),
        _ when micros > MaxMicros => throw new OverflowException("The timestamp is after DateTime.MaxValue."),
        _ => new DateTime(EpochTicks + (micros * 10), kind),
    };

    private static readonly System.Reflection.MethodInfo RawArrayRead =
        typeof(NpgsqlDataReader).GetMethod(nameof(NpgsqlDataReader.GetFieldValue), [typeof(int)])!;
}
