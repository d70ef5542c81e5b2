using System.Buffers;
using System.Text;

namespace Aequor.Engine;

/// <summary>
/// The records of a CSV as PostgreSQL's COPY … (FORMAT csv) reads them, counted as the text streams past (nothing
/// kept): a record ends at a line break outside double quotes (a doubled quote inside quotes toggles twice, so it
/// needs no case of its own). The line breaks are the server's: the first one outside quotes decides them for the
/// whole text, '\n', "\r\n" or '\r' alone (old Mac files), as copyfromparse.c's CopyReadLineText does.
/// </summary>
internal sealed class CsvRecords
{
    private const string EndOfDataMarker = "\\.";

    private static readonly SearchValues<char> QuotesAndLineBreaks = SearchValues.Create("\"\n\r");

    private bool _inQuotes;
    private bool _partial;
    private bool _atRecordStart = true;
    private LineEnds _lineEnds;

    // Line-break characters seen inside quotes before the first record decided which of them end lines.
    private long _carriageReturnsBefore;
    private long _newLinesBefore;

    // The server's own line count (see Locate): records ended, plus line breaks inside quotes counted its way.
    private long _serverQuotedBreaks;
    private long _recordLine;
    private readonly long _firstLine;
    private readonly long _locateServerLine;

    /// <param name="firstLine">The file line the text begins on (after a header), for <see cref="Located"/>.</param>
    /// <param name="locateServerLine">The "line N" of the server's error to find; 0 finds none.</param>
    public CsvRecords(long firstLine = 1, long locateServerLine = 0)
    {
        _firstLine = firstLine;
        _recordLine = firstLine;
        _locateServerLine = locateServerLine;
    }

    private enum LineEnds
    {
        Unknown,
        NewLine,
        CarriageReturnNewLine,
        CarriageReturn,
    }

    /// <summary>Records ended by a line break.</summary>
    public long Ended { get; private set; }

    /// <summary>Line breaks seen, inside quotes too: the file's line is one more.</summary>
    public long LineBreaks { get; private set; }

    /// <summary>Every record, the last one counted when no line break ends it.</summary>
    public long Count => Ended + (_partial ? 1 : 0);

    /// <summary>Records of only <c>\.</c> that <see cref="Scan"/> sent quoted.</summary>
    public long QuotedMarkers { get; private set; }

    /// <summary>The record (1-based) the server's line names and the file line it begins on, once scanned past.</summary>
    public (long Record, long Line)? Located { get; private set; }

    /// <summary>
    /// Counts <paramref name="chunk"/> and returns it as the server must get it. A record of only <c>\.</c> is sent
    /// as <c>"\."</c>: PostgreSQL 15 reads it bare as the end of the data and drops every row after it without an
    /// error, while in a CSV it is a value (COPY … TO writes it quoted, as documented). Until
    /// <paramref name="final"/>, the last characters that need the next one to be read (a '\r', a '\' or <c>\.</c>)
    /// are not taken: <paramref name="held"/> of them, to be given again at the start of the next chunk.
    /// </summary>
    public ReadOnlyMemory<char> Scan(ReadOnlyMemory<char> chunk, bool final, out int held)
    {
        held = final ? 0 : Unfinished(chunk.Span);
        var text = chunk[..^held];
        var span = text.Span;
        List<int>? markers = null;
        for (var i = 0; i < span.Length; i++)
        {
            var c = span[i];
            if (_atRecordStart && c == '\\' && IsMarker(span, i, final))
            {
                (markers ??= []).Add(i);
            }

            if (c is not ('"' or '\n' or '\r'))
            {
                // The run up to the next quote or line break in one vectorised search, not a branch per character.
                var next = span[(i + 1)..].IndexOfAny(QuotesAndLineBreaks);
                i = next < 0 ? span.Length - 1 : i + next;
                _partial = true;
                _atRecordStart = false;
                continue;
            }

            if (c == '"')
            {
                _inQuotes = !_inQuotes;
                _partial = true;
                _atRecordStart = false;
                continue;
            }

            if (_inQuotes)
            {
                QuotedBreak(c);
                _partial = true;
                continue;
            }

            if (_lineEnds == LineEnds.Unknown)
            {
                // A '\r' is last only when final: no '\n' can follow it then.
                _lineEnds = c == '\n' ? LineEnds.NewLine
                    : i + 1 < span.Length && span[i + 1] == '\n' ? LineEnds.CarriageReturnNewLine
                    : LineEnds.CarriageReturn;
                LineBreaks += _lineEnds == LineEnds.CarriageReturn ? _carriageReturnsBefore : _newLinesBefore;
            }

            if (c == EndsLines)
            {
                LineBreaks++;
                RecordEnded();
            }
            else
            {
                // A '\r' before the '\n' of "\r\n", or a stray one the server refuses ("literal carriage return").
                _partial = true;
                _atRecordStart = false;
            }
        }

        if (final && _partial && Located is null && _locateServerLine > 0 && Ended + 1 + _serverQuotedBreaks >= _locateServerLine)
        {
            Located = (Ended + 1, _recordLine);
        }

        return markers is null ? text : Quoted(span, markers);
    }

    private char EndsLines => _lineEnds == LineEnds.CarriageReturn ? '\r' : '\n';

