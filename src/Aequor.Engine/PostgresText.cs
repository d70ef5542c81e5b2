using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using NpgsqlTypes;

namespace Aequor.Engine;

/// <summary>
/// PostgreSQL's own text for values Npgsql received in binary and has no .NET reading for: a numeric beyond
/// decimal's range or precision, an interval with months. Npgsql cannot hand those out as text (they did not
/// arrive as text), so the few formats are rendered here exactly as the server's output functions do.
/// </summary>
internal static class PostgresText
{
    private const ushort NumericNegative = 0x4000;
    private const ushort NumericNaN = 0xC000;
    private const ushort NumericPositiveInfinity = 0xD000;
    private const ushort NumericNegativeInfinity = 0xF000;

    /// <summary>
    /// A one-dimensional numeric[] in array_send's format as numeric_out writes each element (NULL as null), or null
    /// for an array of more dimensions: an array holding NaN, ±Infinity or a value beyond decimal, which decimal[] cannot.
    /// </summary>
    public static string?[]? NumericArray(ReadOnlySpan<byte> value)
    {
        var dimensions = BinaryPrimitives.ReadInt32BigEndian(value);
        if (dimensions != 1)
        {
            return null;
        }

        var count = BinaryPrimitives.ReadInt32BigEndian(value[12..]);
        var texts = new string?[count];
        var at = 20; // ndim, has-null flag, element oid, then this dimension's length and lower bound
        for (var i = 0; i < count; i++)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(value[at..]);
            at += 4;
            if (length >= 0)
            {
                texts[i] = Numeric(value.Slice(at, length));
                at += length;
            }
        }

        return texts;
    }

    /// <summary>numeric's binary send format (base-10000 digits) as numeric_out writes it.</summary>
    public static string Numeric(ReadOnlySpan<byte> value)
    {
        int count = BinaryPrimitives.ReadInt16BigEndian(value);
        int weight = BinaryPrimitives.ReadInt16BigEndian(value[2..]);
        var sign = BinaryPrimitives.ReadUInt16BigEndian(value[4..]);
        int scale = BinaryPrimitives.ReadUInt16BigEndian(value[6..]);
        switch (sign)
        {
            case NumericNaN:
                return "NaN";
            case NumericPositiveInfinity:
                return "Infinity";
            case NumericNegativeInfinity:
                return "-Infinity";
        }

        // Digit group i is worth 10000^(weight - i); groups outside the stored ones are zero.
        var groups = new int[count];
        for (var i = 0; i < count; i++)
        {
            groups[i] = BinaryPrimitives.ReadInt16BigEndian(value[(8 + (2 * i))..]);
        }

        int Group(int i) => i >= 0 && i < count ? groups[i] : 0;

        var text = new StringBuilder();
        if (sign == NumericNegative)
        {
            text.Append('-');
        }

        if (weight < 0)
        {
            text.Append('0');
        }

        for (var i = 0; i <= weight; i++)
        {
            text.Append(Group(i).ToString(i == 0 ? "D" : "D4", CultureInfo.InvariantCulture));
        }

        if (scale > 0)
        {
            var fraction = new StringBuilder();
            for (var i = weight + 1; fraction.Length < scale; i++)
            {
                fraction.Append(Group(i).ToString("D4", CultureInfo.InvariantCulture));
            }

            text.Append('.').Append(fraction.ToString(0, scale));
        }

        return text.ToString();
    }

    /// <summary>An interval as interval_out writes it with the default IntervalStyle (postgres): "1 year 2 mons -3 days +04:05:06.5".</summary>
    public static string Interval(NpgsqlInterval value)
    {
        var text = new StringBuilder();
        var before = false; // the last part written was negative: a positive one after it gets a '+'
        void Part(int amount, string unit)
        {
            if (amount == 0)
            {
                return;
            }

            text.Append(text.Length > 0 ? " " : string.Empty)
                .Append(before && amount > 0 ? "+" : string.Empty)
                .Append(amount.ToString(CultureInfo.InvariantCulture)).Append(' ').Append(unit).Append(amount != 1 ? "s" : string.Empty);
            before = amount < 0;
        }

        Part(value.Months / 12, "year");
        Part(value.Months % 12, "mon");
        Part(value.Days, "day");

        var micros = value.Time;
        if (text.Length == 0 || micros != 0)
        {
            var negative = micros < 0;
            var magnitude = (ulong)Math.Abs(micros);
            var hours = magnitude / 3_600_000_000UL;
            var minutes = magnitude / 60_000_000UL % 60;
            var seconds = magnitude / 1_000_000UL % 60;
            var fraction = magnitude % 1_000_000UL;
            text.Append(text.Length > 0 ? " " : string.Empty)
                .Append(negative ? "-" : before ? "+" : string.Empty)
                .Append(CultureInfo.InvariantCulture, $"{hours:00}:{minutes:00}:{seconds:00}");
            if (fraction != 0)
            {
                text.Append('.').Append(fraction.ToString("D6", CultureInfo.InvariantCulture).TrimEnd('0'));
            }
        }

        return text.ToString();
    }
}
