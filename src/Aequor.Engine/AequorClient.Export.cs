using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace Aequor.Engine;

/// <summary>Exporting rows as CSV in one statement: COPY … TO STDOUT, streamed into the caller's writer.</summary>
public sealed partial class AequorClient
{
    // Every column a SELECT would show (generated ones too), the relation's kind, whether it has generated columns and
    // whether other tables inherit from it: COPY t TO works on a plain table only, leaves out its generated columns
    // (refuses them when listed) and copies t's own rows, not its inheritance children's (which SELECT shows); a view,
    // materialized view, foreign or partitioned table, a table with generated columns or with children goes through
    // COPY (SELECT … FROM t).
    private const string ExportColumnsSql =
        "SELECT c.relkind::text, ARRAY(SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum), " +
        "EXISTS(SELECT FROM pg_catalog.pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped AND attgenerated <> '') " +
        "OR EXISTS(SELECT FROM pg_catalog.pg_inherits WHERE inhparent = c.oid) FROM pg_catalog.pg_class c WHERE c.oid = to_regclass($1)";

    private const int ExportBufferChars = 64 * 1024;

    /// <summary>
    /// Streams <c>COPY table (columns) TO STDOUT</c> or <c>COPY (query) TO STDOUT</c> as CSV (the server formats and
    /// quotes every value) into <paramref name="destination"/>, nothing kept in memory. Inside a transaction it joins
    /// it and sees its uncommitted rows. A connection found dead before the COPY is replaced as for any statement (a
    /// table's export is also begun again once when the connection is found dead as it begins); once rows flowed, a
    /// lost connection is an <see cref="AequorExportFailedException"/> and nothing is sent again: what reached
    /// <paramref name="destination"/> is then a part only, for the caller to throw away. A cancelled token sends the
    /// server a cancel request: the rows stop, <see cref="OperationCanceledException"/>, the client goes on.
    /// </summary>
    public AequorExportResult ExportCsv(AequorCsvExport export, TextWriter destination, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(export);
        ArgumentNullException.ThrowIfNull(destination);
        export.Validate();
        using var call = EnterAsync(synchronous: true, cancellationToken).AsTask().GetAwaiter().GetResult();
        try
        {
            return ExportCsvCoreAsync(export, destination, call.Token).GetAwaiter().GetResult();
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

    private async Task<AequorExportResult> ExportCsvCoreAsync(AequorCsvExport export, TextWriter destination, CancellationToken cancellationToken)
    {
        var what = export.Table is { } name ? $"the table {name}" : "the query";
        long? startedAt = null;
        string? sql = null;
        for (var attempt = 1; ; attempt++)
        {
            var inTransaction = _transaction is not null || SqlTransactionOpen;
            var connection = await ExportConnectionAsync(inTransaction, cancellationToken).ConfigureAwait(false);
            var generation = Generation;
            if (export.Table is { } table)
            {
                try
                {
                    sql = await TableExportSqlAsync(connection, export, table, generation, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not AequorConfigurationException && !IsAlive(connection))
                {
                    // The catalogue query found the connection dead (and dropped it): nothing of the export was sent.
                    if (inTransaction)
                    {
                        throw LostInTransaction(ex);
                    }

                    if (attempt == 1 && !cancellationToken.IsCancellationRequested)
                    {
                        continue;
                    }

                    throw new AequorExportFailedException($"The connection was lost before the export of {what} began: nothing was exported.", ex);
                }
            }
            else
            {
                sql = $"COPY (\n{ExportQueryText.Body(export.Query!)}\n) TO STDOUT {CsvOptions(export)}";
            }

            // Before the COPY is sent: a token already cancelled throws here, and nothing was sent.
            using var cancel = CancelOnToken(() => ServerCancel.TrySend(connection), cancellationToken);
            if (startedAt is null)
            {
                // Once, also when a table's export is begun again on a fresh connection: then OnQueryEnd or OnQueryError.
                startedAt = Stopwatch.GetTimestamp();
                if (OnQueryStart is { } start)
                {
                    EventDispatch.Raise(start, this, new AequorQueryStartEvent(sql, 0, DateTimeOffset.UtcNow), Counters);
                }
            }

            // Its own timeout, not Npgsql's (ExportReadTimeout): null takes the connection's, 0 waits forever.
            using var timeout = new ExportReadTimeout(connection, export.CommandTimeout ?? _baseBuilder.CommandTimeout);
            TextReader reader;
            try
            {
                timeout.Arm();
                reader = connection.BeginTextExport(sql);
                timeout.Disarm();
            }
            catch (Exception ex) when (!IsAlive(connection))
            {
                await MarkDeadAsync(generation, "copy", ex).ConfigureAwait(false);
                if (ex is NpgsqlException { InnerException: TimeoutException } && !inTransaction)
                {
                    // Npgsql bounds the wait for the COPY's start by the session's timeout, and breaks the connection
                    // at its end: the server had not sent a row yet (it flushes the start with the first rows).
                    var seconds = _baseBuilder.CommandTimeout;
                    throw RaiseLoadError(sql, startedAt.Value, new AequorCommandTimeoutException(
                        $"The export of {what} sent no rows within the session's command timeout of {seconds} s: nothing was exported, and it was not sent again (the connection was replaced). The wait for the first rows is bounded by the session's command timeout whatever the export's own; connect with a longer -CommandTimeout for a query slow to start.",
                        ex) { TimeoutSeconds = seconds });
                }

                if (attempt == 1 && !inTransaction && export.Table is not null && !cancellationToken.IsCancellationRequested)
                {
                    // A read of a table, none of it seen yet: the connection died before it, and a fresh one takes it.
                    continue;
                }

                throw RaiseLoadError(sql, startedAt.Value, inTransaction
                    ? LostInTransaction(ex)
                    : new AequorExportFailedException($"The connection was lost as the export of {what} began: nothing was exported, and it was not sent again.", ex));
            }
            catch (Exception ex)
            {
                throw RaiseLoadError(sql, startedAt.Value, ExportFailure(ex, connection, generation, inTransaction, what, 0, timeout, cancellationToken));
            }

            if (reader is NpgsqlCopyTextReader timed)
            {
                // No Npgsql timeout under the rows (it would break the connection): ExportReadTimeout counts instead.
                timed.Timeout = 0;
            }

            var buffer = new char[ExportBufferChars];
            long characters = 0;
            long lines = 0;
            var inQuotes = false;
            Exception? failure = null;
            Exception? destinationFailure = null;
            try
            {
                int read;
                while (true)
                {
                    timeout.Arm();
                    read = reader.Read(buffer, 0, buffer.Length);
                    timeout.Disarm();
                    if (read == 0)
                    {
                        break;
                    }

                    // Rows end at a line break outside quotes: the server quotes every value that holds one.
                    foreach (var c in buffer.AsSpan(0, read))
                    {
                        if (c == '"')
                        {
                            inQuotes = !inQuotes;
                        }
                        else if (c == '\n' && !inQuotes)
                        {
                            lines++;
                        }
                    }

                    WriteOut(destination, buffer, read, connection);
                    characters += read;
                }

                // Reads the server's CommandComplete: only now has the COPY ended.
                timeout.Arm();
                reader.Dispose();
                timeout.Disarm();
            }
            catch (DestinationFailedException failed)
            {
                destinationFailure = failed.InnerException!;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                failure = ex;
            }

            var rows = Math.Max(0, lines - (export.Header ? 1 : 0));
            if (destinationFailure is not null)
            {
                DisposeQuietly(reader);
                if (_connection is { } current && generation == Generation && !IsAlive(current))
                {
                    await MarkDeadAsync(generation, "copy", destinationFailure).ConfigureAwait(false);
                }
                else
                {
                    ObserveServerTransaction(generation);
                    if (_transaction is not null && ServerTransaction.Of(connection) == ServerTransactionStatus.Failed)
                    {
                        _transactionAbortedBy ??= new AequorExportFailedException("An export was stopped inside the transaction (its destination failed), which aborted it.", destinationFailure);
                    }
                }

                RaiseLoadError(sql, startedAt.Value, destinationFailure);
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(destinationFailure).Throw();
            }

            if (failure is not null)
            {
                DisposeQuietly(reader);
                throw RaiseLoadError(sql, startedAt.Value, ExportFailure(failure, connection, generation, inTransaction, what, rows, timeout, cancellationToken));
            }

            AfterStatement(generation);
            var elapsed = Stopwatch.GetElapsedTime(startedAt.Value);
            if (OnQueryEnd is { } end)
            {
                EventDispatch.Raise(end, this, new AequorQueryEndEvent(sql, 0, (int)Math.Min(rows, int.MaxValue), rows, elapsed, attempt), Counters);
            }

            return new AequorExportResult(rows, characters, elapsed);
        }
    }

    /// <summary>The caller's writer failed (a full disk): the server is told to stop sending, and the failure is the caller's.</summary>
    private static void WriteOut(TextWriter destination, char[] buffer, int count, NpgsqlConnection connection)
    {
        try
        {
            destination.Write(buffer, 0, count);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Otherwise disposing the COPY reads all the rows still coming, to their end.
            ServerCancel.TrySend(connection);
            throw new DestinationFailedException(ex);
        }
    }

    private sealed class DestinationFailedException(Exception inner) : Exception("The export's destination failed.", inner);

    private static void DisposeQuietly(TextReader reader)
    {
        try
        {
            reader.Dispose();
        }
#pragma warning disable CA1031 // Ending a COPY that already failed must not replace the failure the caller needs to see.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    /// <summary>What a failed export throws, after the connection and the transaction were brought up to date.</summary>
    private Exception ExportFailure(Exception failure, NpgsqlConnection connection, long generation, bool inTransaction, string what, long rows, ExportReadTimeout timeout, CancellationToken cancellationToken)
    {
        var cancelled = cancellationToken.IsCancellationRequested;
        if (generation != Generation || IsConnectionFailure(failure, connection))
        {
            MarkDeadAsync(generation, "copy", failure).AsTask().GetAwaiter().GetResult();
            var how = cancelled ? "The export was cancelled and the connection was lost" : "The connection was lost";
            return inTransaction
                ? new AequorTransactionLostException($"{how} during the export of {what} inside a transaction, after {rows} rows: the export is incomplete, the transaction is lost (the server rolled it back) and nothing was sent again.", failure)
                : new AequorExportFailedException($"{how} during the export of {what}, after {rows} rows: the export is incomplete and was not sent again.", failure);
        }

        Exception thrown = failure;
        if (cancelled && failure is PostgresException { SqlState: PostgresErrorCodes.QueryCanceled } or NpgsqlException { InnerException: TimeoutException } or OperationCanceledException)
        {
            thrown = new OperationCanceledException($"The export of {what} was cancelled after {rows} rows: the server stopped it.", failure, cancellationToken);
        }
        else if (timeout.Fired && failure is PostgresException { SqlState: PostgresErrorCodes.QueryCanceled } or NpgsqlException { InnerException: TimeoutException })
        {
            // Only when the export's timer sent the cancel: the server's statement_timeout is a 57014 too, and stays its own error.
            thrown = new AequorCommandTimeoutException(
                $"The export of {what} ran past its command timeout of {timeout.Seconds} s (waiting for the server), after {rows} rows: the server stopped it{(inTransaction ? ", which aborted the transaction" : string.Empty)}.",
                failure) { TimeoutSeconds = timeout.Seconds };
        }

        NoteTransactionError(thrown is OperationCanceledException ? failure : thrown);
        ObserveServerTransaction(generation);
        return thrown;
    }

    /// <summary>The connection the export runs on (<see cref="CopyConnectionAsync"/>); one the function look-up found dead is left to the COPY to report.</summary>
    private async Task<NpgsqlConnection> ExportConnectionAsync(bool inTransaction, CancellationToken cancellationToken)
    {
        var connection = await CopyConnectionAsync(inTransaction, "the export could begin", "Nothing was exported", cancellationToken).ConfigureAwait(false);
        return _connection ?? connection;
    }

    /// <summary>The COPY of a table, its columns checked against the catalogue first: a missing one is named, nothing sent.</summary>
    private async Task<string> TableExportSqlAsync(NpgsqlConnection connection, AequorCsvExport export, string table, long generation, CancellationToken cancellationToken)
    {
        var quoted = TableNames.Quote(table);
        var (kind, tableColumns, needsSelect) = await ReadCatalogueAsync(connection, ExportColumnsSql, quoted, generation, reader =>
            reader.Read() ? ((string?)reader.GetString(0), reader.GetFieldValue<string[]>(1), reader.GetBoolean(2)) : (null, [], false), cancellationToken).ConfigureAwait(false);

        if (kind is null)
        {
            throw new AequorConfigurationException($"The table {table} does not exist (or is not on the search_path; write schema.table). Nothing was exported.");
        }

        string? columnList = null;
        if (export.Columns is { } asked)
        {
            var chosen = new List<string>();
            foreach (var column in asked)
            {
                var match = tableColumns.FirstOrDefault(c => string.Equals(c, column, StringComparison.Ordinal))
                    ?? tableColumns.FirstOrDefault(c => string.Equals(c, column, StringComparison.OrdinalIgnoreCase))
                    ?? throw new AequorConfigurationException(
                        $"'{column}' is no column of the table {table}; its columns: {string.Join(", ", tableColumns)}. Nothing was exported.");
                if (chosen.Contains(TableNames.Ident(match)))
                {
                    // COPY refuses it with 42701, which would abort an open transaction over a repeated name.
                    throw new AequorConfigurationException($"The column '{match}' is chosen twice ('{column}'): name each column once. Nothing was exported.");
                }

                chosen.Add(TableNames.Ident(match));
            }

            columnList = string.Join(", ", chosen);
        }

        return kind == "r" && !needsSelect
            ? string.Create(CultureInfo.InvariantCulture, $"COPY {quoted}{(columnList is null ? string.Empty : $" ({columnList})")} TO STDOUT {CsvOptions(export)}")
            : string.Create(CultureInfo.InvariantCulture, $"COPY (SELECT {columnList ?? "*"} FROM {quoted}) TO STDOUT {CsvOptions(export)}");
    }

    private static string CsvOptions(AequorCsvExport export) => CsvCopyOptions.Text(export.Header, export.Delimiter);
}
