using System.Collections;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace Aequor.Engine;

/// <summary>
/// One row in COPY's text format: values separated by tabs, NULL as \N, backslash escapes. The server parses each
/// value by its column's type, so a string "42" lands in an int column, as it would from a CSV file; everything
/// else is written in the invariant culture the server reads, never the caller's (a German 1,5 would be refused).
/// </summary>
public static class CopyRowText
{
    /// <summary>Appends the row and its newline. A value with no text form is refused, naming the row and column; nothing of the row is appended then.</summary>
    /// <param name="rowNumber">1-based, for the message.</param>
    /// <param name="types">The columns' types, when known: an array for a column of no array type is refused.</param>
    public static void Append(StringBuilder line, IReadOnlyList<object?> values, IReadOnlyList<string> columns, long rowNumber, IReadOnlyList<ColumnType>? types = null)
    {
        ArgumentNullException.ThrowIfNull(line);
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(columns);
        var start = line.Length;
        for (var i = 0; i < values.Count; i++)
        {
            if (i > 0)
            {
                line.Append('\t');
            }

            string? text;
            try
            {
                if (types is not null && i < types.Count && !types[i].IsArray && IsArrayLiteral(values[i]))
                {
                    // INSERT refuses text[] for a text column; as COPY text the literal {"a","b"} was stored as the
                    // column's value (text, or an empty array as the jsonb object {}), silently.
                    throw new UnwritableValueException(values[i], $"an array (or list) for a column of type {types[i].Name}, which holds no array: its literal would be stored as that value. Join it into text (-join ', '), pass JSON text for a json or jsonb column (ConvertTo-Json -Compress), or [byte[]] for a bytea.");
                }

                text = Text(values[i]);
            }
            catch (UnwritableValueException ex)
            {
                line.Length = start;
                var column = i < columns.Count ? columns[i] : "?";
                throw new AequorConfigurationException($"Row {rowNumber}, column '{column}': {ex.Message} Nothing was written.");
            }

            if (text is null)
            {
                line.Append("\\N");
            }
            else
            {
                Escape(line, text);
            }
        }

        line.Append('\n');
    }

    /// <summary>Whether <see cref="Text"/> writes the value as an array literal.</summary>
    private static bool IsArrayLiteral(object? value) =>
        value is IEnumerable and not (string or byte[] or char[] or IDictionary)
        && !(value is object?[] { Length: > 0 } items && Array.TrueForAll(items, i => i is byte));

