using System.Reflection;
using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// The row count in the server's answer to a COPY … FROM STDIN that just ended ("COPY 5"): the rows stored, which
/// are fewer than those sent when a BEFORE INSERT trigger skipped some (returned NULL), as INSERT's count is.
/// Npgsql reads that answer as it ends a text COPY and hands no count out (only its binary importer returns one);
/// the message it parsed stays on the connector until the next statement, so it is read there by reflection, as
/// <see cref="ServerCancel"/> reaches the connector: Npgsql is pinned and a test counts a trigger's skipped rows, so
/// a rename fails the build's tests, not a user. Were the member gone, the caller counts the rows sent, as before.
/// </summary>
internal static class CopyCommandRows
{
    private const BindingFlags Internal = NpgsqlConnector.Members;

    private static readonly FieldInfo? CommandComplete = NpgsqlConnector.Type?.GetField("_commandCompleteMessage", Internal);

    private static readonly PropertyInfo? Rows = CommandComplete?.FieldType.GetProperty("Rows", Internal);

    private static readonly PropertyInfo? StatementType = CommandComplete?.FieldType.GetProperty("StatementType", Internal);

    /// <summary>The count of the COPY whose end Npgsql has just read on <paramref name="connection"/>, or null. Never throws.</summary>
    public static long? Of(NpgsqlConnection connection)
    {
        try
        {
            if (NpgsqlConnector.Of(connection) is not { } connector
                || CommandComplete?.GetValue(connector) is not { } message
                || StatementType?.GetValue(message)?.ToString() != "Copy"
                || Rows?.GetValue(message) is not ulong rows)
            {
                return null;
            }

            return rows > long.MaxValue ? null : (long)rows;
        }
#pragma warning disable CA1031 // A count that cannot be read is the rows sent, as before.
        catch (Exception)
#pragma warning restore CA1031
        {
            return null;
        }
    }
}
