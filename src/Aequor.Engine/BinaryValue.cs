using Npgsql;

namespace Aequor.Engine;

/// <summary>A column's value as the server sent it in binary, for the readers that render a type's text themselves.</summary>
internal static class BinaryValue
{
    public static byte[] Of(NpgsqlDataReader reader, int ordinal)
    {
        using var stream = reader.GetStream(ordinal);
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }
}
