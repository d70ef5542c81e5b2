using System.Text;

namespace Aequor.Engine;

/// <summary>
/// A table name as a user writes it (people, app.people, "My Table", app."Order") quoted as quote_ident would, so it
/// can go into SQL text: unquoted parts fold to lower case, as the server folds them; quoted parts keep their case.
/// </summary>
public static class TableNames
{
    /// <summary>The quoted name, or an <see cref="AequorConfigurationException"/> naming what cannot be parsed.</summary>
    public static string Quote(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Contains('\0', StringComparison.Ordinal))
        {
            // No identifier holds one, and echoed into a message it would cut that message short in C-string and XML
            // consumers (a Pester or CI report).
            throw Unparsable(name, "it holds a NUL character (U+0000), which no PostgreSQL name can hold");
        }

        if (AequorStatement.IndexOfUnpairedSurrogate(name) is var lone and >= 0)
        {
            // Npgsql cannot encode it: sent in the COPY's text it would break the connection.
            throw Unparsable(name, $"it holds an unpaired UTF-16 surrogate (U+{(int)name[lone]:X4}), half of a character such as an emoji");
        }

        var parts = new List<string>();
        var i = 0;
        var text = name.Trim();
        while (true)
        {
            var part = new StringBuilder();
            if (i < text.Length && text[i] == '"')
            {
                i++;
                var closed = false;
                while (i < text.Length)
                {
                    if (text[i] == '"')
                    {
                        if (i + 1 < text.Length && text[i + 1] == '"')
                        {
                            part.Append('"');
                            i += 2;
                            continue;
                        }

                        closed = true;
                        i++;
                        break;
                    }

                    part.Append(text[i++]);
                }

                if (!closed)
                {
                    throw Unparsable(name, "a quoted part is not closed");
                }
            }
            else
            {
                while (i < text.Length && text[i] != '.')
                {
                    var ch = text[i++];
                    if (!(char.IsLetterOrDigit(ch) || ch is '_' or '$'))
                    {
                        throw Unparsable(name, $"'{ch}' is not allowed in an unquoted name (quote the part: \"{text}\")");
                    }

                    // As the server folds it in a UTF-8 database: A-Z only ("ÜBER" is "Über"; a wider fold names another table).
                    part.Append(ch is >= 'A' and <= 'Z' ? (char)(ch + ('a' - 'A')) : ch);
                }
            }

            if (part.Length == 0)
            {
                throw Unparsable(name, "a part of it is empty");
            }

            parts.Add(Ident(part.ToString()));
            if (i == text.Length)
            {
                break;
            }

            if (text[i] != '.')
            {
                throw Unparsable(name, "a quoted part is followed by something other than '.'");
            }

            i++;
        }

        if (parts.Count > 3)
        {
            throw Unparsable(name, "it has more than three parts (database.schema.table)");
        }

        return string.Join('.', parts);
    }

    /// <summary>One identifier in double quotes, a quote inside doubled.</summary>
    public static string Ident(string identifier)
    {
        ArgumentNullException.ThrowIfNull(identifier);
        return "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }

    private static AequorConfigurationException Unparsable(string name, string why) =>
        new($"The table name '{Printable(name)}' cannot be parsed: {why}. Write it as table, schema.table, or with double quotes around a part that holds other characters or capitals (\"My Table\").");

    private static string Printable(string name) =>
        name.Replace("\0", "\\0", StringComparison.Ordinal);
}
