using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Npgsql;

namespace Aequor.Engine;

/// <summary>Importing a CSV in one statement: COPY … FROM STDIN (FORMAT csv), the text streamed from the caller's stream.</summary>
public sealed partial class AequorClient
{
    // The columns rows can fill, and the generated ones apart: a header naming one is told so, not "no such column".
    private const string ImportColumnsSql =
        "SELECT to_regclass($1) IS NOT NULL, " +
        "ARRAY(SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum), " +
        "ARRAY(SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attgenerated <> '' ORDER BY attnum)";

    private const int ImportBufferChars = 64 * 1024;

    // Strict: a lenient decoder would load each byte of a legacy code page as U+FFFD without a word.
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Loads the CSV in <paramref name="source"/> (UTF-8, a byte order mark skipped) into a table with one
    /// <c>COPY table (columns) FROM STDIN (FORMAT csv)</c>, streamed, nothing kept in memory: an empty field is NULL and
    /// "" an empty string, as <see cref="ExportCsv"/> writes them. The columns (the header's, else
    /// <see cref="AequorCsvImport.Columns"/> or all the table's) are checked against the table before the COPY is sent.
    /// All rows are loaded or none; inside a transaction the COPY joins it. Never sent again once begun: a write. A
    /// connection lost after the end of the COPY was sent is an <see cref="AequorOutcomeUnknownException"/> (inside a
    /// transaction an <see cref="AequorTransactionLostException"/>). A row the server refuses is named by its line in
    /// the file when <paramref name="source"/> can seek. A cancelled token stops the COPY: nothing loaded,
    /// <see cref="OperationCanceledException"/>, the client goes on.
    /// </summary>
    public AequorImportResult ImportCsv(AequorCsvImport import, Stream source, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(import);
        ArgumentNullException.ThrowIfNull(source);
        import.Validate();
        using var call = EnterAsync(synchronous: true, cancellationToken).AsTask().GetAwaiter().GetResult();
        try
        {
            return ImportCsvCoreAsync(import, source, call.Token).GetAwaiter().GetResult();
        }
        catch (OperationCanceledException ex) when (DisposedDuring(cancellationToken))
        {
            throw ClientDisposed(ex);
        }
        finally
        {
            ReleaseGate();
        }
    }

