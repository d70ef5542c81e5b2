using Npgsql;

namespace Aequor.Engine;

/// <summary>What a server error carries beyond its message, for callers that cannot see Npgsql's types.</summary>
public static class ServerErrors
{
    private const string RedactedDetailPrefix = "Detail redacted as it may contain sensitive data.";

    /// <summary>The server's HINT for the error in <paramref name="exception"/> or its inner ones, or null.</summary>
    public static string? HintOf(Exception? exception) =>
        PostgresErrorOf(exception) is { Hint: { } hint } && !string.IsNullOrWhiteSpace(hint) ? hint : null;

    /// <summary>The server's message text (no SQLSTATE prefix, no DETAIL) for the error in the chain, or null.</summary>
    public static string? MessageTextOf(Exception? exception) => PostgresErrorOf(exception)?.MessageText;

    /// <summary>What the server said of the error in the chain beyond its SQLSTATE and message, or null when it gave no error.</summary>
    public static ServerErrorFacts? FactsOf(Exception? exception) => PostgresErrorOf(exception) is not { } pg ? null : new ServerErrorFacts
    {
        // Without Include Error Detail, Npgsql puts its advice in the DETAIL's place: no fact of the server's.
        Detail = pg.Detail is { } detail && !detail.StartsWith(RedactedDetailPrefix, StringComparison.Ordinal) ? detail : null,
        Hint = pg.Hint,
        Position = pg.Position > 0 ? pg.Position : null,
        Where = pg.Where,
        SchemaName = pg.SchemaName,
        TableName = pg.TableName,
        ColumnName = pg.ColumnName,
        ConstraintName = pg.ConstraintName,
    };

    /// <summary>The server's error in the chain of inner exceptions (Npgsql wraps it in transport failures), or null.</summary>
    internal static PostgresException? PostgresErrorOf(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is PostgresException pg)
            {
                return pg;
            }
        }

        return null;
    }
}
