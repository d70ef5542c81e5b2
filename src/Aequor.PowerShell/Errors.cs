using System.Data.Common;
using System.Management.Automation;
using System.Runtime.Loader;

namespace Aequor.PowerShell;

/// <summary>An error of the module: a readable message (secrets removed) and, for a server error, its SQLSTATE.</summary>
public sealed class AequorException : Exception
{
    public AequorException()
    {
    }

    public AequorException(string message) : base(message)
    {
    }

    public AequorException(string message, Exception? innerException) : base(message, innerException)
    {
    }

    /// <summary>The PostgreSQL error code (e.g. 53300, 28P01), when the server gave one.</summary>
    public string? SqlState { get; init; }

    /// <summary>The server's DETAIL; null unless the connection string has Include Error Detail=true (Npgsql withholds it: it may hold row values).</summary>
    public string? Detail { get; init; }

    /// <summary>The server's HINT.</summary>
    public string? Hint { get; init; }

    /// <summary>Where in the statement text (1-based character) the server found the error.</summary>
    public int? Position { get; init; }

    /// <summary>The server's context of the error (PL/pgSQL function and line).</summary>
    public string? Where { get; init; }

    public string? SchemaName { get; init; }

    public string? TableName { get; init; }

    public string? ColumnName { get; init; }

    /// <summary>The constraint that failed (a unique, foreign-key or check violation).</summary>
    public string? ConstraintName { get; init; }

    /// <summary>The line of the query text (or file) where the server found the error, when it is known.</summary>
    public int? Line { get; init; }

    /// <summary>The column (in characters) on <see cref="Line"/>, when the server named a position.</summary>
    public int? Column { get; init; }

    /// <summary>Which of the text's statements failed (1-based), when it is known.</summary>
    public int? Statement { get; init; }
}

/// <summary>Builds ErrorRecords with stable ids; every message passes through the session's redactor.</summary>
internal static partial class Errors
{
    // The engine and Npgsql live in the module's private load context: their exceptions are types no script
    // can name (a user's own [Npgsql.PostgresException] is another type), and STYLE keeps them off the cmdlets' surface.
    private static readonly AssemblyLoadContext? EngineContext = AssemblyLoadContext.GetLoadContext(typeof(Aequor.Engine.ServerErrors).Assembly);

    public static ErrorRecord Create(string errorId, ErrorCategory category, string message, object? target, Exception? inner = null, string? sqlState = null) =>
        new(new AequorException(message, inner) { SqlState = sqlState }, errorId, category, target);

