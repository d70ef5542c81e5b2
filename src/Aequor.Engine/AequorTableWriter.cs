using System.Text;
using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// One <c>COPY table (columns) FROM STDIN</c> in progress, from <see cref="AequorClient.OpenTableWriter"/>: rows are
/// streamed as they are written, and nothing is kept in memory. <see cref="Complete"/> ends the statement; disposing
/// without it cancels it, and then nothing is written. The client is busy (its one-call gate held) until either.
/// </summary>
public sealed class AequorTableWriter : IDisposable
{
    private readonly AequorClient _client;
    private readonly long _generation;
    private readonly StringBuilder _line = new();
    private NpgsqlCopyTextWriter? _copy;

    internal AequorTableWriter(AequorClient client, NpgsqlCopyTextWriter copy, long generation, string table, IReadOnlyList<string> columns)
    {
        _client = client;
        _copy = copy;
        _generation = generation;
        Table = table;
        Columns = columns;
    }

    /// <summary>The table, quoted as it went into the COPY.</summary>
    public string Table { get; }

    /// <summary>The table's columns the rows fill, in the order <see cref="WriteRow"/> takes values.</summary>
    public IReadOnlyList<string> Columns { get; }

    /// <summary>Rows sent so far.</summary>
    public long RowsWritten { get; private set; }

    /// <summary>
    /// Sends one row: a value per <see cref="Columns"/> entry, null for NULL. A value with no text form is refused
    /// (<see cref="AequorConfigurationException"/> naming the row and column) before anything of the row is sent;
    /// the caller then disposes the writer, and nothing is written.
    /// </summary>
    public void WriteRow(IReadOnlyList<object?> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var copy = _copy ?? throw new InvalidOperationException("The COPY has ended.");
        if (values.Count != Columns.Count)
        {
            throw new ArgumentException($"The row has {values.Count} values for {Columns.Count} columns.", nameof(values));
        }

        _line.Clear();
        CopyRowText.Append(_line, values, Columns, RowsWritten + 1);
        try
        {
            copy.Write(_line);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _copy = null;
            throw _client.EndTableWrite(_generation, copy, ex, $"The connection was lost while sending row {RowsWritten + 1} of the COPY into {Table}: nothing was written (the server rolls back a COPY that did not finish).")!;
        }

        RowsWritten++;
    }

    /// <summary>Ends the COPY: all rows are written, or (the server's error, naming the row) none.</summary>
    public long Complete()
    {
        var copy = _copy ?? throw new InvalidOperationException("The COPY has ended.");
        _copy = null;
        try
        {
            copy.Dispose();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw _client.EndTableWrite(_generation, copy: null, ex, null, RowsWritten)!;
        }

        _client.EndTableWrite(_generation, copy: null, failure: null, null, RowsWritten);
        return RowsWritten;
    }

    /// <summary>Cancels the COPY when <see cref="Complete"/> was not reached: nothing is written.</summary>
    public void Dispose()
    {
        if (_copy is { } copy)
        {
            _copy = null;
            _client.EndTableWrite(_generation, copy, failure: null, null);
        }
    }
}