    private async Task<AequorImportResult> ImportCsvCoreAsync(AequorCsvImport import, Stream source, CancellationToken cancellationToken)
    {
        var table = import.Table;
        var quoted = TableNames.Quote(table);
        var origin = source.CanSeek ? source.Position : 0;
        using var text = new StreamReader(source, StrictUtf8, detectEncodingFromByteOrderMarks: true, ImportBufferChars, leaveOpen: true);
        var buffer = new char[ImportBufferChars];
        List<string>? header = null;
        long headerLines = 0;
        var pending = ReadOnlyMemory<char>.Empty;
        if (import.Header)
        {
            // Read before anything is sent: a file that cannot be read, or holds no header, costs the server nothing.
            try
            {
                header = CsvRecords.ReadHeader(text, import.Delimiter, buffer, out pending, out headerLines);
            }
            catch (Exception ex) when (IsSourceFailure(ex))
            {
                var line = ex is DecoderFallbackException && FirstInvalidUtf8(source, origin) is { } bad ? bad.Line : 1;
                throw new AequorCopyFailedException($"{SourceFailureText(ex, line)}: nothing was sent, nothing was imported.", ex);
            }

            if (header is null)
            {
                throw new AequorConfigurationException(
                    "The file is empty: it has no header line naming the columns (a file without one is read with -NoHeader, its columns given by -Column or the table's order). Nothing was imported.");
            }
        }

        var inTransaction = _transaction is not null || SqlTransactionOpen;
        var connection = await CopyConnectionAsync(inTransaction, "the import could begin", "Nothing was imported", cancellationToken).ConfigureAwait(false);
        var generation = Generation;
        var (exists, writable, generated) = await ReadCatalogueAsync(connection, ImportColumnsSql, quoted, generation, reader =>
        {
            reader.Read();
            return (reader.GetBoolean(0), reader.GetFieldValue<string[]>(1), reader.GetFieldValue<string[]>(2));
        }, cancellationToken).ConfigureAwait(false);
        if (!exists)
        {
            throw new AequorConfigurationException($"The table {table} does not exist (or is not on the search_path; write schema.table). Nothing was imported.");
        }

        var columns = ImportColumns.Choose(table, header, import.Columns, writable, generated);
        if (columns.Count == 0)
        {
            throw new AequorConfigurationException($"The table {table} has no column rows can fill. Nothing was imported.");
        }

        var sql = string.Create(CultureInfo.InvariantCulture,
            $"COPY {quoted} ({string.Join(", ", columns.Select(TableNames.Ident))}) FROM STDIN {CsvCopyOptions.Text(header: false, import.Delimiter)}");
        var startedAt = Stopwatch.GetTimestamp();
        if (OnQueryStart is { } start)
        {
            EventDispatch.Raise(start, this, new AequorQueryStartEvent(sql, 0, DateTimeOffset.UtcNow), Counters);
        }

        // Stops each wait the server holds up, as a table writer's: a cancel request, the connection cut if unanswered.
        var stop = new CopyStop(connection);
        var load = $"The import into {table}";
        var copy = await BeginCopyAsync(connection, stop, sql, startedAt, generation, load, "nothing was imported",
            $"The connection was lost as the import into {table} began: nothing was imported, and it was not sent again.", cancellationToken).ConfigureAwait(false);

        if (import.CommandTimeout is > 0)
        {
            copy.Timeout = import.CommandTimeout.Value * 1000;
        }

        var records = new CsvRecords();
        Exception? sendFailure = null;
        Exception? sourceFailure = null;
        var cancelled = false;
        try
        {
            // Send checks the token before each piece: else the rest of the file would be read and sent for the
            // server to throw away.
            if (CsvRecords.Pump(text, buffer, pending, records, piece => !Send(copy, stop, piece, cancellationToken, ref cancelled, ref sendFailure)))
            {
                // The rows still buffered go out first, on their own: until they have, the end of the COPY cannot
                // have reached the server, and a failure is provably "nothing imported" (as AequorTableWriter.Complete).
                Send(copy, stop, ReadOnlyMemory<char>.Empty, cancellationToken, ref cancelled, ref sendFailure);
            }
        }
        catch (Exception ex) when (IsSourceFailure(ex))
        {
            sourceFailure = ex;
        }

        if (cancelled || sendFailure is not null || sourceFailure is not null)
        {
            // Read before the CopyFail's own wait re-arms the stop.
            var cut = stop.Cut;
            var endFailed = EndCopyWithCopyFail(copy, stop, connection, generation);
            if (cancelled)
            {
                var transaction = await AfterCancelledCopyAsync(generation, sendFailure ?? endFailed).ConfigureAwait(false);
                var how = cut
                    ? $"the server had not stopped it {stop.CancellationTimeout} ms after a cancel request (the connection's Cancellation Timeout), so the connection was closed, which ends the COPY: nothing was imported. The next statement opens a new connection."
                    : "the server stopped it, and nothing was imported.";
                var message = $"{load} was cancelled ({records.Ended} rows sent): {how}{transaction}";
                throw RaiseLoadError(sql, startedAt, cut || transaction.Length > 0
                    ? new AequorCopyCancelledException(message, sendFailure, cancellationToken)
                    : new OperationCanceledException(message, sendFailure, cancellationToken));
            }

            await AfterAbandonedImportAsync(generation, sendFailure ?? sourceFailure).ConfigureAwait(false);
            var line = records.LineBreaks + headerLines + 1;
            if (sourceFailure is DecoderFallbackException && FirstInvalidUtf8(source, origin) is { } bad)
            {
                line = bad.Line;
            }

            Exception thrown = sourceFailure is not null
                ? new AequorCopyFailedException($"{SourceFailureText(sourceFailure, line)}: the COPY was cancelled, nothing was imported.", sourceFailure)
                : inTransaction && (_connection is null || generation != Generation)
                    ? new AequorTransactionLostException($"The connection was lost while sending the file to the COPY into {table} inside a transaction (near its line {line}): nothing was imported, the transaction is lost (the server rolled it back) and nothing was sent again.", sendFailure)
                    : new AequorCopyFailedException($"The connection was lost while sending the file to the COPY into {table} (near its line {line}), before the end of the COPY was sent: nothing was imported (the server rolls back a COPY that did not finish), and it was not sent again.", sendFailure);
            throw RaiseLoadError(sql, startedAt, thrown);
        }

        Exception? failure = null;
        // Now the stop ends a COPY the server is still finishing (a slow trigger, a big index).
        stop.Arm(cancellationToken);
        try
        {
            // Sends the end of the COPY and reads the server's answer: from here a lost connection leaves the outcome unknown.
            copy.Dispose();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            failure = ex;
        }
        finally
        {
            // Waits for a cancel being sent: none may reach the server after the call returned.
            stop.Disarm();
        }

        if (failure is not null)
        {
            throw RaiseLoadError(sql, startedAt, await ImportFinishFailureAsync(failure, connection, generation, table, records.Count, source, origin, header is not null, stop.Requested, cancellationToken).ConfigureAwait(false));
        }

        AfterStatement(generation);
        _transactionAbortedBy = null;
        // The server's count: a BEFORE INSERT trigger may have kept rows out, as it would an INSERT's.
        var rows = CopyCommandRows.Of(connection) ?? records.Count;
        var elapsed = Stopwatch.GetElapsedTime(startedAt);
        if (OnQueryEnd is { } end)
        {
            EventDispatch.Raise(end, this, new AequorQueryEndEvent(sql, 0, (int)Math.Min(rows, int.MaxValue), 0, elapsed, 1), Counters);
        }

        return new AequorImportResult(rows, columns, elapsed);
    }

