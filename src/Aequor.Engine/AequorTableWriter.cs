using System.Diagnostics;
using System.Text;
using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// One <c>COPY table (columns) FROM STDIN</c> in progress, from <see cref="AequorClient.OpenTableWriter"/>: rows are
/// streamed as they are written, and nothing is kept in memory. <see cref="Complete"/> ends the statement; disposing
/// without it cancels it, and then nothing is written. The client is busy (its one-call gate held) until either.
/// Like a statement, the load raises the client's OnQueryStart (when the COPY was sent), then OnQueryEnd (the rows
/// written) or OnQueryError, once each, with the COPY's text.
/// </summary>
public sealed class AequorTableWriter : IDisposable
{
    private readonly AequorClient _client;
    private readonly NpgsqlConnection _connection;
    private readonly CopyStop _stop;
    private readonly StringBuilder _line = new();
    private NpgsqlCopyTextWriter? _copy;
    private Exception? _refused;

    private readonly IReadOnlyList<ColumnType> _types;

    internal AequorTableWriter(AequorClient client, NpgsqlConnection connection, CopyStop stop, NpgsqlCopyTextWriter copy, long generation, string table, IReadOnlyList<string> columns, IReadOnlyList<ColumnType> types, string commandText, long startedAt)
    {
        _types = types;
        _client = client;
        _connection = connection;
        _stop = stop;
        _copy = copy;
        Generation = generation;
        Table = table;
        Columns = columns;
        CommandText = commandText;
        StartedAt = startedAt;
    }

    /// <summary>The table, quoted as it went into the COPY.</summary>
    public string Table { get; }

    /// <summary>The table's columns the rows fill, in the order <see cref="WriteRow"/> takes values.</summary>
    public IReadOnlyList<string> Columns { get; }

    /// <summary>Rows sent so far.</summary>
    public long RowsWritten { get; private set; }

    /// <summary>
    /// Once <see cref="Complete"/> returned: the rows the server stored, by its own count. Fewer than
    /// <see cref="RowsWritten"/> when a BEFORE INSERT trigger skipped some (returned NULL).
    /// </summary>
    public long RowsStored { get; private set; }

    internal long Generation { get; }

    /// <summary>What stops the COPY's waits on the server, its end by CopyFail included.</summary>
    internal CopyStop Stop => _stop;

    /// <summary>The COPY statement (no values), as the events carry it.</summary>
    internal string CommandText { get; }

    internal long StartedAt { get; }

    /// <summary>
    /// Sends one row: a value per <see cref="Columns"/> entry, null for NULL. A value with no text form is refused
    /// (<see cref="AequorConfigurationException"/> naming the row and column) before anything of the row is sent;
    /// the caller then disposes the writer, and nothing is written. A cancelled <paramref name="cancellationToken"/>
    /// ends the COPY, nothing written: at once between rows; while a row is sent to a server that reads no more (a
    /// lock, a slow trigger), by a cancel request to the server, or by cutting the connection when the server has
    /// not let go within the connection's Cancellation Timeout. Then <see cref="OperationCanceledException"/>.
    /// </summary>
    public void WriteRow(IReadOnlyList<object?> values, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        var copy = _copy ?? throw new InvalidOperationException("The COPY has ended.");
        if (values.Count != Columns.Count)
        {
            throw new ArgumentException($"The row has {values.Count} values for {Columns.Count} columns.", nameof(values));
        }

        if (cancellationToken.IsCancellationRequested)
        {
            _copy = null;
            throw _client.EndTableWrite(this, copy, null, null, Cancelled(cancellationToken, _stop))!;
        }

        _line.Clear();
        try
        {
            CopyRowText.Append(_line, values, Columns, RowsWritten + 1, _types);
        }
        catch (AequorConfigurationException refused)
        {
            // What ends the load when the caller disposes the writer next: OnQueryError carries it.
            _refused = refused;
            throw;
        }

        Exception? failure = null;
        _stop.Arm(cancellationToken);
        try
        {
            copy.Write(_line);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            failure = ex;
        }
        finally
        {
            _stop.Disarm();
        }

        if (_stop.Requested)
        {
            // The send failed because the connection was cut, or went through once the server dropped the rest.
            _copy = null;
            throw _client.EndTableWrite(this, copy, null, null, Cancelled(cancellationToken, _stop))!;
        }

        if (failure is not null)
        {
            _copy = null;
            throw _client.EndTableWrite(this, copy, failure, $"The connection was lost while sending row {RowsWritten + 1} of the COPY into {Table}: nothing was written (the server rolls back a COPY that did not finish).")!;
        }

        RowsWritten++;
    }