    /// <summary>
    /// Maps an engine failure to an ErrorRecord. <paramref name="what"/> says what failed ("Could not
    /// connect session 'default'"); the exception's message follows, with every secret replaced.
    /// </summary>
    public static ErrorRecord FromException(Exception ex, string errorId, ErrorCategory category, string what, object? target, Redactor redactor, string? advice = null, string? sourceFile = null)
    {
        ArgumentNullException.ThrowIfNull(ex);
        if (ex is AggregateException { InnerExceptions.Count: 1 } aggregate)
        {
            ex = aggregate.InnerExceptions[0];
        }

        var sqlState = FindSqlState(ex);
        var typeName = ex.GetType().Name;
        if (typeName.Contains("OutcomeUnknown", StringComparison.Ordinal))
        {
            errorId = ErrorIds.QueryOutcomeUnknown;
            category = ErrorCategory.OperationStopped;
        }
        else if (typeName.Contains("TransactionLost", StringComparison.Ordinal))
        {
            errorId = ErrorIds.TransactionLost;
            category = ErrorCategory.ConnectionError;
        }
        else if (typeName.Contains("ConnectFailed", StringComparison.Ordinal))
        {
            errorId = ErrorIds.ConnectFailed;
            category = sqlState is null ? ErrorCategory.ConnectionError : CategoryOf(sqlState, ErrorCategory.ConnectionError);
        }
        else if (ex is Aequor.Engine.AequorSessionStateLostException)
        {
            // A reconnect lost a session advisory lock: the statement was not sent; the session works for the next one.
            errorId = ErrorIds.SessionStateLost;
            category = ErrorCategory.ConnectionError;
        }
        else if (ex is Aequor.Engine.AequorHeartbeatException)
        {
            // -HeartbeatErrorMode Throw: the statement was not sent, so a script may simply run it again.
            errorId = ErrorIds.HeartbeatFailed;
            category = ErrorCategory.ResourceUnavailable;
        }
        else if (ex is Aequor.Engine.AequorCommandTimeoutException)
        {
            // The same ErrorId as any failed query (scripts match on it); the category tells a timeout apart.
            category = ErrorCategory.OperationTimeout;
        }
        else if (ex is Aequor.Engine.AequorConfigurationException)
        {
            errorId = ErrorIds.InvalidParameter;
            category = ErrorCategory.InvalidArgument;
        }
        else if (ex is ObjectDisposedException)
        {
            errorId = ErrorIds.SessionClosed;
            category = ErrorCategory.ResourceUnavailable;
        }
        else if (sqlState is not null)
        {
            category = CategoryOf(sqlState, category);
        }
        else if (ex is TimeoutException)
        {
            category = ErrorCategory.OperationTimeout;
        }

        var location = Aequor.Engine.ErrorLocations.Of(ex);
        var message0 = location?.Column is null ? ex.Message : StatementPosition().Replace(ex.Message, string.Empty);
        var detail = redactor.Redact(message0);
        var inner = PublicPartOf(ex, redactor);
        var oneLine = OneLine(detail);
        if (location is not null)
        {
            detail += Environment.NewLine + LocationText(location, sourceFile, redactor);
            var where = WhereText(location, sourceFile, redactor) + NearText(location, redactor, oneLine);
            oneLine += oneLine.EndsWith('.') ? $" {char.ToUpperInvariant(where[0])}{where[1..]}." : $", {where}";
        }

        // What psql shows too: the server's advice ("You might need to add explicit type casts.").
        if (Aequor.Engine.ServerErrors.HintOf(ex) is { } hint)
        {
            detail += $"{Environment.NewLine}HINT: {redactor.Redact(hint)}";
            oneLine += $" HINT: {OneLine(redactor.Redact(hint))}";
        }

        if (advice is not null)
        {
            detail += $"{Environment.NewLine}{advice}";
            oneLine += $" {OneLine(advice)}";
        }

        var message = string.IsNullOrEmpty(what) ? detail : $"{what}: {detail}";
        var facts = Aequor.Engine.ServerErrors.FactsOf(ex);
        var exception = new AequorException(message, inner)
        {
            SqlState = sqlState,
            Detail = Redact(facts?.Detail),
            Hint = Redact(facts?.Hint),
            Position = facts?.Position,
            Where = Redact(facts?.Where),
            SchemaName = facts?.SchemaName,
            TableName = facts?.TableName,
            ColumnName = facts?.ColumnName,
            ConstraintName = facts?.ConstraintName,
            Line = location?.Line,
            Column = location?.Column,
            Statement = location?.Statement,
        };
        var record = new ErrorRecord(exception, errorId, category, target);
        if (detail.Contains('\n', StringComparison.Ordinal))
        {
            // PowerShell's default view (ConciseView) joins a message's lines when the command ran from a script, and
            // psql's caret then points at nothing: what is shown (and "$_") is one line naming the word at the column,
            // while the exception keeps psql's layout for Get-Error and $_.Exception.Message.
            record.ErrorDetails = new ErrorDetails(string.IsNullOrEmpty(what) ? oneLine : $"{what}: {oneLine}");
        }

        return record;

        string? Redact(string? text) => text is null ? null : redactor.Redact(text);
    }

