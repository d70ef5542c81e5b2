using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Npgsql;

namespace Aequor.Engine;

/// <summary>Loading many rows in one statement: COPY … FROM STDIN, streamed through <see cref="AequorTableWriter"/>.</summary>
public sealed partial class AequorClient
{
    // The writable columns, with each one's type and whether it is an array type (typcategory 'A', domains over arrays too).
    private const string ColumnsSql =
        "SELECT to_regclass($1) IS NOT NULL, ARRAY(SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum), " +
        "ARRAY(SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum), " +
        "ARRAY(SELECT t.typcategory = 'A' FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum)";

    /// <summary>
    /// Begins <c>COPY table (columns) FROM STDIN</c>: the table's writable columns are read first and handed to
    /// <paramref name="chooseColumns"/>, which returns those the rows fill (what it throws is passed on, nothing sent).
    /// Inside a transaction the COPY joins it. Never retried once begun: a write. The client is busy until the
    /// writer is completed or disposed.
    /// </summary>
    /// <param name="table">table, schema.table, or with double-quoted parts ("My Table").</param>
    /// <param name="commandTimeout">Seconds for each round trip of the COPY; null or 0: none.</param>
    public AequorTableWriter OpenTableWriter(string table, Func<IReadOnlyList<string>, IReadOnlyList<string>> chooseColumns, int? commandTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(chooseColumns);
        var quoted = TableNames.Quote(table);
        using var call = EnterAsync(synchronous: true, cancellationToken).AsTask().GetAwaiter().GetResult();
        var handedOut = false;
        try
        {
            var writer = OpenTableWriterCoreAsync(table, quoted, chooseColumns, commandTimeout, call.Token).GetAwaiter().GetResult();
            handedOut = true;
            return writer;
        }
        catch (OperationCanceledException ex) when (DisposedDuring(cancellationToken))
        {
            throw ClientDisposed(ex);
        }
        finally
        {
            if (!handedOut)
            {
                ReleaseGate();
            }
        }
    }

