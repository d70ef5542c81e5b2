using Npgsql;
using Npgsql.PostgresTypes;

namespace Aequor.Engine;

/// <summary>
/// A column of a type the connection's catalogue does not hold: one created (CREATE TYPE, CREATE DOMAIN, CREATE
/// EXTENSION) after the connection loaded its types — by the session's own migration a statement earlier, or by
/// anyone else. Npgsql reads it not even as text, and names it "-.-". Once the connection reloads its types it
/// reads like any other (an enum as its label), so the client reloads them before its next statement.
/// </summary>
internal static class UnknownTypes
{
    private const uint FirstNormalObjectId = 16384;

    public static bool IsUnknown(NpgsqlDataReader reader, int ordinal)
    {
        try
        {
            // A built-in type Npgsql has no reading for (anyarray in pg_stats) was not created since: its oid is below
            // FirstNormalObjectId, where every type a CREATE makes lies above it.
            return reader.GetPostgresType(ordinal) is UnknownBackendType && reader.GetDataTypeOID(ordinal) >= FirstNormalObjectId;
        }
        catch (Exception ex) when (ex is InvalidOperationException or IndexOutOfRangeException)
        {
            return false;
        }
    }

    public static InvalidCastException Error(NpgsqlDataReader reader, int ordinal, Exception cause)
    {
        var name = reader.GetName(ordinal);
        return new InvalidCastException(
            $"Column {ordinal + 1} ('{name}') is of a type created after this session loaded the database's types (oid {reader.GetDataTypeOID(ordinal)}): " +
            $"the session reloads them before its next statement, so running this one again reads it. Or cast it to text in the query ({name}::text).",
            cause);
    }
}
