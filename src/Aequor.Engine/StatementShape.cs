namespace Aequor.Engine;

/// <summary>
/// Decides whether a caller's statement can share one extended-protocol batch (one Sync, hence one implicit
/// transaction) with the client's renewal or probe. Postgres refuses several commands in one prepared
/// statement (42601) and refuses VACUUM, CREATE INDEX CONCURRENTLY, CREATE DATABASE … inside a pipeline
/// (25001), so only a single plain DML statement qualifies; anything else gets its renewal in a round trip of
/// its own. Erring towards "no" costs one round trip, never correctness.
/// </summary>
internal static class StatementShape
{
    private static readonly string[] BatchableFirstWords = ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES", "TABLE", "MERGE"];

    public static bool CanShareBatch(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        var i = SkipBlank(sql, 0);
        if (i < 0)
        {
            return false;
        }

        var start = i;
        while (i < sql.Length && char.IsAsciiLetter(sql[i]))
        {
            i++;
        }

        var first = sql.AsSpan(start, i - start);
        var known = false;
        foreach (var word in BatchableFirstWords)
        {
            if (first.Equals(word, StringComparison.OrdinalIgnoreCase))
            {
                known = true;
                break;
            }
        }

        return known && IsSingleStatement(sql, i);
    }

    /// <summary>
    /// The highest <c>$n</c> placeholder outside quotes, comments and dollar-quoted bodies (0 when there is none), or
    /// null when the text cannot be read to its end (an unclosed quote or comment): then nothing is judged from it.
    /// </summary>
    public static int? HighestPlaceholder(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        var highest = 0;
        var i = 0;
        while (i < sql.Length)
        {
            var next = SkipNonCode(sql, i);
            if (next < 0)
            {
                return null;
            }

            if (next != i)
            {
                i = next;
                continue;
            }

            if (sql[i] == '$' && char.IsAsciiDigit(At(sql, i + 1)) && !(i > 0 && IsIdentifierChar(sql[i - 1])))
            {
                var end = i + 1;
                while (end < sql.Length && char.IsAsciiDigit(sql[end]))
                {
                    end++;
                }

                if (int.TryParse(sql.AsSpan(i + 1, end - i - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n))
                {
                    highest = Math.Max(highest, n);
                }

                i = end;
                continue;
            }

            i++;
        }

        return highest;
    }

    /// <summary>True when no top-level ';' is followed by anything but blanks and comments.</summary>
    private static bool IsSingleStatement(string sql, int i)
    {
        while (i < sql.Length)
        {
            var next = SkipNonCode(sql, i);
            if (next < 0)
            {
                return false;
            }

            if (next != i)
            {
                i = next;
                continue;
            }

            if (sql[i] != ';')
            {
                i++;
                continue;
            }

            var rest = SkipBlank(sql, i + 1);
            if (rest == -2)
            {
                return false;
            }

            // Only blanks, comments or more semicolons may follow.
            if (rest >= 0 && sql[rest] != ';')
            {
                return false;
            }

            i = rest < 0 ? sql.Length : rest;
        }

        return true;
    }

    /// <summary>
    /// At a quoted string or identifier, a dollar-quoted body or a comment: the index just past it, -1 when it is
    /// unclosed. Anywhere else — a '$' inside an identifier (a$1) or before a digit (a placeholder) included —
    /// <paramref name="i"/> itself. The one reading of what is not code that the scans here share.
    /// </summary>
    internal static int SkipNonCode(string sql, int i)
    {
        switch (sql[i])
        {
            case '\'':
                var escapes = i > 0 && (sql[i - 1] is 'E' or 'e') && (i < 2 || !IsIdentifierChar(sql[i - 2]));
                return SkipQuoted(sql, i, '\'', escapes);
            case '"':
                return SkipQuoted(sql, i, '"', backslashEscapes: false);
            case '$' when (i > 0 && IsIdentifierChar(sql[i - 1])) || char.IsAsciiDigit(At(sql, i + 1)):
                return i;
            case '$':
                var end = SkipDollarQuoted(sql, i);
                return end == i + 1 ? i : end;
            case '-' when At(sql, i + 1) == '-':
            case '/' when At(sql, i + 1) == '*':
                return SkipComment(sql, i);
            default:
                return i;
        }
    }

    /// <summary>Index of the next character that is neither blank nor comment; -1 at the end; -2 on an unclosed comment.</summary>
    internal static int SkipBlank(string sql, int i)
    {
        while (i < sql.Length)
        {
            if (char.IsWhiteSpace(sql[i]))
            {
                i++;
            }
            else if ((sql[i] == '-' && At(sql, i + 1) == '-') || (sql[i] == '/' && At(sql, i + 1) == '*'))
            {
                i = SkipComment(sql, i);
                if (i < 0)
                {
                    return -2;
                }
            }
            else
            {
                return i;
            }
        }

        return -1;
    }

    internal static int SkipComment(string sql, int i)
    {
        if (sql[i] == '-')
        {
            var end = sql.IndexOf('\n', i);
            return end < 0 ? sql.Length : end + 1;
        }

        // Postgres block comments nest.
        var depth = 0;
        while (i < sql.Length - 1)
        {
            if (sql[i] == '/' && sql[i + 1] == '*')
            {
                depth++;
                i += 2;
            }
            else if (sql[i] == '*' && sql[i + 1] == '/')
            {
                depth--;
                i += 2;
                if (depth == 0)
                {
                    return i;
                }
            }
            else
            {
                i++;
            }
        }

        return -1;
    }

    internal static int SkipQuoted(string sql, int i, char quote, bool backslashEscapes)
    {
        i++;
        while (i < sql.Length)
        {
            var c = sql[i];
            if (backslashEscapes && c == '\\')
            {
                i += 2;
                continue;
            }

            if (c == quote)
            {
                if (At(sql, i + 1) == quote)
                {
                    i += 2;
                    continue;
                }

                return i + 1;
            }

            i++;
        }

        return -1;
    }

    internal static int SkipDollarQuoted(string sql, int i)
    {
        // $tag$ … $tag$; a '$' followed by a digit is a positional parameter, not a quote.
        var j = i + 1;
        if (j < sql.Length && char.IsAsciiDigit(sql[j]))
        {
            return j;
        }

        while (j < sql.Length && IsIdentifierChar(sql[j]))
        {
            j++;
        }

        if (j >= sql.Length || sql[j] != '$')
        {
            return i + 1;
        }

        var tag = sql.Substring(i, j - i + 1);
        var end = sql.IndexOf(tag, j + 1, StringComparison.Ordinal);
        return end < 0 ? -1 : end + tag.Length;
    }

    internal static char At(string sql, int i) => i < sql.Length ? sql[i] : '\0';

    internal static bool IsIdentifierChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '_' || c > 127;
}