    /// <summary>
    /// The columns rows can fill in <paramref name="table"/> (generated ones left out), read as
    /// <see cref="OpenTableWriter"/> reads them, with no COPY begun: what a load of no rows checks, so a misspelt
    /// table is said on the day it is misspelt, not on the first day rows come. A COPY of no rows would fire the
    /// table's statement triggers and take its lock. Throws <see cref="AequorConfigurationException"/> when the
    /// table does not exist.
    /// </summary>
    public IReadOnlyList<string> ReadTableColumns(string table, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(table);
        var quoted = TableNames.Quote(table);
        using var call = EnterAsync(synchronous: true, cancellationToken).AsTask().GetAwaiter().GetResult();
        try
        {
            return ReadTableColumnsCoreAsync(table, quoted, call.Token).GetAwaiter().GetResult();
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

    private async Task<IReadOnlyList<string>> ReadTableColumnsCoreAsync(string table, string quoted, CancellationToken cancellationToken)
    {
        var inTransaction = _transaction is not null || SqlTransactionOpen;
        var connection = await CopyConnectionAsync(inTransaction, "the table could be read", "Nothing was written", cancellationToken).ConfigureAwait(false);
        var (exists, tableColumns, _, _) = await ReadCatalogueAsync(connection, ColumnsSql, quoted, Generation, ReadColumns, cancellationToken).ConfigureAwait(false);
        return exists ? tableColumns : throw NoSuchTable(table);
    }

    private static (bool Exists, string[] Columns, string[] Types, bool[] Arrays) ReadColumns(NpgsqlDataReader reader)
    {
        reader.Read();
        return (reader.GetBoolean(0), reader.GetFieldValue<string[]>(1), reader.GetFieldValue<string[]>(2), reader.GetFieldValue<bool[]>(3));
    }

    private static AequorConfigurationException NoSuchTable(string table) =>
        new($"The table {table} does not exist (or is not on the search_path; write schema.table). Nothing was written.");

    private async Task<AequorTableWriter> OpenTableWriterCoreAsync(string table, string quoted, Func<IReadOnlyList<string>, IReadOnlyList<string>> chooseColumns, int? commandTimeout, CancellationToken cancellationToken)
    {
        var inTransaction = _transaction is not null || SqlTransactionOpen;
        var connection = await CopyConnectionAsync(inTransaction, "the COPY could begin", "Nothing was written", cancellationToken).ConfigureAwait(false);
        var generation = Generation;
        var (exists, tableColumns, tableTypes, tableArrays) = await ReadCatalogueAsync(connection, ColumnsSql, quoted, generation, ReadColumns, cancellationToken).ConfigureAwait(false);
        if (!exists)
        {
            throw NoSuchTable(table);
        }

        var columns = chooseColumns(tableColumns);
        if (columns.Count == 0)
        {
            throw new AequorConfigurationException($"No column of the table {table} was chosen. Nothing was written.");
        }

        var types = new List<ColumnType>(columns.Count);
        foreach (var column in columns)
        {
            var at = Array.IndexOf(tableColumns, column);
            types.Add(at >= 0 && at < tableTypes.Length && at < tableArrays.Length ? new ColumnType(tableTypes[at], tableArrays[at]) : new ColumnType("?", true));
        }

        var sql = string.Create(CultureInfo.InvariantCulture, $"COPY {quoted} ({string.Join(", ", columns.Select(TableNames.Ident))}) FROM STDIN");
        // From here the load is a statement the events see: OnQueryStart now, then OnQueryEnd or OnQueryError.
        var startedAt = Stopwatch.GetTimestamp();
        if (OnQueryStart is { } start)
        {
            EventDispatch.Raise(start, this, new AequorQueryStartEvent(sql, 0, DateTimeOffset.UtcNow), Counters);
        }

        // The COPY waits for the table's lock before the server takes any row: a token cancelled meanwhile stops it.
        var stop = new CopyStop(connection);
        var copy = await BeginCopyAsync(connection, stop, sql, startedAt, generation, $"The COPY into {table}", "nothing was written",
            $"The connection was lost as the COPY into {table} began: nothing was written.", cancellationToken).ConfigureAwait(false);
        if (commandTimeout is > 0)
        {
            copy.Timeout = commandTimeout.Value * 1000;
        }

        return new AequorTableWriter(this, connection, stop, copy, generation, quoted, columns, types, sql, startedAt);
    }

    /// <summary>
    /// Sends <paramref name="sql"/> (COPY … FROM STDIN) with <paramref name="stop"/> armed, as the server may hold it
    /// waiting for the table's lock before it asks for the data. A cancel or a lost connection meanwhile throws what
    /// the caller's load says (nothing was sent but the statement); a COPY that began as the cancel went is ended
    /// unused with CopyFail.
    /// </summary>
    /// <param name="load">"The COPY into t" or "The import into t".</param>
    /// <param name="nothing">"nothing was written" or "nothing was imported".</param>
    /// <param name="lost">The message for a connection lost as the COPY began.</param>
    private async Task<NpgsqlCopyTextWriter> BeginCopyAsync(NpgsqlConnection connection, CopyStop stop, string sql, long startedAt, long generation, string load, string nothing, string lost, CancellationToken cancellationToken)
    {
        NpgsqlCopyTextWriter copy;
        stop.Arm(cancellationToken);
        try
        {
            try
            {
                copy = connection.BeginTextImport(sql);
            }
            finally
            {
                stop.Disarm();
            }
        }
        catch (Exception ex) when (stop.Requested)
        {
            throw RaiseLoadError(sql, startedAt, await CancelledBeginningAsync(load, nothing, generation, stop, ex, cancellationToken).ConfigureAwait(false));
        }
        catch (Exception ex) when (_connection is { } current && !IsAlive(current))
        {
            await MarkDeadAsync(generation, "copy", ex).ConfigureAwait(false);
            throw RaiseLoadError(sql, startedAt, new AequorCopyFailedException(lost, ex));
        }
        catch (Exception ex)
        {
            // Only a server error (a SQLSTATE) aborts an open transaction.
            NoteTransactionError(ex);
            ObserveServerTransaction(generation);
            RaiseLoadError(sql, startedAt, ex);
            throw;
        }

        if (stop.Requested)
        {
            // The table's lock came as the cancel went: the COPY began, and is ended here unused.
            EndCopyWithCopyFail(copy, stop, connection, generation);
            throw RaiseLoadError(sql, startedAt, await CancelledBeginningAsync(load, nothing, generation, stop, null, cancellationToken).ConfigureAwait(false));
        }

        return copy;
    }

    /// <summary>
    /// The COPY was cancelled before it began (it waited for the table's lock): the server stopped it, or the
    /// connection was cut. Either way nothing was written; what became of an open transaction is said.
    /// </summary>
    /// <param name="load">"The COPY into t" or "The import into t".</param>
    /// <param name="nothing">"nothing was written" or "nothing was imported".</param>
    private async Task<AequorCopyCancelledException> CancelledBeginningAsync(string load, string nothing, long generation, CopyStop stop, Exception? failure, CancellationToken cancellationToken)
    {
        var how = stop.Cut
            ? $"the server had not stopped it {stop.CancellationTimeout} ms after a cancel request (the connection's Cancellation Timeout), so the connection was closed: {nothing}. The next statement opens a new connection."
            : $"the server stopped it, and {nothing}.";
        var message = $"{load} was cancelled before it began (it waited for the table's lock): {how}";
        return new AequorCopyCancelledException(message + await AfterCancelledCopyAsync(generation, failure).ConfigureAwait(false), failure, cancellationToken);
    }

    /// <summary>
    /// A COPY the caller cancelled has ended: on a connection that is gone (cut, or lost meanwhile) it is marked dead
    /// and a transaction it ran in is lost; on one that goes on, that transaction is aborted (57014). Returns what to add
    /// to the message about the transaction, or nothing.
    /// </summary>
    private async Task<string> AfterCancelledCopyAsync(long generation, Exception? failure)
    {
        var inTransaction = _transaction is not null || SqlTransactionOpen;
        if (_connection is not { } connection || generation != Generation)
        {
            return string.Empty;
        }

        if (!IsAlive(connection))
        {
            await MarkDeadAsync(generation, "copy", failure).ConfigureAwait(false);
            return inTransaction ? " The transaction it ran in is lost: the server rolls it back." : string.Empty;
        }

        if (_transaction is not null)
        {
            _transactionAbortedBy ??= new AequorCopyFailedException("A COPY was cancelled inside the transaction, which aborted it.", failure);
        }

        ObserveServerTransaction(generation);
        return inTransaction ? " The transaction it ran in is aborted: roll it back." : string.Empty;
    }

    private Exception RaiseLoadError(string sql, long startedAt, Exception error)
    {
        if (OnQueryError is { } handlers)
        {
            EventDispatch.Raise(handlers, this, new AequorQueryErrorEvent(sql, 0, error, Stopwatch.GetElapsedTime(startedAt), 1, false), Counters);
        }

        return error;
    }

    /// <summary>
    /// Ends a table writer's call, raises its OnQueryEnd or OnQueryError and releases the gate: cancelled
    /// (<paramref name="copy"/> given, no failure; <paramref name="cancelled"/> says why), failed while sending (both),
    /// failed while finishing (failure only; <paramref name="cancelled"/> when the caller's token had sent the server
    /// a cancel request) or done (neither). Returns what to throw.
    /// </summary>
    internal Exception? EndTableWrite(AequorTableWriter writer, NpgsqlCopyTextWriter? copy, Exception? failure, string? lostMessage, Exception? cancelled = null)
    {
        try
        {
            var result = EndTableWriteCoreAsync(writer, copy, failure, lostMessage, cancelled).GetAwaiter().GetResult();
            if (result is null && copy is null)
            {
                if (OnQueryEnd is { } end)
                {
                    var rows = writer.RowsStored;
                    EventDispatch.Raise(end, this, new AequorQueryEndEvent(writer.CommandText, 0, (int)Math.Min(rows, int.MaxValue), 0, writer.Elapsed, 1), Counters);
                }
            }
            else
            {
                RaiseLoadError(writer.CommandText, writer.StartedAt, result ?? cancelled ?? new OperationCanceledException("The COPY was cancelled: nothing was written."));
            }

            return result;
        }
        finally
        {
            ReleaseGate();
        }
    }

    private async Task<Exception?> EndTableWriteCoreAsync(AequorTableWriter writer, NpgsqlCopyTextWriter? copy, Exception? failure, string? lostMessage, Exception? cancelled)
    {
        var generation = writer.Generation;
        var rows = writer.RowsWritten;
        var connection = _connection;
        if (copy is not null)
        {
            var endFailed = EndCopyWithCopyFail(copy, writer.Stop, connection, generation);

            if (cancelled is OperationCanceledException stopped && failure is null)
            {
                var transaction = await AfterCancelledCopyAsync(generation, endFailed).ConfigureAwait(false);
                return transaction.Length == 0 ? stopped : new AequorCopyCancelledException(stopped.Message + transaction, stopped.InnerException, stopped.CancellationToken);
            }

            if (connection is not null && generation == Generation && !IsAlive(connection))
            {
                await MarkDeadAsync(generation, "copy", failure ?? endFailed).ConfigureAwait(false);
            }
            else
            {
                if (_transaction is not null)
                {
                    _transactionAbortedBy ??= failure ?? new AequorCopyFailedException("A COPY was cancelled inside the transaction, which aborted it.");
                }

                ObserveServerTransaction(generation);
            }

            return failure is null ? null : new AequorCopyFailedException(lostMessage ?? failure.Message, failure);
        }

        if (failure is null)
        {
            AfterStatement(generation);
            _transactionAbortedBy = null;
            return null;
        }

        if (connection is null || generation != Generation || IsConnectionFailure(failure, connection))
        {
            var inTransaction = _transaction is not null || SqlTransactionOpen;
            await MarkDeadAsync(generation, "copy", failure).ConfigureAwait(false);
            var how = cancelled is null ? "The connection was lost" : "The COPY was cancelled and the connection was lost";
            return inTransaction
                ? new AequorTransactionLostException($"{how} while finishing a COPY of {rows} rows inside a transaction: the transaction is lost (the server rolled it back) and nothing was written or retried.", failure)
                : new AequorOutcomeUnknownException($"{how} while finishing a COPY of {rows} rows, after all of them and the end of the COPY were sent: whether they were written is unknown, and nothing was retried. Check the table.", failure);
        }

        NoteTransactionError(failure);
        ObserveServerTransaction(generation);
        if (cancelled is OperationCanceledException asked
            && failure is PostgresException { SqlState: PostgresErrorCodes.QueryCanceled } or NpgsqlException { InnerException: TimeoutException })
        {
            // The server answered the token's cancel request (57014) and the connection is fine: it stopped the COPY and
            // rolled it back. Npgsql reports its own cancel's 57014 as a TimeoutException, keeping the server's error.
            var transaction = _transaction is not null || SqlTransactionOpen ? " The transaction it ran in is aborted: roll it back." : string.Empty;
            return new AequorCopyCancelledException(asked.Message + transaction, failure, asked.CancellationToken);
        }

        long? row = null;
        var serverText = failure.Message;
        if (failure is PostgresException postgres)
        {
            serverText = $"{postgres.SqlState}: {postgres.MessageText}";
            if (postgres.Where is { } where && LineOf().Match(where) is { Success: true } match)
            {
                row = long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
                serverText += $" ({where})";
            }
        }

        var which = row is { } r ? $"Row {r} of the input was refused" : "The COPY failed";
        return new AequorCopyFailedException($"{which}: {serverText}. Nothing was written: COPY is one statement.", failure) { Row = row };
    }

    /// <summary>
    /// Ends a COPY … FROM STDIN with CopyFail: the server rolls the statement back (inside a transaction, the
    /// transaction is aborted). Returns what ending it failed with, or null. A connection that looks alive after a
    /// failed end is cut: Npgsql may still be inside the COPY (it then refuses every later statement).
    /// </summary>
    private Exception? EndCopyWithCopyFail(NpgsqlCopyTextWriter copy, CopyStop stop, NpgsqlConnection? connection, long generation)
    {
        Exception? endFailed = null;
        // A server held up (a lock, a slow trigger) reads the CopyFail only when it is let go, and the caller would
        // wait for the COPY's round-trip timeout: unanswered for a moment, the server is sent a cancel request.
        using (var abandon = new CancellationTokenSource(CopyFailAnswer))
        {
            stop.Arm(abandon.Token);
            try
            {
                copy.Cancel();
            }
#pragma warning disable CA1031 // A cancel that meets a dead connection: the server rolls back the COPY by itself.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                endFailed = ex;
            }
            finally
            {
                stop.Disarm();
            }
        }

        try
        {
            copy.Dispose();
        }
#pragma warning disable CA1031 // The writer's own text buffer, flushed into the ended COPY: ObjectDisposedException, nothing sent.
        catch (Exception)
#pragma warning restore CA1031
        {
        }

        if (endFailed is not null && connection is not null && generation == Generation && IsAlive(connection))
        {
            // The next statement opens a new connection.
            ConnectionCut.TryCut(connection);
        }

        return endFailed;
    }

    /// <summary>How long the server's answer to a CopyFail is waited for before it is sent a cancel request.</summary>
    private static readonly TimeSpan CopyFailAnswer = TimeSpan.FromMilliseconds(500);

    [GeneratedRegex(@"\bline (\d+)", RegexOptions.CultureInvariant)]
    private static partial Regex LineOf();

    /// <summary>
    /// The connection a COPY (a table load or an export) runs on: the open transaction's, never replaced — the COPY would
    /// run outside it; else one probed as a statement's. Session state a reconnect lost is reported first
    /// (<paramref name="notDone"/>: "Nothing was written").
    /// </summary>
    private async Task<NpgsqlConnection> CopyConnectionAsync(bool inTransaction, string beginning, string notDone, CancellationToken cancellationToken)
    {
        if (_transactionLost)
        {
            throw LostInTransaction(_transactionLostBy);
        }

        NpgsqlConnection connection;
        if (inTransaction)
        {
            if (_connection is not { } open || !IsAlive(open))
            {
                await MarkDeadAsync(Generation, "state", null).ConfigureAwait(false);
                throw LostInTransaction(_lastDeath);
            }

            connection = open;
        }
        else
        {
            connection = await ProbedConnectionAsync(beginning, cancellationToken).ConfigureAwait(false);
        }

        _ = await JudgeCallsLostWithConnectionAsync(connection, cancellationToken).ConfigureAwait(false);
        if (TakeLostSessionState(SessionStatementEffect.None, notDone) is { } lost)
        {
            throw lost;
        }

        return connection;
    }

    /// <summary>
    /// A catalogue query about the table a COPY names (<paramref name="quoted"/> as $1), before the COPY: a connection
    /// found dead here is marked so, and a server error counts as the transaction's, as a statement's would.
    /// </summary>
    private async Task<T> ReadCatalogueAsync<T>(NpgsqlConnection connection, string sql, string quoted, long generation, Func<NpgsqlDataReader, T> read, CancellationToken cancellationToken)
    {
        try
        {
            using var command = new NpgsqlCommand(sql, connection);
            command.Parameters.Add(new NpgsqlParameter { Value = quoted, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            using var cancel = CancelOnToken(command, cancellationToken);
            using var reader = command.ExecuteReader();
            return read(reader);
        }
        catch (Exception ex) when (_connection is { } current && !IsAlive(current))
        {
            await MarkDeadAsync(generation, "copy", ex).ConfigureAwait(false);
            throw;
        }
        catch (Exception ex) when (ex is PostgresException)
        {
            NoteTransactionError(ex);
            ObserveServerTransaction(generation);
            throw;
        }
    }
}
