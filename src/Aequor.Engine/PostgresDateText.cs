using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Npgsql;
using NpgsqlTypes;

namespace Aequor.Engine;

/// <summary>
/// date, timestamp and timestamptz values beyond DateTime (before year 1, after 9999: the server goes from 4713 BC
/// to 5874897 AD) as the server writes them with DateStyle ISO — what ::text gives, timestamptz in UTC — read from
/// the server's own numbers for them (days, microseconds from 2000-01-01). They arrived in binary, so Npgsql cannot
/// hand out their text, and failing the whole result for one sentinel row ('0001-01-01 BC') helps nobody.
/// Timestamp ranges and multiranges, in any year, likewise (Npgsql's DateTime reading of their bounds wraps far
/// years round), and date ranges with a bound DateOnly cannot hold (±infinity, BC, after 9999). A time of 24:00:00 (which TimeOnly refuses) is the TimeSpan of a day, as every other time is a TimeSpan.
/// </summary>
internal static class PostgresDateText
{
    private const long MicrosPerDay = 86_400_000_000L;
    private const long DaysPer400Years = 146_097;
    private static readonly int Epoch = DateOnly.FromDateTime(new DateTime(2000, 1, 1)).DayNumber;

    /// <summary>The column's value read that way, or null when it is not a date or time column (or an array of one dimension of them).</summary>
    public static object? Read(NpgsqlDataReader reader, int ordinal)
    {
        var name = reader.GetDataTypeName(ordinal);
        var array = name.EndsWith("[]", StringComparison.Ordinal);
        var element = array ? name[..^2] : name;
        return element switch
        {
            "date" => array ? Texts(reader.GetFieldValue<int?[]>(ordinal), Date) : Date(reader.GetFieldValue<int>(ordinal)),
            "timestamp without time zone" => array ? Texts(reader.GetFieldValue<long?[]>(ordinal), m => Timestamp(m, withZone: false)) : Timestamp(reader.GetFieldValue<long>(ordinal), withZone: false),
            "timestamp with time zone" => array ? Texts(reader.GetFieldValue<long?[]>(ordinal), m => Timestamp(m, withZone: true)) : Timestamp(reader.GetFieldValue<long>(ordinal), withZone: true),
            "time without time zone" => array ? reader.GetFieldValue<TimeSpan?[]>(ordinal) : reader.GetFieldValue<TimeSpan>(ordinal),
            "tsrange" or "tstzrange" when array => Array.ConvertAll(reader.GetFieldValue<NpgsqlRange<long>?[]>(ordinal), r => r is { } range ? Range(range, element == "tstzrange") : null),
            "tsrange" or "tstzrange" => Range(reader.GetFieldValue<NpgsqlRange<long>>(ordinal), element == "tstzrange"),
            "daterange" when array => Array.ConvertAll(reader.GetFieldValue<NpgsqlRange<int>?[]>(ordinal), r => r is { } range ? DateRange(range) : null),
            "daterange" => DateRange(reader.GetFieldValue<NpgsqlRange<int>>(ordinal)),
            "datemultirange" when !array => DateMultirange(reader, ordinal),
            "tsmultirange" or "tstzmultirange" when !array =>
                "{" + string.Join(',', reader.GetFieldValue<NpgsqlRange<long>[]>(ordinal).Select(r => Range(r, element == "tstzmultirange"))) + "}",
            _ => null,
        };
    }

    /// <summary>date_out: YYYY-MM-DD (at least four digits of year), " BC" before year 1; ±infinity by name.</summary>
    public static string Date(int days) => days switch
    {
        int.MaxValue => "infinity",
        int.MinValue => "-infinity",
        _ => Civil(days, out var bc).Append(bc ? " BC" : string.Empty).ToString(),
    };

    /// <summary>timestamp_out / timestamptz_out in UTC: the date, HH:MM:SS, a fraction without trailing zeros, +00, then " BC".</summary>
    public static string Timestamp(long micros, bool withZone)
    {
        switch (micros)
        {
            case long.MaxValue:
                return "infinity";
            case long.MinValue:
                return "-infinity";
        }

        var day = Math.DivRem(micros, MicrosPerDay, out var time);
        if (time < 0)
        {
            day--;
            time += MicrosPerDay;
        }

        var text = Civil(day, out var bc).Append(' ');
        var seconds = time / 1_000_000;
        text.Append(CultureInfo.InvariantCulture, $"{seconds / 3600:D2}:{seconds / 60 % 60:D2}:{seconds % 60:D2}");
        if (time % 1_000_000 is var fraction and not 0)
        {
            text.Append('.').Append(fraction.ToString("D6", CultureInfo.InvariantCulture).TrimEnd('0'));
        }

        return text.Append(withZone ? "+00" : string.Empty).Append(bc ? " BC" : string.Empty).ToString();
    }