    /// <summary>The value as the server reads it for its column's type; null for NULL.</summary>
    public static string? Text(object? value)
    {
        switch (value)
        {
            case null or DBNull:
                return null;
            case string s:
                if (s.Contains('\0', StringComparison.Ordinal))
                {
                    throw new UnwritableValueException(value, "the text holds a NUL character (\\0), which PostgreSQL text cannot store. Remove it (-replace \"`0\", '').");
                }

                // The COPY stream is encoded to UTF-8 with replacement: half an emoji would be stored as U+FFFD, silently.
                if (AequorStatement.IndexOfUnpairedSurrogate(s) is var lone and >= 0)
                {
                    throw new UnwritableValueException(value, $"the text holds an unpaired UTF-16 surrogate (U+{(int)s[lone]:X4}) at character {lone + 1}, half of a character such as an emoji, which PostgreSQL's UTF-8 text cannot store. Remove or replace it.");
                }

                return s;
            case char c:
                return c == '\0' ? throw new UnwritableValueException(value, "a NUL character, which PostgreSQL text cannot store.")
                    : char.IsSurrogate(c) ? throw new UnwritableValueException(value, $"an unpaired UTF-16 surrogate (U+{(int)c:X4}), half of a character such as an emoji, which PostgreSQL's UTF-8 text cannot store.")
                    : c.ToString();
            // Text, as Npgsql binds a char[] parameter; as an array it was stored as {"a","b"}, in a text column too.
            case char[] chars:
                return Text(new string(chars));
            case bool b:
                // A boolean column reads either spelling; a text column keeps this one, as INSERT's cast writes it.
                return b ? "true" : "false";
            case double d:
                return d.ToString("R", CultureInfo.InvariantCulture);
            case float f:
                return f.ToString("R", CultureInfo.InvariantCulture);
            // DateTime's ends are infinity, as Npgsql writes them as parameters and reads them back: the last tick of
            // 9999 was rounded by the server into the year 10000, which no DateTime holds.
            case DateTime dt when dt == DateTime.MaxValue:
                return "infinity";
            case DateTime dt when dt == DateTime.MinValue:
                return "-infinity";
            case DateTime dt:
                dt = dt.AddTicks(-(dt.Ticks % TimeSpan.TicksPerMicrosecond));
                return dt.Kind == DateTimeKind.Unspecified
                    ? dt.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFF", CultureInfo.InvariantCulture)
                    : WithOffset(dt).ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFzzz", CultureInfo.InvariantCulture);
            case DateTimeOffset dto when dto == DateTimeOffset.MaxValue:
                return "infinity";
            case DateTimeOffset dto when dto == DateTimeOffset.MinValue:
                return "-infinity";
            case DateTimeOffset dto:
                // The server keeps microseconds and rounds a 7th digit (up to the next day, year, or 24:00:00 for a
                // time); Npgsql cuts it, so a value loads as it binds as a parameter.
                return dto.AddTicks(-(dto.Ticks % TimeSpan.TicksPerMicrosecond)).ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFzzz", CultureInfo.InvariantCulture);
            case DateOnly date:
                return date.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
            case TimeOnly time:
                return time.Add(TimeSpan.FromTicks(-(time.Ticks % TimeSpan.TicksPerMicrosecond))).ToString("HH:mm:ss.FFFFFF", CultureInfo.InvariantCulture);
            case TimeSpan span:
                return Duration(span);
            case Guid g:
                return g.ToString("D");
            case byte[] bytes:
                return "\\x" + Convert.ToHexString(bytes).ToLowerInvariant();
            case Enum e:
                return e.ToString();
            case sbyte or byte or short or ushort or int or uint or long or ulong or decimal or BigInteger:
                return ((IFormattable)value).ToString(null, CultureInfo.InvariantCulture);
            case System.Net.IPAddress address:
                return address.ToString();
            case IDictionary:
                throw new UnwritableValueException(value, "a dictionary is no column value. Pass it as JSON text (ConvertTo-Json -Compress) for a json or jsonb column.");
            // Bytes collected from the pipeline (Get-Content -AsByteStream) are an object[]: bytea, as a parameter binds
            // them. As an array literal, a bytea column stored its characters: {"1","2","255"}, 15 bytes for 3.
            case object?[] { Length: > 0 } items when Array.TrueForAll(items, i => i is byte):
                return Text(Array.ConvertAll(items, i => (byte)i!));
            case Array { Rank: > 1 } grid:
                return GridLiteral(grid);
            case IEnumerable items:
                return ArrayLiteral(items, value);
            // As given: Uri.ToString() unescapes (%20 to a space, %E2%82%AC to €), another string than the user's.
            case Uri uri:
                return Text(uri.OriginalString);
            case Version:
                return value.ToString();
            default:
                throw new UnwritableValueException(value, $"a value of type {value.GetType().FullName} has no text form for a column. Pass text, a number, a boolean, a date and time, a uuid, bytes, an array of them, or JSON text (ConvertTo-Json -Compress).");
        }
    }

    /// <summary>
    /// [-]hours:mm:ss.ffffff, after "N days" for a day or more: an interval reads it exactly and keeps the days apart,
    /// as Npgsql binds a parameter (36 hours and 1 day 12 hours are other instants once added across a change of
    /// daylight saving time), and a time column reads one under a day as the time of day, which "N microseconds"
    /// was not. Microseconds are the server's precision.
    /// </summary>
    private static string Duration(TimeSpan span)
    {
        var days = span.Days;
        var micro = (span.Ticks - (days * TimeSpan.TicksPerDay)) / 10;
        var size = (ulong)Math.Abs(micro);
        return string.Create(CultureInfo.InvariantCulture,
            $"{(days != 0 ? $"{days} days " : string.Empty)}{(micro < 0 ? "-" : string.Empty)}{size / 3_600_000_000}:{size / 60_000_000 % 60:00}:{size / 1_000_000 % 60:00}.{size % 1_000_000:000000}");
    }

