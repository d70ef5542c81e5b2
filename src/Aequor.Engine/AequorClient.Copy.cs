using System.Globalization;
using System.Text.RegularExpressions;
using Npgsql;

namespace Aequor.Engine;

/// <summary>Loading many rows in one statement: COPY … FROM STDIN, streamed through <see cref="AequorTableWriter"/>.</summary>
public sealed partial class AequorClient
{
    private const string ColumnsSql =
        "SELECT to_regclass($1) IS NOT NULL, ARRAY(SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum)";

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

    private async Task<AequorTableWriter> OpenTableWriterCoreAsync(string table, string quoted, Func<IReadOnlyList<string>, IReadOnlyList<string>> chooseColumns, int? commandTimeout, CancellationToken cancellationToken)
    {
        if (_transactionLost)
        {
            throw LostInTransaction(_transactionLostBy);
        }

        var inTransaction = _transaction is not null || SqlTransactionOpen;
        NpgsqlConnection connection;
        if (inTransaction)
        {
            if (_connection is not { } open || !IsAlive(open))
            {
                // Never reconnect under an open transaction: the rows would be written outside it.
                await MarkDeadAsync(Generation, "state", null).ConfigureAwait(false);
                throw LostInTransaction(_lastDeath);
            }

            connection = open;
        }
        else
        {
            connection = await ProbedConnectionAsync("the COPY could begin", cancellationToken).ConfigureAwait(false);
        }

        _ = await JudgeCallsLostWithConnectionAsync(connection, cancellationToken).ConfigureAwait(false);
        if (TakeLostSessionState(SessionStatementEffect.None, "Nothing was written") is { } lost)
        {
            throw lost;
        }

        var generation = Generation;
        bool exists;
        string[] tableColumns;
        try
        {
            using var command = new NpgsqlCommand(ColumnsSql, connection);
            command.Parameters.Add(new NpgsqlParameter { Value = quoted, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            using var cancel = CancelOnToken(command.Cancel, cancellationToken);
            using var reader = command.ExecuteReader();
            reader.Read();
            exists = reader.GetBoolean(0);
            tableColumns = reader.GetFieldValue<string[]>(1);
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

        if (!exists)
        {
            throw new AequorConfigurationException($"The table {table} does not exist (or is not on the search_path; write schema.table). Nothing was written.");
        }

        var columns = chooseColumns(tableColumns);
        if (columns.Count == 0)
        {
            throw new AequorConfigurationException($"No column of the table {table} was chosen. Nothing was written.");
        }

        var sql = string.Create(CultureInfo.InvariantCulture, $"COPY {quoted} ({string.Join(", ", columns.Select(TableNames.Ident))}) FROM STDIN");
        NpgsqlCopyTextWriter copy;
        try
        {
            copy = connection.BeginTextImport(sql);
        }
        catch (Exception ex) when (_connection is { } current && !IsAlive(current))
        {
            await MarkDeadAsync(generation, "copy", ex).ConfigureAwait(false);
            throw new AequorCopyFailedException($"The connection was lost as the COPY into {table} began: nothing was written.", ex);
        }
        catch (PostgresException ex)
        {
            NoteTransactionError(ex);
            ObserveServerTransaction(generation);
            throw;
        }

        if (commandTimeout is > 0)
        {
            copy.Timeout = commandTimeout.Value * 1000;
        }

        return new AequorTableWriter(this, copy, generation, quoted, columns);
    }

    /// <summary>
    /// Ends a table writer's call and releases the gate: cancelled (<paramref name="copy"/> given, no failure), failed
    /// while sending (both), failed while finishing (failure only) or done (neither). Returns what to throw.
    /// </summary>
    internal Exception? EndTableWrite(long generation, NpgsqlCopyTextWriter? copy, Exception? failure, string? lostMessage, long rows = 0)
    {
        try
        {
            return EndTableWriteCoreAsync(generation, copy, failure, lostMessage, rows).GetAwaiter().GetResult();
        }
        finally
        {
            ReleaseGate();
        }
    }

    private async Task<Exception?> EndTableWriteCoreAsync(long generation, NpgsqlCopyTextWriter? copy, Exception? failure, string? lostMessage, long rows)
    {
        var connection = _connection;
        if (copy is not null)
        {
            try
            {
                // CopyFail: the server rolls the statement back (inside a transaction, the transaction is aborted).
                copy.Cancel();
                copy.Dispose();
            }
#pragma warning disable CA1031 // A cancel that meets a dead connection: the server rolls back the COPY by itself.
            catch (Exception)
#pragma warning restore CA1031
            {
            }

            if (connection is not null && generation == Generation && !IsAlive(connection))
            {
                await MarkDeadAsync(generation, "copy", failure).ConfigureAwait(false);
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
            return inTransaction
                ? new AequorTransactionLostException($"The connection was lost while finishing a COPY of {rows} rows inside a transaction: the transaction is lost (the server rolled it back) and nothing was written or retried.", failure)
                : new AequorOutcomeUnknownException($"The connection was lost while finishing a COPY of {rows} rows, after all of them were sent: whether they were written is unknown, and nothing was retried. Check the table.", failure);
        }

        NoteTransactionError(failure);
        ObserveServerTransaction(generation);
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

    [GeneratedRegex(@"\bline (\d+)", RegexOptions.CultureInvariant)]
    private static partial Regex LineOf();
}
