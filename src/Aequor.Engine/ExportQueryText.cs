namespace Aequor.Engine;

/// <summary>
/// The query of an export, checked before it goes into <c>COPY (query) TO STDOUT</c>: one SELECT, VALUES, WITH or
/// TABLE statement with no placeholders. A COPY takes no bound values (the server would answer "there is no
/// parameter $1"), and a second statement after a ';' would be a syntax error the user could not place.
/// </summary>
public static class ExportQueryText
{
    private static readonly string[] Readers = ["SELECT", "VALUES", "WITH", "TABLE"];

    /// <summary>Why the query cannot be exported, or null when it can.</summary>
    public static string? Refusal(string query)
    {
        ArgumentNullException.ThrowIfNull(query);
        var start = StatementShape.SkipBlank(query, 0);
        while (start >= 0 && query[start] == '(')
        {
            start = StatementShape.SkipBlank(query, start + 1);
        }

        if (start < 0)
        {
            return "The query is empty. Nothing was exported.";
        }

        var end = start;
        while (end < query.Length && StatementShape.IsIdentifierChar(query[end]))
        {
            end++;
        }

        var word = query[start..end].ToUpperInvariant();
        if (word == "COPY")
        {
            return "The query is itself a COPY: give the query inside it (COPY (SELECT …) TO STDOUT → SELECT …); Export-AequorTableData sends the COPY. Nothing was exported.";
        }

        if (Array.IndexOf(Readers, word) < 0)
        {
            return $"An export runs one SELECT, VALUES, WITH or TABLE statement; this query begins with '{(word.Length == 0 ? query[start].ToString() : word)}'. Nothing was exported.";
        }

        return Scan(query);
    }

    /// <summary>The query without the semicolons, blanks and comments that end it: it goes inside COPY ( … ).</summary>
    public static string Body(string query)
    {
        ArgumentNullException.ThrowIfNull(query);
        var i = 0;
        var lastCode = -1;
        while (i < query.Length)
        {
            var next = StatementShape.SkipNonCode(query, i);
            if (next < 0)
            {
                return query;
            }

            if (next != i)
            {
                // A quoted string or identifier is code; a comment is not.
                if (query[i] is not ('-' or '/'))
                {
                    lastCode = next - 1;
                }

                i = next;
                continue;
            }

            if (!char.IsWhiteSpace(query[i]) && query[i] != ';')
            {
                lastCode = i;
            }

            i++;
        }

        return query[..(lastCode + 1)];
    }

    /// <summary>A second statement after a top-level ';', or a placeholder ($1, @name), outside quotes and comments.</summary>
    private static string? Scan(string query)
    {
        var i = 0;
        while (i < query.Length)
        {
            var next = StatementShape.SkipNonCode(query, i);
            if (next < 0)
            {
                return null; // an unclosed quote or comment: the server will say where
            }

            if (next != i)
            {
                i = next;
                continue;
            }

            var c = query[i];
            if (c == ';')
            {
                var rest = StatementShape.SkipBlank(query, i + 1);
                while (rest >= 0 && query[rest] == ';')
                {
                    rest = StatementShape.SkipBlank(query, rest + 1);
                }

                if (rest >= 0)
                {
                    return "The query holds more than one statement (a ';' followed by more): an export runs one SELECT, VALUES, WITH or TABLE statement. Nothing was exported.";
                }

                return null;
            }

            var previous = i > 0 ? query[i - 1] : ' ';
            if (c == '$' && char.IsAsciiDigit(StatementShape.At(query, i + 1)) && !StatementShape.IsIdentifierChar(previous))
            {
                return Placeholder(query, i);
            }

            // @name, as Npgsql reads a named parameter; not the operators @>, <@, @@ or @ followed by a blank.
            if (c == '@' && (char.IsAsciiLetter(StatementShape.At(query, i + 1)) || StatementShape.At(query, i + 1) == '_')
                && !StatementShape.IsIdentifierChar(previous) && previous != '@')
            {
                return Placeholder(query, i);
            }

            i++;
        }

        return null;
    }

    private static string Placeholder(string query, int at)
    {
        var end = at + 1;
        while (end < query.Length && StatementShape.IsIdentifierChar(query[end]))
        {
            end++;
        }

        return $"The query holds the placeholder {query[at..end]}, and a COPY cannot bind values to placeholders. Nothing was exported. Write the value into the query (as a literal, or with format('%L', …)), or put the rows in a temporary table and export that.";
    }
}