    /// <summary>
    /// Ends the COPY: all rows are written, or (the server's error, naming the row) none. Returns the rows stored, by
    /// the server's count (<see cref="RowsStored"/>). A cancelled
    /// <paramref name="cancellationToken"/> sends the server a cancel request, which also stops a COPY whose end was
    /// sent while the server is still inserting the rows: <see cref="OperationCanceledException"/>, nothing written.
    /// </summary>
    public long Complete(CancellationToken cancellationToken = default)
    {
        var copy = _copy ?? throw new InvalidOperationException("The COPY has ended.");
        _copy = null;
        if (cancellationToken.IsCancellationRequested)
        {
            throw _client.EndTableWrite(this, copy, null, null, Cancelled(cancellationToken, _stop))!;
        }

        _stop.Arm(cancellationToken);
        try
        {
            // The rows still buffered go out first, on their own: until they have, the end of the COPY (CopyDone,
            // written after them by Dispose) cannot have reached the server, and a COPY it never saw end is rolled
            // back. A failure here is provably "nothing written"; one from Dispose may come after the server had it.
            copy.Flush();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _stop.Disarm();
            if (_stop.Requested)
            {
                throw _client.EndTableWrite(this, copy, null, null, Cancelled(cancellationToken, _stop))!;
            }

            throw _client.EndTableWrite(this, copy, ex,
                $"The connection was lost while sending the last rows of the COPY into {Table}, before its end was sent: nothing was written (the server rolls back a COPY that did not finish).")!;
        }

        Exception? failure = null;
        try
        {
            copy.Dispose();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            failure = ex;
        }
        finally
        {
            // Waits for a cancel being sent: none may reach the server after the call returned.
            _stop.Disarm();
        }

        if (failure is not null)
        {
            throw _client.EndTableWrite(this, copy: null, failure, null, _stop.Requested ? Cancelled(cancellationToken, _stop) : null)!;
        }

        // Read before anything else runs on the connection: the next statement's answer replaces it.
        RowsStored = CopyCommandRows.Of(_connection) ?? RowsWritten;
        _client.EndTableWrite(this, copy: null, failure: null, null);
        return RowsStored;
    }

    /// <summary>Cancels the COPY when <see cref="Complete"/> was not reached: nothing is written.</summary>
    public void Dispose()
    {
        if (_copy is { } copy)
        {
            _copy = null;
            _client.EndTableWrite(this, copy, failure: null, null,
                _refused ?? new AequorCopyFailedException($"The COPY into {Table} was cancelled before it ended ({RowsWritten} rows sent): nothing was written."));
        }
    }

    private AequorCopyCancelledException Cancelled(CancellationToken cancellationToken, CopyStop stop) =>
        new(stop.Cut
            ? $"The COPY into {Table} was cancelled ({RowsWritten} rows sent): the server had not stopped it {stop.CancellationTimeout} ms after a cancel request (the connection's Cancellation Timeout), so the connection was closed, which ends the COPY: nothing was written. The next statement opens a new connection."
            : $"The COPY into {Table} was cancelled ({RowsWritten} rows sent): the server stopped it, and nothing was written.", null, cancellationToken);

    internal TimeSpan Elapsed => Stopwatch.GetElapsedTime(StartedAt);
}