    /// <summary>A Local or Utc DateTime with its offset; refused when its instant falls outside the years 1 to 9999 in UTC.</summary>
    private static DateTimeOffset WithOffset(DateTime dt)
    {
        try
        {
            return new DateTimeOffset(dt);
        }
        catch (ArgumentOutOfRangeException)
        {
            // A local time in the first or last hours of the calendar: the zone's offset carries it out of DateTime's range.
            var offset = TimeZoneInfo.Local.GetUtcOffset(dt);
            throw new UnwritableValueException(dt, string.Create(CultureInfo.InvariantCulture,
                $"the local time {dt:yyyy-MM-dd HH:mm:ss} (UTC{(offset < TimeSpan.Zero ? "-" : "+")}{offset:hh\\:mm}) is outside the years 1 to 9999 in UTC, where no time can be held. Give it with Kind Unspecified (its wall clock), or [datetime]::MinValue / MaxValue for -infinity / infinity."));
        }
    }

    /// <summary>{a,"b c",NULL}: every element quoted, so commas, braces, quotes and the word NULL stay text.</summary>
    private static string ArrayLiteral(IEnumerable items, object container)
    {
        var literal = new StringBuilder("{");
        var first = true;
        foreach (var item in items)
        {
            if (!first)
            {
                literal.Append(',');
            }

            first = false;
            AppendElement(literal, item, container);
        }

        return literal.Append('}').ToString();
    }

    /// <summary>
    /// An int[,] (any rank above 1) in its shape, {{1,2},{3,4}}: enumerated, it gives its elements one after the
    /// other, which was stored as a flat {1,2,3,4}. With a dimension of length 0 it is empty, as PostgreSQL's are.
    /// </summary>
    private static string GridLiteral(Array grid)
    {
        var lengths = Enumerable.Range(0, grid.Rank).Select(grid.GetLength).ToArray();
        if (lengths.Contains(0))
        {
            return "{}";
        }

        var literal = new StringBuilder();
        var index = new int[grid.Rank];
        void Dimension(int d)
        {
            literal.Append('{');
            for (var i = 0; i < lengths[d]; i++)
            {
                if (i > 0)
                {
                    literal.Append(',');
                }

                index[d] = grid.GetLowerBound(d) + i;
                if (d + 1 < lengths.Length)
                {
                    Dimension(d + 1);
                }
                else
                {
                    AppendElement(literal, grid.GetValue(index), grid);
                }
            }

            literal.Append('}');
        }

        Dimension(0);
        return literal.ToString();
    }

    private static void AppendElement(StringBuilder literal, object? item, object container)
    {
        if (item is Array { Rank: > 1 } grid)
        {
            literal.Append(GridLiteral(grid));
            return;
        }

        if (item is IEnumerable nested and not string and not byte[] and not char[] and not IDictionary)
        {
            literal.Append(ArrayLiteral(nested, container));
            return;
        }

        var element = Text(item);
        if (element is null)
        {
            literal.Append("NULL");
            return;
        }

        literal.Append('"');
        foreach (var ch in element)
        {
            if (ch is '"' or '\\')
            {
                literal.Append('\\');
            }

            literal.Append(ch);
        }

        literal.Append('"');
    }

    private static void Escape(StringBuilder line, string text)
    {
        foreach (var ch in text)
        {
            switch (ch)
            {
                case '\\':
                    line.Append("\\\\");
                    break;
                case '\t':
                    line.Append("\\t");
                    break;
                case '\n':
                    line.Append("\\n");
                    break;
                case '\r':
                    line.Append("\\r");
                    break;
                default:
                    line.Append(ch);
                    break;
            }
        }
    }

#pragma warning disable CA1032, CA1064 // Private: never leaves this class.
    private sealed class UnwritableValueException(object? value, string message) : Exception(message)
    {
        public object? Value { get; } = value;
    }
#pragma warning restore CA1032, CA1064
}