    private static bool IsSourceFailure(Exception ex) => ex is IOException or DecoderFallbackException or UnauthorizedAccessException;

    private static string SourceFailureText(Exception ex, long line) =>
        ex is DecoderFallbackException bad
            ? $"The file is not UTF-8: the byte{(bad.BytesUnknown is { Length: > 0 } bytes ? $" 0x{bytes[0]:X2}" : string.Empty)} on its line {line} is no UTF-8 (save it as UTF-8, e.g. Get-Content | Set-Content -Encoding utf8)"
            : $"The file could not be read near its line {line} ({ex.Message.TrimEnd('.')})";

    /// <summary>
    /// After a COPY ended by CopyFail for a failed send or an unreadable file: a connection found gone is marked dead;
    /// on one that goes on, the transaction the COPY ran in is aborted.
    /// </summary>
    private async Task AfterAbandonedImportAsync(long generation, Exception? failure)
    {
        if (_connection is { } connection && generation == Generation && !IsAlive(connection))
        {
            await MarkDeadAsync(generation, "copy", failure).ConfigureAwait(false);
            return;
        }

        if (_transaction is not null)
        {
            _transactionAbortedBy ??= failure ?? new AequorCopyFailedException("An import was cancelled inside the transaction, which aborted it.");
        }

        ObserveServerTransaction(generation);
    }

