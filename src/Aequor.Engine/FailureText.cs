using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// How a failure reads inside one of Aequor's messages: the server's SQLSTATE and text, or the message with the
/// transport's own cause after it ("Failed to connect to 127.0.0.1:5432 (Connection refused)"). Never Npgsql's
/// type names: they live in the module's private load context, so no script can name or catch them, and
/// Npgsql's "Failed to connect" alone does not say whether the port was closed, the name unknown or the
/// network silent.
/// </summary>
public static class FailureText
{
    public static string Describe(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        if (exception is PostgresException pg)
        {
            return $"{pg.SqlState}: {pg.MessageText}";
        }

        var text = Trimmed(exception.Message);
        if (exception is not NpgsqlException)
        {
            // A runtime type (TimeoutException, IOException) says something a script can act on, and can name.
            text = $"{exception.GetType().Name}: {text}";
        }

        var root = exception;
        while (root.InnerException is { } inner)
        {
            root = inner;
        }

        var cause = Trimmed(root.Message);
        return root == exception || cause.Length == 0 || text.Contains(cause, StringComparison.Ordinal) ? text : $"{text} ({cause})";
    }

    // The message is followed by the caller's own full stop.
    private static string Trimmed(string message) => message.Trim().TrimEnd('.');
}
