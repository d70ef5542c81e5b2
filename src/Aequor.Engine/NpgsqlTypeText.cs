using System.Globalization;
using System.Text;
using NpgsqlTypes;

namespace Aequor.Engine;

/// <summary>
/// The server's text (what <c>::text</c> gives) for the values Npgsql reads into its own types: ranges and
/// multiranges of integers, numerics and dates, geometric types, tsvector, pg_lsn. They arrive in binary, so
/// Npgsql cannot hand out their text; they are written here as the server's output functions write them, with
/// the default DateStyle (ISO) and extra_float_digits (1: the shortest text that reads back to the same double).
/// </summary>
/// <remarks>
/// Timestamp ranges are read from their microseconds by <see cref="PostgresDateText"/> (Npgsql's DateTime wraps
/// far years round). Deliberately absent, so that they fail naming the column and the cast: a date range bound at
/// DateOnly's ends (Npgsql's reading of ±infinity, indistinguishable from a real 0001-01-01 or 9999-12-31), and
/// anything not tested against the server.
/// </remarks>
internal static class NpgsqlTypeText
{
    /// <summary>The text, or null when this value's text is not known here.</summary>
    /// <param name="dataTypeName">The column's type: tells a multirange from an array of ranges (both T[]).</param>
    public static object? Of(object value, string dataTypeName)
    {
        if (value is not Array array)
        {
            return Single(value);
        }

        if (array.Rank != 1)
        {
            return null;
        }

        var elements = new string?[array.Length];
        for (var i = 0; i < elements.Length; i++)
        {
            if (array.GetValue(i) is { } element && (elements[i] = Single(element)) is null)
            {
                return null;
            }
        }

        return dataTypeName.EndsWith("[]", StringComparison.Ordinal)
            ? elements
            : elements.Contains(null) ? null : "{" + string.Join(',', elements) + "}";
    }

    private static string? Single(object value) => value switch
    {
        NpgsqlRange<int> r => Range(r, b => b.ToString(CultureInfo.InvariantCulture)),
        NpgsqlRange<long> r => Range(r, b => b.ToString(CultureInfo.InvariantCulture)),
        NpgsqlRange<decimal> r => Range(r, b => b.ToString(CultureInfo.InvariantCulture)),
        NpgsqlRange<DateOnly> r => Range(r, b => b == DateOnly.MinValue || b == DateOnly.MaxValue ? null : b.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)),
        NpgsqlPoint p => Point(p),
        NpgsqlLSeg s => $"[{Point(s.Start)},{Point(s.End)}]",
        NpgsqlBox b => $"{Point(b.UpperRight)},{Point(b.LowerLeft)}",
        NpgsqlPath p => (p.Open ? "[" : "(") + string.Join(',', p.Select(Point)) + (p.Open ? "]" : ")"),
        NpgsqlPolygon p => "(" + string.Join(',', p.Select(Point)) + ")",
        NpgsqlLine l => $"{{{Float(l.A)},{Float(l.B)},{Float(l.C)}}}",
        NpgsqlCircle c => $"<({Float(c.X)},{Float(c.Y)}),{Float(c.Radius)}>",
        NpgsqlTsVector or NpgsqlLogSequenceNumber => value.ToString(),
        NpgsqlTid t => string.Create(CultureInfo.InvariantCulture, $"({t.BlockNumber},{t.OffsetNumber})"),
        _ => null,
    };

    /// <summary>range_out: "empty", or the bounds with '[' / '(' and ']' / ')'; an infinite bound is left empty.</summary>
    public static string? Range<T>(NpgsqlRange<T> range, Func<T, string?> bound)
    {
        if (range.IsEmpty)
        {
            return "empty";
        }

        var text = new StringBuilder().Append(range.LowerBoundIsInclusive ? '[' : '(');
        if (!range.LowerBoundInfinite)
        {
            if (bound(range.LowerBound!) is not { } lower)
            {
                return null;
            }

            text.Append(lower);
        }

        text.Append(',');
        if (!range.UpperBoundInfinite)
        {
            if (bound(range.UpperBound!) is not { } upper)
            {
                return null;
            }

            text.Append(upper);
        }

        return text.Append(range.UpperBoundIsInclusive ? ']' : ')').ToString();
    }

    private static string Point(NpgsqlPoint p) => $"({Float(p.X)},{Float(p.Y)})";

    /// <summary>
    /// float8out: the shortest digits that read back to the same double (.NET's "R" finds the same ones), written
    /// as printf's %g would: plain from 1e-4 up to 1e15, else d.ddde+XX.
    /// </summary>
    private static string Float(double value)
    {
        if (!double.IsFinite(value))
        {
            return double.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
        }

        var shortest = value.ToString("R", CultureInfo.InvariantCulture);
        var negative = shortest.StartsWith('-');
        var unsigned = negative ? shortest[1..] : shortest;
        var e = unsigned.IndexOf('E', StringComparison.Ordinal);
        var mantissa = e < 0 ? unsigned : unsigned[..e];
        var exponent = e < 0 ? 0 : int.Parse(unsigned[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        var point = mantissa.IndexOf('.', StringComparison.Ordinal);
        var integerDigits = point < 0 ? mantissa.Length : point;
        var allDigits = mantissa.Replace(".", string.Empty, StringComparison.Ordinal);
        var digits = allDigits.TrimStart('0');
        exponent += integerDigits - 1 - (allDigits.Length - digits.Length); // of the first significant digit
        digits = digits.TrimEnd('0');
        var sign = negative ? "-" : string.Empty;
        if (digits.Length == 0)
        {
            return sign + "0";
        }

        if (exponent is >= -4 and < 15)
        {
            return exponent < 0
                ? sign + "0." + new string('0', -exponent - 1) + digits
                : sign + digits.PadRight(exponent + 1, '0')[..(exponent + 1)]
                    + (digits.Length > exponent + 1 ? "." + digits[(exponent + 1)..] : string.Empty);
        }

        return sign + digits[0] + (digits.Length > 1 ? "." + digits[1..] : string.Empty)
            + "e" + (exponent < 0 ? "-" : "+") + Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture);
    }
}