    /// <summary>range_out: a bound with a space (every timestamp but ±infinity) in double quotes.</summary>
    private static string Range(NpgsqlRange<long> range, bool withZone) =>
        NpgsqlTypeText.Range(range, micros => Timestamp(micros, withZone) is var text && text.Contains(' ', StringComparison.Ordinal) ? $"\"{text}\"" : text)!;

    /// <summary>range_out for dates: a bound with a space (a BC date) in double quotes; a bound at ±infinity by name (DateOnly has none).</summary>
    private static string DateRange(NpgsqlRange<int> range) =>
        NpgsqlTypeText.Range(range, days => Date(days) is var text && text.Contains(' ', StringComparison.Ordinal) ? $"\"{text}\"" : text)!;

    /// <summary>
    /// multirange_out for dates, from multirange_send's bytes (a count, then each range's length and range_send bytes):
    /// Npgsql reads a date multirange only as DateOnly bounds, and no other way without opting in to unmapped types.
    /// </summary>
    private static string DateMultirange(NpgsqlDataReader reader, int ordinal)
    {
        var bytes = BinaryValue.Of(reader, ordinal);
        var count = BinaryPrimitives.ReadInt32BigEndian(bytes);
        var ranges = new string[count];
        var at = 4;
        for (var i = 0; i < count; i++)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(at));
            ranges[i] = DateRange(BinaryDateRange(bytes.AsSpan(at + 4, length)));
            at += 4 + length;
        }

        return "{" + string.Join(',', ranges) + "}";
    }

    /// <summary>range_send's bytes for a daterange: a flags byte, then each finite bound as a length and its days.</summary>
    private static NpgsqlRange<int> BinaryDateRange(ReadOnlySpan<byte> bytes)
    {
        const byte Empty = 0x01, LowerInclusive = 0x02, UpperInclusive = 0x04, LowerInfinite = 0x08, UpperInfinite = 0x10;
        var flags = bytes[0];
        if ((flags & Empty) != 0)
        {
            return NpgsqlRange<int>.Empty;
        }

        var at = 1;
        var lower = 0;
        if ((flags & LowerInfinite) == 0)
        {
            lower = BinaryPrimitives.ReadInt32BigEndian(bytes[(at + 4)..]);
            at += 8;
        }

        var upper = (flags & UpperInfinite) == 0 ? BinaryPrimitives.ReadInt32BigEndian(bytes[(at + 4)..]) : 0;
        return new NpgsqlRange<int>(lower, (flags & LowerInclusive) != 0, (flags & LowerInfinite) != 0, upper, (flags & UpperInclusive) != 0, (flags & UpperInfinite) != 0);
    }

    /// <summary>
    /// The proleptic Gregorian date <paramref name="daysFrom2000"/> days from 2000-01-01. The calendar repeats every
    /// 400 years to the day, so the date is taken from DateOnly's range 400-year cycles away and the cycles are
    /// added back to its year; year 0 is 1 BC, as the server counts (it has no year 0).
    /// </summary>
    private static StringBuilder Civil(long daysFrom2000, out bool bc)
    {
        var cycles = Math.DivRem(daysFrom2000 + Epoch, DaysPer400Years, out var inCycle);
        if (inCycle < 0)
        {
            cycles--;
            inCycle += DaysPer400Years;
        }

        var date = DateOnly.FromDayNumber((int)inCycle);
        var year = date.Year + (cycles * 400);
        bc = year <= 0;
        return new StringBuilder().Append(CultureInfo.InvariantCulture, $"{(bc ? 1 - year : year):D4}-{date.Month:D2}-{date.Day:D2}");
    }

    private static string?[] Texts<T>(T?[] values, Func<T, string> text)
        where T : struct =>
        Array.ConvertAll(values, v => v is { } value ? text(value) : null);
}