    /// <summary>
    /// Sends <paramref name="text"/> (nothing: flushes what is buffered) with the stop armed. True when the sending is
    /// over: the token was cancelled (before, or a cancel request went during the send) or the send failed.
    /// </summary>
    private static bool Send(NpgsqlCopyTextWriter copy, CopyStop stop, ReadOnlyMemory<char> text, CancellationToken cancellationToken, ref bool cancelled, ref Exception? sendFailure)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            cancelled = true;
            return true;
        }

        stop.Arm(cancellationToken);
        try
        {
            if (text.IsEmpty)
            {
                copy.Flush();
            }
            else
            {
                copy.Write(text.Span);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            sendFailure = ex;
        }
        finally
        {
            stop.Disarm();
        }

        // A send that failed because the connection was cut, or went through once the server dropped the rest.
        cancelled = stop.Requested;
        return cancelled || sendFailure is not null;
    }

    /// <summary>The line of the first byte that is no UTF-8, read again from the start; null when the stream cannot seek.</summary>
    private static (long Line, byte Byte)? FirstInvalidUtf8(Stream source, long origin)
    {
        if (!source.CanSeek)
        {
            return null;
        }

        try
        {
            source.Position = origin;
            return Utf8Lines.FirstInvalid(source);
        }
        catch (Exception ex) when (IsSourceFailure(ex) || ex is NotSupportedException or ObjectDisposedException)
        {
            return null;
        }
    }

    /// <summary>What a failure once the end of the COPY was sent throws, the connection and transaction brought up to date.</summary>
    private async Task<Exception> ImportFinishFailureAsync(Exception failure, NpgsqlConnection connection, long generation, string table, long rows, Stream source, long origin, bool header, bool cancelRequested, CancellationToken cancellationToken)
    {
        if (_connection is null || generation != Generation || IsConnectionFailure(failure, connection))
        {
            var inTransaction = _transaction is not null || SqlTransactionOpen;
            await MarkDeadAsync(generation, "copy", failure).ConfigureAwait(false);
            var how = cancellationToken.IsCancellationRequested ? "The import was cancelled and the connection was lost" : "The connection was lost";
            return inTransaction
                ? new AequorTransactionLostException($"{how} while finishing the COPY of {rows} rows into {table} inside a transaction: the transaction is lost (the server rolled it back) and nothing was imported or retried.", failure)
                : new AequorOutcomeUnknownException($"{how} while finishing the COPY of {rows} rows into {table}, after all of them and the end of the COPY were sent: whether they were imported is unknown, and nothing was retried. Check the table.", failure);
        }

        NoteTransactionError(failure);
        ObserveServerTransaction(generation);
        if (cancelRequested
            && failure is PostgresException { SqlState: PostgresErrorCodes.QueryCanceled } or NpgsqlException { InnerException: TimeoutException })
        {
            // The server answered the token's cancel request (57014) and the connection is fine: it rolled the COPY back.
            var transaction = _transaction is not null || SqlTransactionOpen ? " The transaction it ran in is aborted: roll it back." : string.Empty;
            var message = $"The import into {table} was cancelled: the server stopped it, and nothing was imported.{transaction}";
            return transaction.Length == 0 ? new OperationCanceledException(message, failure, cancellationToken) : new AequorCopyCancelledException(message, failure, cancellationToken);
        }

        if (failure is not PostgresException postgres)
        {
            return new AequorCopyFailedException($"The COPY into {table} failed: {failure.Message} Nothing was imported: COPY is one statement.", failure);
        }

        var serverText = $"{postgres.SqlState}: {postgres.MessageText}";
        if (postgres.Where is not { } where || CopyLineOf().Match(where) is not { Success: true } match)
        {
            return new AequorCopyFailedException($"The COPY into {table} failed: {serverText}{(postgres.Where is { } other ? $" ({other})" : string.Empty)}. Nothing was imported: COPY is one statement.", failure);
        }

        var serverLine = long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        var column = match.Groups[2].Success ? $" (column {match.Groups[2].Value})" : string.Empty;
        var located = LocateInSource(source, origin, header, serverLine);
        var which = located is { } found
            ? $"Line {found.Line} of the file (row {found.Record}) was refused"
            : $"Row {serverLine} of the file was refused";
        return new AequorCopyFailedException($"{which}: {serverText}{column}. Nothing was imported: COPY is one statement.", failure)
        {
            Row = located?.Record ?? serverLine,
        };
    }

    /// <summary>The record and file line the server's line number names, read again from the start; null when the stream cannot seek or fails.</summary>
    private static (long Record, long Line)? LocateInSource(Stream source, long origin, bool header, long serverLine)
    {
        if (!source.CanSeek)
        {
            return null;
        }

        try
        {
            source.Position = origin;
            using var again = new StreamReader(source, StrictUtf8, detectEncodingFromByteOrderMarks: true, ImportBufferChars, leaveOpen: true);
            var found = CsvRecords.Locate(again, header, serverLine);
            return found is { } f ? (f.Record, f.Line) : null;
        }
        catch (Exception ex) when (IsSourceFailure(ex) || ex is NotSupportedException or ObjectDisposedException)
        {
            return null;
        }
    }

    // "COPY t, line 3, column a: "x"": the column, when named, up to the colon before its value.
    [GeneratedRegex(@"\bline (\d+)(?:, column ([^:]+))?", RegexOptions.CultureInvariant)]
    private static partial Regex CopyLineOf();
}