    private void QuotedBreak(char c)
    {
        if (_lineEnds == LineEnds.Unknown)
        {
            _ = c == '\n' ? _newLinesBefore++ : _carriageReturnsBefore++;
        }
        else if (c == EndsLines)
        {
            LineBreaks++;
        }

        // The server counts '\n' inside quotes once its first line ended with '\n' alone, else '\r'.
        if (c == (_lineEnds == LineEnds.NewLine ? '\n' : '\r'))
        {
            _serverQuotedBreaks++;
        }
    }

    private void RecordEnded()
    {
        Ended++;
        if (Located is null && _locateServerLine > 0 && Ended + _serverQuotedBreaks >= _locateServerLine)
        {
            Located = (Ended, _recordLine);
        }

        _partial = false;
        _atRecordStart = true;
        _recordLine = _firstLine + LineBreaks;
    }

    /// <summary>A <c>\.</c> at <paramref name="i"/> followed by a line break, or by the end of the data.</summary>
    private static bool IsMarker(ReadOnlySpan<char> span, int i, bool final) =>
        i + 1 < span.Length && span[i + 1] == '.'
        && (i + 2 < span.Length ? span[i + 2] is '\n' or '\r' : final);

    /// <summary>How many of the last characters can only be read with the one after them.</summary>
    private static int Unfinished(ReadOnlySpan<char> span)
    {
        var held = span is [.., '\r'] ? 1 : 0;
        var before = span[..^held];
        return held + (before.EndsWith(EndOfDataMarker) ? 2 : before is [.., '\\'] ? 1 : 0);
    }

    private ReadOnlyMemory<char> Quoted(ReadOnlySpan<char> span, List<int> markers)
    {
        var text = new StringBuilder(span.Length + (2 * markers.Count));
        var from = 0;
        foreach (var at in markers)
        {
            text.Append(span[from..at]).Append('"').Append(EndOfDataMarker).Append('"');
            from = at + 2;
        }

        QuotedMarkers += markers.Count;
        return text.Append(span[from..]).ToString().AsMemory();
    }

    /// <summary>
    /// Reads the first record of <paramref name="reader"/> (the header) into its fields; <paramref name="rest"/> is what
    /// was read beyond it, <paramref name="lineBreaks"/> the header's own. It ends at a line break outside quotes:
    /// '\n', "\r\n", or a '\r' alone. Null when the text is empty.
    /// </summary>
    public static List<string>? ReadHeader(TextReader reader, char delimiter, char[] buffer, out ReadOnlyMemory<char> rest, out long lineBreaks)
    {
        var header = new StringBuilder();
        var inQuotes = false;
        // The last character was a '\r' outside quotes: the next one says whether it ended the line alone.
        var afterCarriageReturn = false;
        lineBreaks = 0;
        while (true)
        {
            var read = reader.Read(buffer, 0, buffer.Length);
            if (read == 0)
            {
                rest = ReadOnlyMemory<char>.Empty;
                lineBreaks += afterCarriageReturn ? 1 : 0;
                return header.Length == 0 ? null : Fields(Line(header), delimiter);
            }

            for (var i = 0; i < read; i++)
            {
                var c = buffer[i];
                if (afterCarriageReturn && c != '\n')
                {
                    lineBreaks++;
                    rest = buffer.AsMemory(i, read - i);
                    return Fields(Line(header), delimiter);
                }

                afterCarriageReturn = false;
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
                        return Fields(Line(header), delimiter);
                    }
                }
                else if (c == '\r' && !inQuotes)
                {
                    afterCarriageReturn = true;
                }

                header.Append(c);
            }
        }
    }

    private static string Line(StringBuilder header)
    {
        var line = header.ToString();
        return line.EndsWith('\r') ? line[..^1] : line;
    }

    /// <summary>
    /// Scans the rest of <paramref name="reader"/>, <paramref name="first"/> (read already, in
    /// <paramref name="buffer"/>) ahead of it, through <paramref name="records"/>, handing each piece to
    /// <paramref name="send"/>. False when <paramref name="send"/> said stop.
    /// </summary>
    public static bool Pump(TextReader reader, char[] buffer, ReadOnlyMemory<char> first, CsvRecords records, Func<ReadOnlyMemory<char>, bool> send)
    {
        var pending = first;
        var final = false;
        while (true)
        {
            var held = 0;
            if (!pending.IsEmpty || final)
            {
                var text = records.Scan(pending, final, out held);
                if (!text.IsEmpty && !send(text))
                {
                    return false;
                }

                // Sent already: the buffer is free, and the characters held back go first in it.
                pending[^held..].Span.CopyTo(buffer);
            }

            if (final)
            {
                return true;
            }

            var read = reader.Read(buffer, held, buffer.Length - held);
            final = read == 0;
            pending = buffer.AsMemory(0, held + read);
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
    /// '\n' once it has seen a first record end with '\n' alone, else '\r' (copyfromparse.c, CopyReadLineText,
    /// whose own comment calls that count fragile). The data after a header the server never saw starts its count at
    /// 1. Null when the text has fewer records.
    /// </summary>
    public static (long Record, long Line)? Locate(TextReader file, bool header, long serverLine)
    {
        var buffer = new char[64 * 1024];
        var rest = ReadOnlyMemory<char>.Empty;
        long firstLine = 1;
        if (header)
        {
            if (ReadHeader(file, ',', buffer, out rest, out var breaks) is null)
            {
                return null;
            }

            firstLine += breaks;
        }

        var records = new CsvRecords(firstLine, serverLine);
        _ = Pump(file, buffer, rest, records, _ => records.Located is null);
        return records.Located;
    }
}
