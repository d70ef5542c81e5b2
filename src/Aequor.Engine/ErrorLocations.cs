using System.Reflection;
using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// Turns the server's error POSITION, which counts characters of the one statement it received, into a line and
/// column of the caller's whole text. Npgsql splits a text at its semicolons and sends each statement alone, with
/// leading blanks trimmed and every @name rewritten as $n; which statement failed only its reader knows.
/// </summary>
public static class ErrorLocations
{
    private const string DataKey = "Aequor.ErrorLocation";

    /// <summary>Where the server error in <paramref name="exception"/>'s chain arose in the text it was sent for, or null.</summary>
    public static ErrorLocation? Of(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e.Data[DataKey] is ErrorLocation location)
            {
                return location;
            }
        }

        return null;
    }

    /// <summary>Notes on a failed statement's server error where it arose; a failure without one is left alone.</summary>
    internal static void Remember(Exception failure, string text, NpgsqlDataReader? reader, NpgsqlConnection? connection)
    {
        try
        {
            if (ServerErrors.PostgresErrorOf(failure) is not { } pg || pg.Data.Contains(DataKey))
            {
                return;
            }

            var statements = Statements(text);
            var index = FailedStatementOf(reader ?? DataReaderOf(connection), statements);
            if (Locate(text, statements, index, pg.Position > 0 ? pg.Position : null) is { } location)
            {
                pg.Data[DataKey] = location;
            }
        }
        catch (Exception ex) when (ex is TargetInvocationException or InvalidOperationException or NotSupportedException)
        {
            // Only the message is poorer for it.
        }
    }

    /// <summary>
    /// The location for <paramref name="position"/> (1-based, in the statement as sent) in statement
    /// <paramref name="statementIndex"/> (0-based, among the statements as Npgsql sends them, empty ones included; null:
    /// unknown, which only a text of one statement survives). The statement is named among those that hold code.
    /// </summary>
    public static ErrorLocation? Locate(string text, int? statementIndex, int? position)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Locate(text, Statements(text), statementIndex, position);
    }

    private static ErrorLocation? Locate(string text, List<Statement> statements, int? statementIndex, int? position)
    {
        var withCode = statements.Count(s => s.HasCode);
        var index = statementIndex ?? (withCode == 1 ? statements.FindIndex(s => s.HasCode) : -1);
        if (index < 0 || index >= statements.Count || !statements[index].HasCode)
        {
            return null;
        }

        var (start, end, _) = statements[index];
        var number = statements.Take(index + 1).Count(s => s.HasCode);
        var at = start;
        int? column = null;
        if (position is { } p && UserOffset(text, start, end, p) is { } offset)
        {
            at = offset;
            column = 0;
        }

        var lineStart = text.LastIndexOf('\n', Math.Max(at - 1, 0)) is var nl && nl >= 0 && nl < at ? nl + 1 : 0;
        var line = 1 + text.AsSpan(0, lineStart).Count('\n');
        var lineEnd = text.IndexOf('\n', at);
        var lineText = text[lineStart..(lineEnd < 0 ? text.Length : lineEnd)].TrimEnd('\r');
        if (column is not null)
        {
            column = 1 + CodePoints(text, lineStart, at);
        }

        return new ErrorLocation(line, column, number, withCode, lineText);
    }

    /// <summary>
    /// The statements as Npgsql sends them, from their first non-blank character to their semicolon: every ';' ends
    /// one, empty or only a comment as it may be (the server answers those with an empty response), and what follows
    /// the last ';' is one more unless it is blank. <see cref="Statement.HasCode"/>: more than blanks and comments.
    /// </summary>
    private static List<Statement> Statements(string text)
    {
        var statements = new List<Statement>();
        var start = 0;
        for (var i = 0; i <= text.Length; i++)
        {
            if (i < text.Length)
            {
                var skipped = StatementShape.SkipNonCode(text, i);
                if (skipped < 0)
                {
                    i = text.Length - 1;
                    continue;
                }

                if (skipped != i)
                {
                    i = skipped - 1;
                    continue;
                }
            }

            if (i == text.Length || text[i] == ';')
            {
                var first = start;
                while (first < i && char.IsWhiteSpace(text[first]))
                {
                    first++;
                }

                if (first < i || i < text.Length)
                {
                    var code = StatementShape.SkipBlank(text, first);
                    statements.Add(new Statement(first, i, code >= 0 && code < i));
                }

                start = i + 1;
            }
        }

        return statements;
    }

    /// <summary>
    /// The offset in the caller's text of the <paramref name="position"/>-th character of the statement as sent:
    /// every @name outside quotes and comments was sent as $n (numbered in order of first use), and the server
    /// counts characters, so a pair of UTF-16 surrogates is one.
    /// </summary>
    private static int? UserOffset(string text, int start, int end, int position)
    {
        var names = new List<string>();
        var sent = 1;
        var i = start;
        while (i < end)
        {
            if (sent >= position)
            {
                return i;
            }

            var skipped = StatementShape.SkipNonCode(text, i);
            if (skipped > i)
            {
                // Quoted text and comments go as they are: count their characters one by one.
                for (; i < skipped && sent < position; i += char.IsHighSurrogate(text[i]) && i + 1 < skipped ? 2 : 1)
                {
                    sent++;
                }

                continue;
            }

            if (skipped < 0)
            {
                return null;
            }

            if (text[i] == '@' && (i == 0 || !StatementShape.IsIdentifierChar(text[i - 1])) && i + 1 < end && StatementShape.IsIdentifierChar(text[i + 1]) && !char.IsAsciiDigit(text[i + 1]))
            {
                var nameEnd = i + 1;
                while (nameEnd < end && StatementShape.IsIdentifierChar(text[nameEnd]))
                {
                    nameEnd++;
                }

                var name = text[(i + 1)..nameEnd];
                var number = names.IndexOf(name);
                if (number < 0)
                {
                    names.Add(name);
                    number = names.Count - 1;
                }

                var sentLength = 1 + (number + 1).ToString(System.Globalization.CultureInfo.InvariantCulture).Length;
                if (position < sent + sentLength)
                {
                    return i;
                }

                sent += sentLength;
                i = nameEnd;
                continue;
            }

            sent++;
            i += char.IsHighSurrogate(text[i]) && i + 1 < end ? 2 : 1;
        }

        // Just past the end: "syntax error at end of input".
        return sent >= position ? Math.Min(i, text.Length) : null;
    }

    private static int CodePoints(string text, int from, int to)
    {
        var count = 0;
        for (var i = from; i < to; i += char.IsHighSurrogate(text[i]) && i + 1 < to ? 2 : 1)
        {
            count++;
        }

        return count;
    }

    /// <summary>
    /// Which of the text's statements failed: the first of the reader's statements without a CommandComplete
    /// (its type still Unknown), counted among the last ones — the client's probe or renewal may precede them.
    /// </summary>
    private static int? FailedStatementOf(NpgsqlDataReader? reader, List<Statement> statements)
    {
        if (reader is null || StatementsField?.GetValue(reader) is not List<NpgsqlBatchCommand> sent || sent.Count < statements.Count)
        {
            return null;
        }

        var prefix = sent.Count - statements.Count;
        for (var k = 0; k < sent.Count; k++)
        {
            if (sent[k].StatementType != StatementType.Unknown)
            {
                continue;
            }

            // Before the caller's: the client's own probe or renewal failed, no statement of the caller's to name. An
            // empty or comment-only statement gets no CommandComplete either, and fails nothing.
            if (k < prefix)
            {
                return null;
            }

            if (statements[k - prefix].HasCode)
            {
                return k - prefix;
            }
        }

        return null;
    }

    private readonly record struct Statement(int Start, int End, bool HasCode);

    private static NpgsqlDataReader? DataReaderOf(NpgsqlConnection? connection)
    {
        var connector = connection is null ? null : NpgsqlConnector.Of(connection);
        return connector is null ? null : DataReaderMember(connector.GetType()) switch
        {
            PropertyInfo property => property.GetValue(connector) as NpgsqlDataReader,
            FieldInfo field => field.GetValue(connector) as NpgsqlDataReader,
            _ => null,
        };
    }

    // Npgsql says which of a command's statements failed nowhere public (PostgresException.BatchCommand stays null
    // for a command's own statements), but its reader keeps them, each with its CommandComplete. Read by reflection;
    // without it, only a text of one statement is located (see Locate).
    private const BindingFlags Internal = NpgsqlConnector.Members;

    private static readonly FieldInfo? StatementsField = typeof(NpgsqlDataReader).GetField("_statements", Internal);

    private static MemberInfo? DataReaderMember(Type connector) =>
        (MemberInfo?)connector.GetProperty("DataReader", Internal) ?? connector.GetField("DataReader", Internal);
}
