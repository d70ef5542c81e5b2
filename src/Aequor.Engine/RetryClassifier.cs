using System.Net.Sockets;
using Npgsql;

namespace Aequor.Engine;

/// <summary>What a failure says about trying again.</summary>
internal enum FailureKind
{
    /// <summary>Not worth another attempt: a SQL error, a bad password, a cancellation, a bug.</summary>
    Permanent,

    /// <summary>The connection or the server went away (class 08, 57P01–57P03, a transport error).</summary>
    ConnectionLost,

    /// <summary>53300: every connection slot is taken.</summary>
    TooManyConnections,

    /// <summary>40001 / 40P01: the server rolled the statement back; retried only when the caller opted in.</summary>
    SerializationFailure,
}

/// <summary>
/// Sorts failures the way pg-aequor does (class 08, 57P01–57P03, 53300, transport errors), except that
/// 40001/40P01 are retried only on request, that a command timeout on a live connection is the caller's
/// own limit, never a reason to run the statement again, and that a server error of those classes sent
/// with severity ERROR is the statement's own failure: the server goes on with the session (a FATAL ends
/// it). PostgreSQL answers a Bind with the wrong number of parameters with ERROR 08P01, and dblink or
/// postgres_fdw report a remote server they could not reach with ERROR 08001 — treated as a lost
/// connection, a healthy session was thrown away and the caller told its statement's outcome was unknown,
/// when the server had rejected it.
/// </summary>
internal static class RetryClassifier
{
    public static FailureKind Classify(Exception exception, bool connecting)
    {
        ArgumentNullException.ThrowIfNull(exception);
        if (exception is OperationCanceledException)
        {
            return FailureKind.Permanent;
        }

        if (exception is PostgresException pg)
        {
            return ClassifyServerError(pg);
        }

        if (exception is NpgsqlException npgsql)
        {
            // Npgsql wraps the transport error; a bare NpgsqlException without one is its own verdict.
            return npgsql.InnerException is { } inner ? ClassifyTransport(inner, connecting) : FailureKind.Permanent;
        }

        return ClassifyTransport(exception, connecting);
    }

    public static FailureKind ClassifySqlState(string? sqlState) => sqlState switch
    {
        null => FailureKind.Permanent,
        "57P01" or "57P02" or "57P03" => FailureKind.ConnectionLost,
        "53300" => FailureKind.TooManyConnections,
        "40001" or "40P01" => FailureKind.SerializationFailure,
        _ when sqlState.StartsWith("08", StringComparison.Ordinal) => FailureKind.ConnectionLost,
        _ => FailureKind.Permanent,
    };

    /// <summary>A server's error: by its SQLSTATE, except that one the session survives never counts as a lost connection.</summary>
    public static FailureKind ClassifyServerError(PostgresException error)
    {
        ArgumentNullException.ThrowIfNull(error);
        var kind = ClassifySqlState(error.SqlState);
        return kind == FailureKind.ConnectionLost && IsStatementError(error) ? FailureKind.Permanent : kind;
    }

    /// <summary>
    /// The server rejected the statement with severity ERROR: it failed and was rolled back, whatever its class,
    /// even where Npgsql drops the connection afterwards (08P01) — its outcome is known.
    /// </summary>
    public static bool IsStatementError(Exception? exception) => exception is PostgresException { InvariantSeverity: "ERROR" };

    /// <summary>
    /// The server ended the session from its idle loop: idle_session_timeout (57P05) or
    /// idle_in_transaction_session_timeout (25P03). PostgreSQL raises these only while it waits for a command, and
    /// one that fires as a command arrives is handled before that command runs (PostgresMain checks for interrupts
    /// before it leaves the idle state): a statement the client sent provably never started, and a transaction
    /// ended this way was rolled back.
    /// </summary>
    public static bool EndedWhileIdle(Exception? exception) =>
        ServerErrors.PostgresErrorOf(exception) is { InvariantSeverity: "FATAL", SqlState: "57P05" or "25P03" };

    private static FailureKind ClassifyTransport(Exception exception, bool connecting) => exception switch
    {
        PostgresException pg => ClassifyServerError(pg),
        SocketException or IOException => FailureKind.ConnectionLost,
        // A connect timeout is the network's; a command timeout is the statement's own limit.
        TimeoutException => connecting ? FailureKind.ConnectionLost : FailureKind.Permanent,
        NpgsqlException { InnerException: { } inner } => ClassifyTransport(inner, connecting),
        _ => FailureKind.Permanent,
    };

    /// <summary>True when the kind may be retried at all (write safety is decided elsewhere).</summary>
    public static bool IsRetryable(FailureKind kind, bool retrySerializationFailures) => kind switch
    {
        FailureKind.ConnectionLost or FailureKind.TooManyConnections => true,
        FailureKind.SerializationFailure => retrySerializationFailures,
        _ => false,
    };

    public static string? SqlStateOf(Exception? exception) => ServerErrors.PostgresErrorOf(exception)?.SqlState;
}
