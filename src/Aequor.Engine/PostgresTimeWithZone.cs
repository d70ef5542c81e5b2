using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// timetz (and its arrays) as the server's text, read from its binary value (microseconds of the day, the zone in
/// seconds west of UTC), not through Npgsql's DateTimeOffset: that wraps 24:00:00 round to 00:00:00 and refuses an
/// offset with seconds ('12:00+05:30:15') or of 16 hours, which the server keeps.
/// </summary>
internal static class PostgresTimeWithZone
{
    /// <summary>The column's value: its text, or an array of them in the array's shape; null when it is not timetz.</summary>
    public static object? Read(NpgsqlDataReader reader, int ordinal)
    {
        var name = reader.GetDataTypeName(ordinal);
        if (!name.StartsWith("time with time zone", StringComparison.Ordinal))
        {
            return null;
        }

        var bytes = BinaryValue.Of(reader, ordinal);
        return name.EndsWith("[]", StringComparison.Ordinal) ? Array(bytes) : Text(bytes);
    }

    /// <summary>timetz_out: the time (a fraction without trailing zeros), then the offset: +HH, +HH:MM, +HH:MM:SS.</summary>
    public static string Text(ReadOnlySpan<byte> value)
    {
        var micros = BinaryPrimitives.ReadInt64BigEndian(value);
        var west = BinaryPrimitives.ReadInt32BigEndian(value[8..]);
        var seconds = micros / 1_000_000;
        var text = new StringBuilder().Append(CultureInfo.InvariantCulture, $"{seconds / 3600:D2}:{seconds / 60 % 60:D2}:{seconds % 60:D2}");
        if (micros % 1_000_000 is var fraction and not 0)
        {
            text.Append('.').Append(fraction.ToString("D6", CultureInfo.InvariantCulture).TrimEnd('0'));
        }

        // The server stores the zone west-positive and writes it east-positive; zero is '+'.
        var offset = Math.Abs(west);
        text.Append(west <= 0 ? '+' : '-').Append(CultureInfo.InvariantCulture, $"{offset / 3600:D2}");
        if (offset % 60 != 0)
        {
            text.Append(CultureInfo.InvariantCulture, $":{offset / 60 % 60:D2}:{offset % 60:D2}");
        }
        else if (offset / 60 % 60 != 0)
        {
            text.Append(CultureInfo.InvariantCulture, $":{offset / 60 % 60:D2}");
        }

        return text.ToString();
    }

    /// <summary>
    /// array_send's format: dimensions, a null flag, the element type, a length and lower bound per dimension, then
    /// each element as a length (-1: NULL) and its bytes. The result has the array's rank, as Npgsql reads arrays.
    /// </summary>
    private static Array Array(ReadOnlySpan<byte> value)
    {
        var rank = BinaryPrimitives.ReadInt32BigEndian(value);
        if (rank == 0)
        {
            return System.Array.Empty<string>();
        }

        var lengths = new int[rank];
        for (var d = 0; d < rank; d++)
        {
            lengths[d] = BinaryPrimitives.ReadInt32BigEndian(value[(12 + (8 * d))..]);
        }

        var position = 12 + (8 * rank);
        var texts = new List<object?>();
        while (position < value.Length)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(value[position..]);
            position += 4;
            if (length < 0)
            {
                texts.Add(null);
                continue;
            }

            texts.Add(Text(value.Slice(position, length)));
            position += length;
        }

        return ArrayShapes.Shaped(typeof(string), lengths, texts);
    }
}
