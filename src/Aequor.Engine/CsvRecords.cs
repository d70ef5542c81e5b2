using System.Text;

namespace Aequor.Engine;

/// <summary>
/// The records of a CSV as PostgreSQL's COPY … (FORMAT csv) reads them: a record ends at a line break outside double
/// quotes (a doubled quote inside quotes toggles twice, so it needs no case of its own). Counts as text streams
/// past, nothing kept.
/// </summary>
internal sealed class CsvRecords
{
    private bool _inQuotes;
    private bool _partial;

    /// <summary>Records ended by a line break.</summary>
    public long Ended { get; private set; }

    /// <summary>Line breaks seen, inside quotes too: the file's line is one more.</summary>
    public long LineBreaks { get; private set; }

    /// <summary>Every record, the last one counted when no line break ends it.</summary>
    public long Count => Ended + (_partial ? 1 : 0);

    public void Scan(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
        {
            if (c == '"')
            {
                _inQuotes = !_inQuotes;
                _partial = true;
            }
            else if (c == '\n')
            {
                LineBreaks++;
                if (!_inQuotes)
                {
                    Ended++;
                    _partial = false;
                }
            }
            else
            {
                _partial = true;
            }
        }
    }

    /// <summary>
    /// Reads the first record of <paramref name="reader"/> (the header) into its fields; <paramref name="rest"/> is what
    /// was read beyond it. Null when the text is empty.
    /// </summary>
    public static List<string>? ReadHeader(TextReader reader, char delimiter, char[] buffer, out ReadOnlyMemory<char> rest, out long lineBreaks)
    {
        var header = new StringBuilder();
        var inQuotes = false;
        lineBreaks = 0;
        while (true)
        {
            var read = reader.Read(buffer, 0, buffer.Length);
            if (read == 0)
            {
                rest = ReadOnlyMemory<char>.Empty;
                return header.Length == 0 ? null : Fields(header.ToString(), delimiter);
            }

            for (var i = 0; i < read; i++)
            {
                var c = buffer[i];
                if (c == '"')
                {
                    inQuotes = !inQuotes;
                }
                else if (c == '\n')
                {
                    lineBreaks++;
                    if (!inQuotes)
                    {
                        rest = buffer.AsMemory(i + 1, read - i - 1);
                        var line = header.ToString();
                        return Fields(line.EndsWith('\r') ? line[..^1] : line, delimiter);
                    }
                }

                header.Append(c);
            }
        }
    }

    /// <summary>The fields of one record: quotes anywhere in a field enclose literal text, a doubled one inside them is a quote.</summary>
    public static List<string> Fields(string record, char delimiter)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        var inQuotes = false;
        for (var i = 0; i < record.Length; i++)
        {
            var c = record[i];
            if (inQuotes)
            {
                if (c != '"')
                {
                    field.Append(c);
                }
                else if (i + 1 < record.Length && record[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else
                {
                    inQuotes = false;
                }
            }
            else if (c == '"')
            {
                inQuotes = true;
            }
            else if (c == delimiter)
            {
                fields.Add(field.ToString());
                field.Clear();
            }
            else
            {
                field.Append(c);
            }
        }

        fields.Add(field.ToString());
        return fields;
    }

    /// <summary>
    /// Which data record (1-based, the header not counted) the server's "COPY t, line N" names, and the file line it
    /// begins on. The server counts a line per record and, inside quotes, each character of its end-of-line style:
    /// '\n' once it has seen a first record end with '\n', else '\r' (copyfromparse.c, CopyReadLineText, whose own
    /// comment calls that count fragile). The data after a header the server never saw starts its count at 1.
    /// Null when the text has fewer records.
    /// </summary>
    public static (long Record, long Line)? Locate(TextReader file, bool header, long serverLine)
    {
        var buffer = new char[64 * 1024];
        long line = 1;
        var inQuotes = false;
        var inHeader = header;
        char? quotedEnd = null; // null until the first data record ended: the server then counts '\r' inside quotes
        long record = 1;
        long counted = 0;
        long recordLine = 1;
        var partial = false;
        var previous = '\0';
        int read;
        while ((read = file.Read(buffer, 0, buffer.Length)) > 0)
        {
            foreach (var c in buffer.AsSpan(0, read))
            {
                if (c == '"')
                {
                    inQuotes = !inQuotes;
                }
                else if (inQuotes && !inHeader && c == (quotedEnd ?? '\r'))
                {
                    counted++;
                }

                if (c == '\n' && !inQuotes)
                {
                    if (inHeader)
                    {
                        inHeader = false;
                    }
                    else
                    {
                        quotedEnd ??= previous == '\r' ? '\r' : '\n';
                        if (record + counted >= serverLine)
                        {
                            return (record, recordLine);
                        }

                        record++;
                    }

                    partial = false;
                    recordLine = line + 1;
                }
                else if (!inHeader)
                {
                    partial = true;
                }

                if (c == '\n')
                {
                    line++;
                }

                previous = c;
            }
        }

        return partial && record + counted >= serverLine ? (record, recordLine) : null;
    }
}
