using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using Npgsql;
using NpgsqlTypes;

namespace Aequor.Engine;

/// <summary>
/// date, time, timetz, inet, cidr, macaddr and macaddr8 as a script expects them, never losing a value: date is a
/// DateTime (midnight, Kind Unspecified: PowerShell compares and formats it like Get-Date's, not so DateOnly),
/// time a TimeSpan, and the rest the server's text — timetz because no .NET type holds a time of day with an
/// offset, inet and cidr because an IPAddress drops the prefix length (1.2.3.4/24 read as 1.2.3.4), the MAC
/// addresses because their text is what a script compares and prints (PhysicalAddress prints no separators).
/// </summary>
internal static class PostgresDatesAndAddresses
{
    /// <summary>The value to hand out for <paramref name="value"/> (Npgsql's reading), or null when it is not one of these.</summary>
    public static object? Read(NpgsqlDataReader reader, int ordinal, object value)
    {
        var element = value is Array a ? a.GetType().GetElementType()! : value.GetType();
        element = Nullable.GetUnderlyingType(element) ?? element;
        if (element == typeof(DateOnly))
        {
            // Again as DateTime, not converted: Npgsql reads ±infinity as DateOnly's ends, which a real
            // 0001-01-01 or 9999-12-31 also is; as DateTime they are DateTime's ends, as for timestamp.
            return value is Array array ? ReadArray<DateTime>(reader, ordinal, array) : (object)reader.GetFieldValue<DateTime>(ordinal);
        }

        if (element == typeof(TimeOnly))
        {
            return Map(value, v => ((TimeOnly)v).ToTimeSpan());
        }

        if (element == typeof(DateTimeOffset) && reader.GetDataTypeName(ordinal).StartsWith("time with", StringComparison.Ordinal))
        {
            return PostgresTimeWithZone.Read(reader, ordinal);
        }

        if (element == typeof(IPAddress))
        {
            // Npgsql's IPAddress of an inet has no prefix length: read again with it.
            var again = value is Array array ? ReadArray<NpgsqlInet>(reader, ordinal, array) : (object)reader.GetFieldValue<NpgsqlInet>(ordinal);
            return Texts(again, v => Inet((NpgsqlInet)v, cidr: false));
        }

        if (element == typeof(NpgsqlInet))
        {
            return Texts(value, v => Inet((NpgsqlInet)v, cidr: false));
        }

        if (element == typeof(IPNetwork))
        {
            return Texts(value, v => Inet(new NpgsqlInet(((IPNetwork)v).BaseAddress, (byte)((IPNetwork)v).PrefixLength), cidr: true));
        }

        if (element == typeof(PhysicalAddress))
        {
            return Texts(value, v => string.Join(':', ((PhysicalAddress)v).GetAddressBytes().Select(b => b.ToString("x2", CultureInfo.InvariantCulture))));
        }

        return null;
    }

    /// <summary>Whether the column is an inet (false) or an inet[] (true); null when neither. Once per result set.</summary>
    public static bool? IsInet(Type fieldType, NpgsqlDataReader reader, int ordinal) =>
        fieldType == typeof(IPAddress) && reader.GetDataTypeName(ordinal) == "inet" ? false
        : fieldType == typeof(Array) && reader.GetDataTypeName(ordinal) == "inet[]" ? true
        : null;

    /// <summary>
    /// An inet, or a one-dimensional inet[], read once as what <see cref="Read"/> gives for it (GetValue's IPAddress
    /// would need a second read for the prefix length); false for an array of more dimensions, which takes that path.
    /// </summary>
    public static bool TryReadInet(NpgsqlDataReader reader, int ordinal, bool array, out object? value)
    {
        if (!array)
        {
            value = reader.GetFieldValue<NpgsqlInet?>(ordinal) is { } inet ? Inet(inet, cidr: false) : null;
            return true;
        }

        value = null;
        if (reader.IsDBNull(ordinal))
        {
            return true;
        }

        NpgsqlInet?[] values;
        try
        {
            values = reader.GetFieldValue<NpgsqlInet?[]>(ordinal);
        }
        catch (InvalidCastException)
        {
            // Npgsql reads a row's value again after a failed attempt: the caller's general path still has it.
            return false;
        }

        var texts = new string?[values.Length];
        for (var i = 0; i < texts.Length; i++)
        {
            texts[i] = values[i] is { } inet ? Inet(inet, cidr: false) : null;
        }

        value = texts;
        return true;
    }

    /// <summary>inet_out: the address, then /bits — for inet only when the prefix is shorter than the address.</summary>
    private static string Inet(NpgsqlInet value, bool cidr)
    {
        var bits = value.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128;
        var address = value.Address.ToString();
        return cidr || value.Netmask != bits ? $"{address}/{value.Netmask}" : address;
    }

    private static object Texts(object value, Func<object, string> text) => value is Array array
        ? ArrayShapes.Reshape(array, typeof(string), v => v is null ? null : text(v))
        : text(value);

    private static object Map<T>(object value, Func<object, T> map) where T : struct => value is Array array
        ? ArrayShapes.Reshape(array, typeof(T), v => v is null ? null : map(v))
        : map(value);

    /// <summary>The array of <typeparamref name="T"/>? Npgsql reads for the column, in <paramref name="shape"/>'s rank.</summary>
    private static Array ReadArray<T>(NpgsqlDataReader reader, int ordinal, Array shape) where T : struct
    {
        var type = typeof(T?).MakeArrayType(shape.Rank);
        if (shape.Rank == 1)
        {
            type = typeof(T?[]);
        }

        var read = (Array)FieldValue.MakeGenericMethod(type).Invoke(reader, [ordinal])!;
        return ArrayShapes.Reshape(read, typeof(T), v => v);
    }

    private static readonly System.Reflection.MethodInfo FieldValue =
        typeof(NpgsqlDataReader).GetMethod(nameof(NpgsqlDataReader.GetFieldValue), [typeof(int)])!;
}