    /// <summary>A message's lines joined into one, blank ones dropped (Npgsql puts one before DETAIL).</summary>
    private static string OneLine(string text) =>
        string.Join(' ', text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    /// <summary>"in statement 2 of 3, at line 4, column 5 of file 'x.sql'": the numbers of <see cref="LocationText"/>.</summary>
    private static string WhereText(Aequor.Engine.ErrorLocation location, string? sourceFile, Redactor redactor)
    {
        var where = location.StatementCount > 1 ? $"in statement {location.Statement} of {location.StatementCount}, " : string.Empty;
        where += location.Column is { } column ? $"at line {location.Line}, column {column}" : $"at line {location.Line}";
        return where + (sourceFile is null ? string.Empty : $" of file '{redactor.Redact(sourceFile)}'");
    }

    /// <summary>
    /// What stands at the column (", near "nosuch""): the caret's word for a one-line message. Nothing when the server
    /// already said it ("syntax error at or near …"), when no column is known, or when the line held a secret.
    /// </summary>
    private static string NearText(Aequor.Engine.ErrorLocation location, Redactor redactor, string message)
    {
        if (location.Column is not { } column || message.Contains("at or near \"", StringComparison.Ordinal)
            || redactor.Redact(location.LineText) != location.LineText)
        {
            return string.Empty;
        }

        var token = TokenAt(location.LineText, column);
        return token.Length == 0 ? string.Empty : $", near \"{token}\"";
    }

    /// <summary>The word, number, quoted name or literal, or operator that starts at a 1-based column (columns count characters as the server does).</summary>
    internal static string TokenAt(string line, int column)
    {
        var start = 0;
        for (var count = 1; start < line.Length && count < column; count++)
        {
            start += char.IsHighSurrogate(line[start]) && start + 1 < line.Length ? 2 : 1;
        }

        if (start >= line.Length || char.IsWhiteSpace(line[start]))
        {
            return string.Empty;
        }

        var first = line[start];
        var end = start + 1;
        if (first is '"' or '\'')
        {
            while (end < line.Length && line[end] != first)
            {
                end++;
            }

            end = Math.Min(line.Length, end + 1);
        }
        else if (char.IsLetterOrDigit(first) || first is '_' || char.IsSurrogate(first)
            || (first is '@' or '$' && end < line.Length && (char.IsLetterOrDigit(line[end]) || line[end] is '_')))
        {
            // A word, a number, or a placeholder (@name, $1).
            while (end < line.Length && (char.IsLetterOrDigit(line[end]) || line[end] is '_' or '$' or '.' || char.IsSurrogate(line[end])))
            {
                end++;
            }
        }
        else
        {
            while (end < line.Length && "+-*/<>=~!@#%^&|`?:".Contains(line[end], StringComparison.Ordinal))
            {
                end++;
            }
        }

        const int MaxToken = 40;
        var token = line[start..end];
        if (token.Length > MaxToken)
        {
            var cut = char.IsHighSurrogate(token[MaxToken - 1]) ? MaxToken - 1 : MaxToken;
            token = string.Concat(token.AsSpan(0, cut), "\u2026");
        }

        return token;
    }

    /// <summary>
    /// Where the error arose, as psql shows it: "at line 3, column 5" (which statement, when the text holds
    /// several), then the line and a caret under the column; a long line is not quoted.
    /// </summary>
    private static string LocationText(Aequor.Engine.ErrorLocation location, string? sourceFile, Redactor redactor)
    {
        var where = WhereText(location, sourceFile, redactor);
        var line = redactor.Redact(location.LineText);
        if (line.Length > MaxQuotedLine || line != location.LineText)
        {
            return where;
        }

        var prefix = $"LINE {location.Line}: ";
        var text = $"{where}{Environment.NewLine}{prefix}{line}";
        if (location.Column is { } at)
        {
            // Under the column: tabs stay tabs so the caret lines up; a surrogate pair is one column but two chars.
            var pad = new System.Text.StringBuilder(new string(' ', prefix.Length));
            var count = 1;
            for (var i = 0; i < line.Length && count < at; i += char.IsHighSurrogate(line[i]) && i + 1 < line.Length ? 2 : 1, count++)
            {
                pad.Append(line[i] == '\t' ? '\t' : ' ');
            }

            text += $"{Environment.NewLine}{pad}^";
        }

        return text;
    }

    private const int MaxQuotedLine = 200;

    // Npgsql's message ends with the server's POSITION, counted in the one statement it sent: the line and column
    // replace it, as they count in the caller's text.
    [System.Text.RegularExpressions.GeneratedRegex(@"(\r?\n)+POSITION: \d+")]
    private static partial System.Text.RegularExpressions.Regex StatementPosition();

    /// <summary>
    /// The deepest part of the chain made only of types a script can name (the runtime's: a SocketException
    /// under a failed connect), and only when no message in it held a secret: $Error must never hold one.
    /// </summary>
    private static Exception? PublicPartOf(Exception ex, Redactor redactor)
    {
        Exception? part = null;
        for (var e = ex; e is not null; e = e.InnerException)
        {
            var isPrivate = EngineContext is not null && EngineContext != AssemblyLoadContext.Default
                && AssemblyLoadContext.GetLoadContext(e.GetType().Assembly) == EngineContext;
            part = isPrivate ? null : part ?? e;
        }

        for (var e = part; e is not null; e = e.InnerException)
        {
            if (redactor.Redact(e.Message) != e.Message)
            {
                return null;
            }
        }

        return part;
    }

    private static string? FindSqlState(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is DbException { SqlState: { Length: > 0 } state })
            {
                return state;
            }
        }

        return null;
    }

    private static ErrorCategory CategoryOf(string sqlState, ErrorCategory fallback) => sqlState[..2] switch
    {
        "08" => ErrorCategory.ConnectionError,
        "28" => ErrorCategory.AuthenticationError,
        "42" when sqlState == "42501" => ErrorCategory.PermissionDenied,
        "42" => ErrorCategory.InvalidArgument,
        "22" or "23" => ErrorCategory.InvalidData,
        "53" => ErrorCategory.ResourceUnavailable,
        "57" when sqlState == "57014" => ErrorCategory.OperationStopped,
        "40" => ErrorCategory.DeadlockDetected,
        _ => fallback,
    };
}
