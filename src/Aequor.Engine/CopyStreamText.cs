namespace Aequor.Engine;

/// <summary>
/// Finds a <c>COPY … FROM STDIN</c> or <c>COPY … TO STDOUT</c> in SQL text. Those need PostgreSQL's COPY
/// sub-protocol, which a statement cannot speak: Npgsql answers the server's CopyInResponse or CopyOutResponse
/// with a NotSupportedException and breaks the connection, so the client reported an unknown outcome (nothing had
/// been copied), replaced the connection and lost the session's state, an open transaction with it. COPY to or
/// from a server file or PROGRAM is a plain statement and is left alone.
/// </summary>
public static class CopyStreamText
{
    /// <summary>Why the text cannot be sent, or null when it holds no COPY to or from the client.</summary>
    public static string? Refusal(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        return Find(sql) switch
        {
            "STDIN" => "COPY … FROM STDIN needs PostgreSQL's COPY protocol, which a statement cannot use: sent, it would break the connection (and lose an open transaction). Nothing was sent. Load rows with Write-AequorTableData (… | Write-AequorTableData -Table t: one COPY, streamed), INSERT with parameters, or COPY FROM a file on the database server.",
            "STDOUT" => "COPY … TO STDOUT needs PostgreSQL's COPY protocol, which a statement cannot use: sent, it would break the connection (and lose an open transaction). Nothing was sent. Export rows to a CSV file with Export-AequorTableData (-Table t or -Query 'SELECT …': one COPY, streamed), or run the query itself (COPY (SELECT …) TO STDOUT → SELECT …).",
            _ => null,
        };
    }

    /// <summary>"STDIN" or "STDOUT" for the first top-level COPY statement that names one right after FROM or TO (outside parentheses, quotes and comments).</summary>
    private static string? Find(string sql)
    {
        var i = 0;
        var atStart = true;
        var inCopy = false;
        var depth = 0;
        string? previous = null;
        while (i < sql.Length)
        {
            var c = sql[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
                continue;
            }

            var next = StatementShape.SkipNonCode(sql, i);
            if (next < 0)
            {
                return null; // unclosed quote or comment: the server will say so
            }

            if (next != i)
            {
                // A comment is blank; a quoted string or identifier is a token that is neither COPY nor STDIN.
                if (c is '\'' or '"' or '$')
                {
                    previous = null;
                    atStart = false;
                }

                i = next;
                continue;
            }

            if (char.IsAsciiLetter(c) || c == '_' || c > 127)
            {
                var start = i;
                while (i < sql.Length && (StatementShape.IsIdentifierChar(sql[i]) || sql[i] == '$'))
                {
                    i++;
                }

                var word = sql[start..i].ToUpperInvariant();
                if (atStart)
                {
                    inCopy = word == "COPY";
                    atStart = false;
                }
                else if (inCopy && depth == 0 && previous is "FROM" or "TO" && word is "STDIN" or "STDOUT")
                {
                    return word;
                }

                previous = word;
            }
            else
            {
                if (c == ';')
                {
                    atStart = true;
                    inCopy = false;
                    depth = 0;
                }
                else if (c == '(')
                {
                    depth++;
                }
                else if (c == ')')
                {
                    depth--;
                }

                if (c != ';')
                {
                    atStart = false;
                }

                previous = null;
                i++;
            }
        }

        return null;
    }
}
