using System.Data;
using System.Diagnostics;
using Aequor.Engine.Reaper;
using Npgsql;

namespace Aequor.Engine;

/// <summary>Running a statement: attempts, write safety (what may be sent again), sending, readers.</summary>
public sealed partial class AequorClient
{
    private enum StatementMode
    {
        Reader,
        NonQuery,
        Scalar,
    }

    /// <summary>How far an attempt got: what the server can have seen of the caller's statement.</summary>
    private enum SendStage
    {
        /// <summary>Not written: it cannot have run.</summary>
        NotSent,

        /// <summary>Written behind a probe or renewal whose own result has not arrived yet.</summary>
        BehindPrefix,

        /// <summary>It may have run.</summary>
        Sent,
    }

    private sealed class Attempt
    {
        public SendStage Stage;

        /// <summary>Synchronous I/O takes no token: a cancelled token sends the server a cancel request instead.</summary>
        public CancellationTokenRegistration CancelOnToken;
    }

    /// <summary>
    /// One statement of the caller's, from taking the gate (<paramref name="takeGate"/>; false for a statement run by a
    /// call that holds it) to its result: a reader (the gate stays taken until it is disposed), the rows changed, or the
    /// first value. One asynchronous method on the way of every statement, not one per layer: each layer a statement
    /// passes costs a state machine and a task per call (measured: a SELECT 1 allocated 2,088 bytes here against
    /// 952 for Npgsql's own reader loop).
    /// </summary>
    /// <param name="synchronous">The statement's own round trips on the calling thread (Npgsql's synchronous
    /// methods); connecting, probes in a round trip of their own, delays and the reaper stay asynchronous.</param>
    private async Task<T> RunStatementAsync<T>(AequorStatement statement, StatementMode mode, bool synchronous, bool takeGate, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(statement);
        var callerToken = cancellationToken;
        var scope = takeGate ? await EnterAsync(synchronous, callerToken).ConfigureAwait(false) : default;
        if (takeGate)
        {
            cancellationToken = scope.Token;
        }

        var releaseGate = takeGate;
        try
        {
            RefusePlaceholderMismatch(statement);
            StatementParameters.RefuseUnstorableText(statement);
            var effect = ResolveKnownCalls(ScanSessionState(statement.CommandText));
            RefuseApplicationName(effect);
            // What runs in place of the caller's statement (ending a lost transaction) is no statement of theirs: the
            // session state it finds lost is reported at their next one.
            var callersStatement = true;
            if (_transactionLost || TransactionAborted)
            {
                if (await EndedTransactionStandInAsync(statement, synchronous, cancellationToken).ConfigureAwait(false) is { } standIn)
                {
                    statement = standIn;
                    effect = SessionStatementEffect.None;
                    callersStatement = false;
                }
            }

            var startedAt = Stopwatch.GetTimestamp();
            var parameterCount = ParameterCount(statement);
            if (OnQueryStart is { } start)
            {
                EventDispatch.Raise(start, this, new AequorQueryStartEvent(statement.CommandText, parameterCount, DateTimeOffset.UtcNow), Counters);
            }

            // Once per call, not per attempt: the scan reads the whole text.
            var describeFirst = TextOnlyColumns.MayReturn(statement.CommandText);
            CallState? call = null;
            var attemptNumber = 0;
            while (true)
            {
                // Every attempt: a retry delay or a reconnect may have outlived the client.
                ObjectDisposedException.ThrowIf(_disposed, this);
                attemptNumber++;
                var attempt = new Attempt();
                var inTransaction = _transaction is not null || SqlTransactionOpen;
                var generation = Generation;
                NpgsqlDataReader? reader = null;
                IAsyncDisposable? command = null;
                if (inTransaction && !(_connection is { } current && IsAlive(current)))
                {
                    // Never reconnect under an open transaction: the statement would run outside it.
                    await MarkDeadAsync(generation, "state", null).ConfigureAwait(false);
                    throw LostInTransaction(_lastDeath);
                }

                try
                {
                    var connection = _connection is { } open && IsAlive(open)
                        ? open
                        : await EnsureConnectedAsync(startedAt, cancellationToken).ConfigureAwait(false);
                    generation = Generation;
                    if (_typesStale)
                    {
                        await ReloadStaleTypesAsync(connection, synchronous, cancellationToken).ConfigureAwait(false);
                    }

                    var plan = inTransaction ? PlanCommitProbe(statement.CommandText) : PlanPrefix(connection, statement.CommandText);
                    if (describeFirst)
                    {
                        // A batch cannot ask for some columns as text: a probe or renewal due now goes alone, first.
                        plan = plan with { Standalone = true };
                    }

                    if (plan is { Kind: not PrefixKind.None, Standalone: true })
                    {
                        var outcome = await RunStandalonePrefixAsync(connection, plan, cancellationToken).ConfigureAwait(false);
                        if (outcome == PrefixOutcome.Reconnect)
                        {
                            // The statement was not sent; a fresh connection takes it.
                            throw new ConnectionReplacedSignal(_lastDeath);
                        }

                        plan = PrefixPlan.None;
                        connection = _connection!;
                    }

                    if (_unjudgedCalls is not null && await JudgeCallsLostWithConnectionAsync(connection, cancellationToken).ConfigureAwait(false) && !IsAlive(connection))
                    {
                        // Lost while the server was asked about the functions: the statement was not sent; a fresh connection takes it.
                        throw new ConnectionReplacedSignal(_lastDeath);
                    }

                    if (callersStatement && TakeLostSessionState(effect, "The statement was not run") is { } lost)
                    {
                        throw lost;
                    }

                    if (plan.Kind == PrefixKind.None)
                    {
                        // Sent here, not in a method of its own: one state machine less on every statement's way.
                        var plain = NewCommand(connection, statement);
                        command = plain;
                        if (synchronous)
                        {
                            attempt.CancelOnToken = CancelOnToken(plain, cancellationToken);
                        }

                        attempt.Stage = SendStage.Sent;
                        if (describeFirst)
                        {
                            plain.UnknownResultTypeList = await TextOnlyColumns.DescribeAsync(plain, synchronous, cancellationToken).ConfigureAwait(false);
                        }

                        reader = synchronous
                            ? plain.ExecuteReader()
                            : await plain.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        (reader, command) = await SendBehindPrefixAsync(connection, statement, plan.Kind, attempt, synchronous, cancellationToken).ConfigureAwait(false);
                    }

                    if (mode == StatementMode.Reader)
                    {
                        var first = await ReadAsync(reader, synchronous, cancellationToken).ConfigureAwait(false);
                        var handedOut = new AequorReader(reader, first, NewCompletion(statement, effect, parameterCount, generation, startedAt, attemptNumber, command));
                        reader = null;
                        command = null;
                        releaseGate = false;
                        return (T)(object)handedOut;
                    }

                    object? value = null;
                    if (mode == StatementMode.Scalar && reader.FieldCount > 0 && await ReadAsync(reader, synchronous, cancellationToken).ConfigureAwait(false))
                    {
                        try
                        {
                            value = AequorReader.ConvertValue(reader, 0);
                        }
                        catch (InvalidCastException) when (UnknownTypes.IsUnknown(reader, 0))
                        {
                            _typesStale = true;
                            throw;
                        }
                    }

                    await DrainAsync(reader, synchronous, cancellationToken).ConfigureAwait(false);
                    var records = reader.RecordsAffected;
                    await CloseAsync(reader, synchronous).ConfigureAwait(false);
                    reader = null;
                    AfterStatement(generation);
                    _transactionAbortedBy = null;
                    await AfterSessionStatementAsync(effect, generation, cancellationToken).ConfigureAwait(false);
                    RaiseQueryEnd(statement, parameterCount, records, value is null ? 0 : 1, startedAt, attemptNumber);
                    return mode == StatementMode.Scalar ? (T)value! : (T)(object)records;
                }
                catch (Exception ex)
                {
                    ErrorLocations.Remember(ex, statement.CommandText, reader, _connection);
                    if (reader is not null)
                    {
                        await DisposeQuietlyAsync(reader).ConfigureAwait(false);
                        reader = null;
                    }

                    // Now, not in finally: a cancel arriving during the retry delay would otherwise hit the next attempt.
                    attempt.CancelOnToken.Dispose();
                    var failure = ex is ConnectionReplacedSignal signal ? signal.InnerException ?? ex : ex;
                    if (_disposed && InterruptedByDispose(failure, attempt.Stage) is { } interrupted)
                    {
                        if (OnQueryError is { } disposedError)
                        {
                            EventDispatch.Raise(disposedError, this, new AequorQueryErrorEvent(statement.CommandText, parameterCount, interrupted, Stopwatch.GetElapsedTime(startedAt), attemptNumber, false), Counters);
                        }

                        throw interrupted;
                    }

                    call ??= new CallState(startedAt);
                    var (retry, delay, toThrow, reconnectOnly) = await DecideAsync(ex, statement, attempt.Stage, inTransaction, generation, call, cancellationToken).ConfigureAwait(false);
                    if (OnQueryError is { } error)
                    {
                        EventDispatch.Raise(error, this, new AequorQueryErrorEvent(statement.CommandText, parameterCount, failure, Stopwatch.GetElapsedTime(startedAt), attemptNumber, retry), Counters);
                    }

                    if (!retry)
                    {
                        if (attempt.Stage != SendStage.NotSent)
                        {
                            RememberAfterFailure(effect, generation);
                        }

                        if (toThrow is null && synchronous && cancellationToken.IsCancellationRequested && ex is not OperationCanceledException)
                        {
                            // What the asynchronous path reports for the same cancel (the server's 57014 inside).
                            toThrow = new OperationCanceledException("The statement was cancelled.", ex, cancellationToken);
                        }

                        toThrow ??= UnwritableParameter(ex);
                        if (toThrow is null)
                        {
                            throw;
                        }

                        throw toThrow;
                    }

                    if (!reconnectOnly)
                    {
                        Counters.Retried();
                        if (OnQueryRetry is { } retryHandlers)
                        {
                            EventDispatch.Raise(retryHandlers, this, new AequorQueryRetryEvent(statement.CommandText, call.Budget?.RetriesUsed ?? attemptNumber, delay, failure), Counters);
                        }
                    }

                    await DelayAsync(delay, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    attempt.CancelOnToken.Dispose();
                    if (command is not null)
                    {
                        await DisposeQuietlyAsync(command).ConfigureAwait(false);
                    }
                }
            }
        }
        catch (OperationCanceledException ex) when (takeGate && DisposedDuring(callerToken))
        {
            throw ClientDisposed(ex);
        }
        finally
        {
            if (releaseGate)
            {
                ReleaseGate();
            }

            scope.Dispose();
        }
    }

    private NpgsqlCommand NewCommand(NpgsqlConnection connection, AequorStatement statement)
    {
        var command = new NpgsqlCommand(statement.CommandText, connection, _transaction);
        try
        {
            if (statement.CommandTimeout is { } timeout)
            {
                command.CommandTimeout = timeout;
            }

            AddParameters(command.Parameters, statement);
            return command;
        }
        catch
        {
            command.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Before a statement on a session whose transaction was lost with its connection, or aborted by an error: what runs
    /// in its place (a ROLLBACK that ends the lost transaction runs as a harmless statement), or null to run it as it
    /// is; throws what the caller is told instead (a COMMIT of a lost or aborted transaction, any other statement while
    /// a lost transaction is not ended). Apart from the statement path so that its locals do not weigh on every call.
    /// </summary>
    private async Task<AequorStatement?> EndedTransactionStandInAsync(AequorStatement statement, bool synchronous, CancellationToken cancellationToken)
    {
        var control = TransactionControlText.Of(statement.CommandText);
        if (_transactionLost)
        {
            // A transaction opened in SQL is ended in SQL: its ROLLBACK or COMMIT ends the lost one too.
            if (control != TransactionControl.None)
            {
                var cause = _transactionLostBy;
                _transactionLost = false;
                _transactionLostBy = null;
                if (control == TransactionControl.Commit)
                {
                    throw LostTransactionCommitted(cause);
                }

                // The server already rolled it back: what runs instead ends with nothing to show, on a fresh
                // connection — or, for ROLLBACK AND CHAIN, opens the new transaction asked for.
                return new AequorStatement(TransactionControlText.Chains(statement.CommandText) ? "BEGIN" : "SELECT WHERE false");
            }
            else
            {
                throw _transactionLostBy is AequorOutcomeUnknownException unknown
                    ? new AequorTransactionLostException(
                        "The connection was lost after a statement that may have committed the transaction was sent: whether it committed is unknown. End it (a rollback succeeds) and check the data.", unknown)
                    : LostInTransaction(_transactionLostBy);
            }
        }
        else if (control == TransactionControl.Commit)
        {
            // A COMMIT of a transaction block an error aborted: the server would answer it with a rollback and no error.
            if (_transaction is { } transaction)
            {
                var abortedBy = _transactionAbortedBy;
                _transaction = null;
                _transactionAbortedBy = null;
                _serverTransaction = ServerTransactionStatus.Idle;
                try
                {
                    await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
                }
#pragma warning disable CA1031 // A connection lost here takes the aborted transaction with it: nothing was committed either way.
                catch (Exception)
#pragma warning restore CA1031
                {
                }
                finally
                {
                    await DisposeQuietlyAsync(transaction).ConfigureAwait(false);
                }

                var chained = TransactionControlText.Chains(statement.CommandText) && _connection is { } open && IsAlive(open);
                if (chained)
                {
                    // COMMIT AND CHAIN asked for a new transaction after this one: it gets one, as the SQL path does.
                    _transaction = await _connection!.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                }

                throw Aborted(abortedBy ?? new InvalidOperationException("The transaction had been aborted by an earlier error."), chained);
            }

            var chain = TransactionControlText.Chains(statement.CommandText);
            _ = await RunStatementAsync<int>(new AequorStatement(chain ? "ROLLBACK AND CHAIN" : "ROLLBACK"), StatementMode.NonQuery, synchronous, takeGate: false, cancellationToken).ConfigureAwait(false);
            throw new AequorTransactionAbortedException(
                "Nothing was committed: a statement had failed inside the transaction (opened in SQL), which aborted it, and it has been rolled back"
                + (chain ? " (AND CHAIN: a new transaction is open)" : string.Empty) + ". To keep the rest of a transaction after an error, roll back to a savepoint.");
        }

        return null;
    }

    /// <summary>
    /// What a call cut short by <see cref="DisposeAsync"/> reports; null: the server's own verdict on the statement
    /// (an error of its own, not the dispose's cancel), reported as usual.
    /// </summary>
    private Exception? InterruptedByDispose(Exception failure, SendStage stage)
    {
        var serverVerdict = failure as PostgresException ?? failure.InnerException as PostgresException;
        // Behind a probe the statement stays unconfirmed until the whole batch ends: only a server error that
        // came first proves it never started, as in DecideAsync.
        if (stage == SendStage.NotSent || (stage == SendStage.BehindPrefix && serverVerdict is not null))
        {
            return new ObjectDisposedException("The Aequor client was disposed (its session closed) before the statement was run: it was not run.", failure);
        }

        if (serverVerdict is { SqlState: PostgresErrorCodes.QueryCanceled } && RetryClassifier.IsStatementError(serverVerdict))
        {
            // The server answered the dispose's cancel request: the statement was cancelled and rolled back.
            return new ObjectDisposedException("The Aequor client was disposed (its session closed) while the statement was running: the server cancelled it, so it did not take effect.", failure);
        }

        return RetryClassifier.IsStatementError(serverVerdict)
            ? null
            : new AequorOutcomeUnknownException(
                "The Aequor client was disposed (its session closed) while the statement was running, and the server did not confirm that it was cancelled: its outcome is unknown — it may or may not have run. Check the data before repeating it.",
                failure);
    }

    /// <summary>Marks that a standalone probe or renewal found the connection unusable; the statement was not sent.</summary>
    private sealed class ConnectionReplacedSignal(Exception? cause) : Exception("The connection was replaced before the statement was sent.", cause);

    /// <summary>Per user call: one retry budget (created on the first failure) and one free reconnect.</summary>
    private sealed class CallState(long startedAt)
    {
        public long StartedAt { get; } = startedAt;

        public RetryBudget? Budget { get; set; }

        public bool FreeReconnect { get; set; } = true;
    }

    /// <summary>
    /// The heart of write safety: whether a failed attempt may be made again, after which delay, or what to
    /// throw instead; (false, _, null) rethrows the original exception. ReconnectOnly: the statement never
    /// ran on a connection found dead; it goes to a fresh one without counting as a retry.
    /// </summary>
    private async Task<(bool Retry, TimeSpan Delay, Exception? ToThrow, bool ReconnectOnly)> DecideAsync(
        Exception ex, AequorStatement statement, SendStage stage, bool inTransaction, long generation, CallState call, CancellationToken cancellationToken)
    {
        // Our own verdicts (connect budget spent, heartbeat Throw mode, reaper Throw mode) are final.
        if (ex is AequorClientException)
        {
            return (false, TimeSpan.Zero, null, false);
        }

        var replaced = ex is ConnectionReplacedSignal;
        var cause = replaced ? ex.InnerException : ex;
        var connection = _connection;
        var kind = replaced ? FailureKind.ConnectionLost : RetryClassifier.Classify(ex, connecting: false);
        var dead = replaced || connection is null || generation != Generation || IsConnectionFailure(ex, connection);
        if (dead && !replaced)
        {
            await MarkDeadAsync(generation, stage == SendStage.Sent ? "statement" : "probe", cause).ConfigureAwait(false);
        }
        else if (!dead)
        {
            // The connection is fine: a renewal that rode along was rolled back with the statement's error,
            // which the next statement sees in the application_name the server reports.
            AfterStatement(generation);
        }

        if (inTransaction)
        {
            var endedWhileIdle = dead && RetryClassifier.EndedWhileIdle(cause);
            if (dead && stage != SendStage.NotSent && !RetryClassifier.IsStatementError(cause) && !endedWhileIdle && TransactionControlText.MayCommit(statement.CommandText))
            {
                // A COMMIT (or END, or a batch ending in one) that reached the server may have committed.
                var unknown = new AequorOutcomeUnknownException(
                    "The connection was lost after a statement that may commit the transaction was sent: whether the transaction committed is unknown, and nothing was sent again. Check the data before repeating it.", cause);
                if (TransactionControlText.Of(statement.CommandText) == TransactionControl.Commit)
                {
                    // A plain COMMIT ended the transaction either way: nothing is left to end.
                    _transactionLost = false;
                    _transactionLostBy = null;
                }
                else
                {
                    // Something else that may have committed (a batch ending in COMMIT, or a CASE ... END): still no
                    // autocommit until it is ended, but never called "rolled back".
                    _transactionLostBy = unknown;
                }

                return (false, TimeSpan.Zero, unknown, false);
            }

            if (dead && (endedWhileIdle || stage == SendStage.NotSent) && TransactionControlText.Of(statement.CommandText) == TransactionControl.Commit)
            {
                // The transaction was gone before the COMMIT left (the probe ahead of it found the backend dead) or arrived
                // (the server's idle-in-transaction timeout): the server rolled it back, and that COMMIT ended it.
                _transactionLost = false;
                _transactionLostBy = null;
                return (false, TimeSpan.Zero, LostTransactionCommitted(cause), false);
            }

            if (dead)
            {
                return (false, TimeSpan.Zero, LostInTransaction(cause), false);
            }

            // A SQL error inside the transaction: the server marks it aborted and the caller decides.
            var timedOut = TimedOut(cause, statement, inTransaction: true);
            NoteTransactionError(timedOut ?? cause);
            return (false, TimeSpan.Zero, timedOut, false);
        }

        // Never ran: not written; or Postgres answered with an error before the prefix's own result, and it
        // runs a batch strictly in order, so the statement behind it never started; or the server rejected the
        // statement itself (severity ERROR: failed and rolled back, even where Npgsql drops the connection after
        // it, as after a Bind with the wrong number of parameters, 08P01), a serialization failure included.
        var neverRan = stage == SendStage.NotSent
            || (stage == SendStage.BehindPrefix && cause is PostgresException)
            || (dead && RetryClassifier.EndedWhileIdle(cause))
            || RetryClassifier.IsStatementError(cause)
            || kind == FailureKind.SerializationFailure;
        var cancelled = cancellationToken.IsCancellationRequested || ex is OperationCanceledException;

        // A connection that died under a statement that provably never started is a reconnect whatever the
        // server's FATAL said: 57P05 (idle_session_timeout, what serverless deployments set) is in no retry
        // list, and the statement is not the server's verdict on it.
        var lostBeforeStart = dead && neverRan && !cancelled && !RetryClassifier.IsStatementError(cause) && kind != FailureKind.SerializationFailure;
        if (cancelled || (!lostBeforeStart && !RetryClassifier.IsRetryable(kind, _options.RetrySerializationFailures)))
        {
            // A connection that broke after the statement was sent (a command timeout on a stalled network, a
            // cancel the server never answered) leaves the outcome unknown whatever the failure's class: say so
            // rather than leak a transport error or a bare cancellation — the write may have committed.
            if (dead && !replaced && !neverRan)
            {
                var how = cancelled ? "The statement was cancelled and the connection broke" : "The connection broke";
                return (false, TimeSpan.Zero, new AequorOutcomeUnknownException(
                    $"{how} after the statement was sent ({(cause is null ? "no cause given" : Describe(cause))}): its outcome is unknown — it may or may not have run — and it was not sent again. Check the data before repeating it.",
                    cause), false);
            }

            var own = replaced ? cause : dead || cancelled ? null : TimedOut(cause, statement, inTransaction: false);
            if (cancelled && neverRan && own is null && ex is not OperationCanceledException && RetryClassifier.SqlStateOf(cause) is null)
            {
                // Cancelled before the statement started (a renewal given up as the caller cancelled): a cancellation,
                // not the renewal's own TimeoutException.
                own = new OperationCanceledException("The statement was cancelled before it was sent.", cause, cancellationToken);
            }

            return (false, TimeSpan.Zero, own, false);
        }

        if (!neverRan && !statement.Idempotent)
        {
            return (false, TimeSpan.Zero, new AequorOutcomeUnknownException(
                $"The connection was lost after the statement was sent ({(cause is null ? "no cause given" : Describe(cause))}): its outcome is unknown — it may or may not have run — and it was not sent again because it is not marked idempotent. Check the data before repeating it.",
                cause), false);
        }

        // A connection found dead before the statement ran is replaced once without spending the budget: a
        // reconnect, not a retry of the statement (pg-aequor reconnects on next use the same way).
        if (dead && neverRan && call.FreeReconnect)
        {
            call.FreeReconnect = false;
            return (true, TimeSpan.Zero, null, true);
        }

        call.Budget ??= new RetryBudget(_options, _random, call.StartedAt);
        if (call.Budget.TryTake(RetryPhase.Statement, out var delay))
        {
            return (true, delay, null, false);
        }

        if (dead && neverRan && kind != FailureKind.SerializationFailure)
        {
            // No working connection lasted until the statement started (found by the soak: a worker frozen past its
            // time budget came back to a reaped backend twice). Like a connect whose retries are spent, not the
            // server's "terminating connection" of one of the attempts: the statement provably did not run.
            var last = cause ?? ex;
            return (false, TimeSpan.Zero, new AequorConnectFailedException(
                $"The statement was not run: the connection was lost before it started, and the retries are spent ({call.Budget.RetriesUsed} retries in {call.Budget.Elapsed.TotalSeconds:0.0} s; Retries {_options.Retries}, MaxQueryRetryTimeMs {_options.MaxQueryRetryTimeMs}). Last: {Describe(last)}.",
                last, call.Budget.RetriesUsed + 1, call.Budget.Elapsed), false);
        }

        return (false, TimeSpan.Zero, replaced ? cause : null, false);
    }

    /// <summary>
    /// A command timeout on a connection that is still open, as the caller's own error; null for any other failure.
    /// Npgsql reports the timeout only when the server answered its cancel request with 57014 (had the statement
    /// finished first, its result would have come instead; had the server not answered, the connection would be
    /// broken): so the statement was cancelled and rolled back. Its message is just "Exception while reading from stream".
    /// </summary>
    private AequorCommandTimeoutException? TimedOut(Exception? cause, AequorStatement statement, bool inTransaction)
    {
        if (cause is not (TimeoutException or NpgsqlException { InnerException: TimeoutException }))
        {
            return null;
        }

        var seconds = statement.CommandTimeout ?? _baseBuilder.CommandTimeout;
        return new AequorCommandTimeoutException(
            $"The statement ran past its command timeout ({seconds} s) and the server cancelled it: it did not take effect. The connection is still open"
                + (inTransaction ? "; the transaction is now aborted: roll it back." : "."),
            cause)
        {
            TimeoutSeconds = seconds,
        };
    }

    /// <summary>
    /// Sends the probe or renewal and the caller's statement in one batch: one round trip. The prefix also
    /// reads the database clock. Its result is consumed before the caller's result set is reached, which is
    /// the moment the statement may have started (see <see cref="SendStage"/>).
    /// </summary>
    private async Task<(NpgsqlDataReader Reader, IAsyncDisposable Command)> SendBehindPrefixAsync(
        NpgsqlConnection connection, AequorStatement statement, PrefixKind kind, Attempt attempt, bool synchronous, CancellationToken cancellationToken)
    {
        var batch = new NpgsqlBatch(connection);
        try
        {
            string? lease = null;
            if (kind == PrefixKind.Renew)
            {
                lease = SignLease();
                var renew = new NpgsqlBatchCommand(Heartbeat.RenewSql);
                renew.Parameters.Add(new NpgsqlParameter { Value = lease });
                batch.BatchCommands.Add(renew);
            }
            else
            {
                batch.BatchCommands.Add(new NpgsqlBatchCommand(Heartbeat.ProbeSql));
            }

            var user = new NpgsqlBatchCommand(statement.CommandText);
            AddParameters(user.Parameters, statement);
            batch.BatchCommands.Add(user);
            if (statement.CommandTimeout is { } timeout)
            {
                batch.Timeout = timeout;
            }

            attempt.Stage = SendStage.BehindPrefix;
            if (lease is not null)
            {
                // Confirmed only when the server reports it back after the batch's implicit transaction
                // committed; an error in the statement reverts it (see Heartbeat.RenewSql).
                _renewalInFlight = lease;
                _renewalInFlightShared = true;
            }

            if (synchronous)
            {
                attempt.CancelOnToken = CancelOnToken(batch, cancellationToken);
            }

            var sentAt = _clock.ClientNowMs();
            var reader = synchronous
                ? batch.ExecuteReader()
                : await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (!await ReadAsync(reader, synchronous, cancellationToken).ConfigureAwait(false))
                {
                    throw new InvalidOperationException("The clock reading returned no row.");
                }

                _clock.Observe(sentAt, _clock.ClientNowMs(), ServerClock.ReadDatabaseMs(reader, lease is null ? 0 : 1));
                _probedOnConnection = true;

                // Consumes the prefix's CommandComplete: from here on, the statement may have started.
                await ReadAsync(reader, synchronous, cancellationToken).ConfigureAwait(false);
                attempt.Stage = SendStage.Sent;
                await NextResultAsync(reader, synchronous, cancellationToken).ConfigureAwait(false);
                return (reader, batch);
            }
            catch
            {
                await DisposeQuietlyAsync(reader).ConfigureAwait(false);
                throw;
            }
        }
        catch
        {
            await batch.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static async ValueTask DrainAsync(NpgsqlDataReader reader, bool synchronous, CancellationToken cancellationToken)
    {
        while (await NextResultAsync(reader, synchronous, cancellationToken).ConfigureAwait(false))
        {
        }
    }

    private static ValueTask<bool> ReadAsync(NpgsqlDataReader reader, bool synchronous, CancellationToken cancellationToken) =>
        synchronous ? new(reader.Read()) : new(reader.ReadAsync(cancellationToken));

    private static ValueTask<bool> NextResultAsync(NpgsqlDataReader reader, bool synchronous, CancellationToken cancellationToken) =>
        synchronous ? new(reader.NextResult()) : new(reader.NextResultAsync(cancellationToken));

    private static ValueTask CloseAsync(NpgsqlDataReader reader, bool synchronous)
    {
        if (!synchronous)
        {
            return reader.DisposeAsync();
        }

        reader.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// The token's part for synchronous I/O: Npgsql's cancel request (what it sends for a cancelled token on
    /// the asynchronous path). Whatever the cancel itself meets is not the caller's failure: the statement's
    /// own end reports the outcome.
    /// </summary>
    private static CancellationTokenRegistration CancelOnToken(Action cancel, CancellationToken cancellationToken) =>
        CancelOnToken((object)cancel, cancellationToken);

    /// <summary>For the command of every synchronous statement: no delegate made per call.</summary>
    private static CancellationTokenRegistration CancelOnToken(System.Data.Common.DbCommand command, CancellationToken cancellationToken) =>
        CancelOnToken((object)command, cancellationToken);

    private static CancellationTokenRegistration CancelOnToken(System.Data.Common.DbBatch batch, CancellationToken cancellationToken) =>
        CancelOnToken((object)batch, cancellationToken);

    private static CancellationTokenRegistration CancelOnToken(object target, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!cancellationToken.CanBeCanceled)
        {
            return default;
        }

        return cancellationToken.UnsafeRegister(
            static target =>
            {
                try
                {
                    switch (target)
                    {
                        case System.Data.Common.DbCommand command:
                            command.Cancel();
                            break;
                        case System.Data.Common.DbBatch batch:
                            batch.Cancel();
                            break;
                        default:
                            ((Action)target!)();
                            break;
                    }
                }
#pragma warning disable CA1031 // A cancel that fails (server gone) leaves the statement to end by itself.
                catch (Exception)
#pragma warning restore CA1031
                {
                }
            },
            target);
    }

    /// <summary>
    /// Npgsql's refusal of a value it has no PostgreSQL type for (a Version, a ScriptBlock …), raised before the
    /// statement is written: its advice to set an NpgsqlDbType is nothing a caller of this client can follow.
    /// </summary>
    private static AequorConfigurationException? UnwritableParameter(Exception ex)
    {
        const string Prefix = "Writing values of '";
        if (ex is not (InvalidCastException or NotSupportedException) || !ex.Message.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var end = ex.Message.IndexOf('\'', Prefix.Length);
        var type = end < 0 ? "this type" : ex.Message[Prefix.Length..end];
        return new AequorConfigurationException(
            $"A parameter value of type {type} has no PostgreSQL type. Nothing was sent. Pass it as text, a number, a boolean, a date and time, a uuid, bytes or an array of one of them.",
            ex);
    }

    /// <summary>
    /// Values that do not match the statement's <c>$n</c> placeholders, refused before anything is sent:
    /// fewer positional values than the highest <c>$n</c>, or <c>$n</c> with named values (which bind <c>@name</c>
    /// only), is a Bind the server answers with 08P01, after which Npgsql drops the connection — an open transaction
    /// with it — over a count the client can see; more positional values than placeholders the server binds without a
    /// word and uses the first ones only, so an array meant for ANY($1) given as its elements would silently match its
    /// first element (a DELETE … WHERE id = $1 deleting one row of three). PREPARE and CREATE FUNCTION or PROCEDURE
    /// number parameters of their own (<see cref="AequorStatement.HighestPlaceholder"/>): never too few. A statement
    /// with no values at all goes as written.
    /// </summary>
    private static void RefusePlaceholderMismatch(AequorStatement statement)
    {
        var positional = statement.PositionalParameters;
        if (positional is null && statement.NamedParameters is null)
        {
            return;
        }

        var highest = AequorStatement.HighestPlaceholder(statement.CommandText);
        if (positional is null)
        {
            if (highest is > 0)
            {
                throw new AequorConfigurationException(
                    $"The statement uses placeholders up to ${highest} but its values are named, and a named value binds @name only: the server would refuse the statement and drop the connection. " +
                    "Nothing was sent. Give the values in order as positional values, or write @name in the statement.");
            }

            return;
        }

        if (highest is { } needed && needed > positional.Count)
        {
            throw new AequorConfigurationException(
                $"The statement uses placeholders up to ${needed} but {positional.Count} positional {(positional.Count == 1 ? "value was" : "values were")} given: the server would refuse the statement and drop the connection. " +
                $"Nothing was sent. Give one value per placeholder, in order ($1 is the first).");
        }

        if (positional.Count > 1
            && (highest ?? StatementShape.HighestPlaceholder(statement.CommandText)) is { } used and > 0
            && used < positional.Count)
        {
            throw new AequorConfigurationException(
                $"The statement has placeholders up to ${used} but {positional.Count} positional values were given: the server would ignore the last {positional.Count - used} without a word. " +
                $"Nothing was sent. To bind an array to one placeholder (= ANY(${used})), pass the array as a single value.");
        }
    }

    /// <summary>
    /// After a column of a type the connection did not know (<see cref="UnknownTypes"/>): its catalogue again, so
    /// the statement run again reads it. Before the statement is sent: a failure here is one of a statement never sent.
    /// </summary>
    private async Task ReloadStaleTypesAsync(NpgsqlConnection connection, bool synchronous, CancellationToken cancellationToken)
    {
        if (!_typesStale)
        {
            return;
        }

        try
        {
            if (synchronous)
            {
                connection.ReloadTypes();
            }
            else
            {
                await connection.ReloadTypesAsync(cancellationToken).ConfigureAwait(false);
            }

            _typesStale = false;
        }
        catch (PostgresException)
        {
            // An aborted transaction refuses the catalogue query: the first statement after it reloads them.
        }
    }

    private ReaderCompletion NewCompletion(AequorStatement statement, SessionStatementEffect effect, int parameterCount, long generation, long startedAt, int attempts, IAsyncDisposable? command) =>
        new(
            (failure, rowsRead) => TranslateReaderFailure(failure, rowsRead, statement, parameterCount, generation, startedAt, attempts),
            async (failure, rowsRead, recordsAffected) =>
            {
                try
                {
                    if (command is not null)
                    {
                        await DisposeQuietlyAsync(command).ConfigureAwait(false);
                    }

                    if (failure is null)
                    {
                        AfterStatement(generation);
                        _transactionAbortedBy = null;
                        await AfterSessionStatementAsync(effect, generation, CancellationToken.None).ConfigureAwait(false);
                        RaiseQueryEnd(statement, parameterCount, recordsAffected, rowsRead, startedAt, attempts);
                    }
                    else if (_connection is { } connection && generation == Generation && !IsAlive(connection))
                    {
                        RememberAfterFailure(effect, generation);
                        await MarkDeadAsync(generation, "reader", failure).ConfigureAwait(false);
                    }
                    else
                    {
                        RememberAfterFailure(effect, generation);
                        ObserveServerTransaction(generation);
                    }
                }
                finally
                {
                    ReleaseGate();
                }
            },
            () => _typesStale = true)
        {
            CommandText = statement.CommandText,
        };

    /// <summary>Once rows may have been handed out nothing is retried: a lost connection is an unknown outcome.</summary>
    private Exception TranslateReaderFailure(Exception failure, long rowsRead, AequorStatement statement, int parameterCount, long generation, long startedAt, int attempts)
    {
        var connection = _connection;
        var dead = connection is null || generation != Generation || IsConnectionFailure(failure, connection);
        Exception result = dead ? failure : TimedOut(failure, statement, _transaction is not null) ?? failure;
        if (!dead && _transaction is not null)
        {
            NoteTransactionError(result);
        }

        if (_disposed && InterruptedByDispose(failure, SendStage.Sent) is { } interrupted)
        {
            // Closed under its rows (Disconnect-Aequor from another runspace): the dispose's cancel or close, said as
            // such, not as a bare "Query was cancelled" or a connection that merely broke.
            result = interrupted;
        }
        else if (dead)
        {
            if (connection is not null && generation == Generation && _transaction is not null)
            {
                _transactionLost = true;
                _transactionLostBy = failure;
                _transaction = null;
            }

            result = _transactionLost
                ? new AequorTransactionLostException(
                    "The connection was lost inside a transaction while reading results: the transaction is lost (the server rolled it back) and nothing was retried.", failure)
                : RetryClassifier.IsStatementError(failure)
                ? failure
                : new AequorOutcomeUnknownException(
                    $"The connection was lost while reading the results of a statement that had already been sent ({rowsRead} rows read): its outcome is unknown and it was not retried — a retry is only possible before the first row is handed out.",
                    failure);
        }

        if (OnQueryError is { } error)
        {
            EventDispatch.Raise(error, this, new AequorQueryErrorEvent(statement.CommandText, parameterCount, result, Stopwatch.GetElapsedTime(startedAt), attempts, false), Counters);
        }

        return result;
    }

    /// <summary>Every statement's answer while a transaction lost with its connection is not ended.</summary>
    private static AequorTransactionLostException LostInTransaction(Exception? cause) =>
        new($"The connection was lost inside a transaction{ServerReason(cause)}: the transaction is lost (the server rolled it back) and nothing was retried. End it (a rollback succeeds) and start again.", cause);

    /// <summary>A commit of a transaction lost with its connection: nothing committed, unless what was lost may itself have committed it.</summary>
    private static AequorClientException LostTransactionCommitted(Exception? cause) =>
        cause is AequorOutcomeUnknownException unknown
            ? new AequorOutcomeUnknownException("Whether the transaction committed is unknown: the connection was lost after a statement that may have committed it was sent. Check the data.", unknown)
            : new AequorTransactionLostException($"Nothing was committed: the connection was lost inside the transaction{ServerReason(cause)}, which the server rolled back; its statements were not retried.", cause);

    /// <summary>
    /// The server's own word on why it ended the session (an idle-in-transaction timeout the user set, an administrator's
    /// terminate, a shutdown), for the messages of a lost transaction; empty when it sent none (a reset, a timeout).
    /// </summary>
    private static string ServerReason(Exception? cause) =>
        ServerErrors.PostgresErrorOf(cause) is { InvariantSeverity: "FATAL" or "PANIC" } fatal ? $" (the server: {fatal.SqlState}: {fatal.MessageText})" : string.Empty;

    /// <summary>
    /// Reads the server's transaction status after a statement: a BEGIN sent in SQL makes the session one in a
    /// transaction (never reconnected, never retried), and a COMMIT or ROLLBACK sent in SQL ends one.
    /// </summary>
    private void ObserveServerTransaction(long generation)
    {
        if (_connection is not { } connection || generation != Generation)
        {
            return;
        }

        var status = ServerTransaction.Of(connection);
        if (status == ServerTransactionStatus.Unknown)
        {
            return;
        }

        // Idle under BeginTransactionAsync's transaction: a COMMIT or ROLLBACK sent as a statement ended it. (Before
        // Npgsql has sent its BEGIN, with the first statement, the status is its own 'pending', read as Unknown.)
        if (status == ServerTransactionStatus.Idle && _transaction is { } transaction)
        {
            _transaction = null;
            _transactionAbortedBy = null;
            try
            {
                transaction.Dispose();
            }
#pragma warning disable CA1031 // Npgsql already knows the block is over; disposing is bookkeeping.
            catch (Exception)
#pragma warning restore CA1031
            {
            }
        }

        _serverTransaction = status;
    }

    /// <summary>A server error inside the open transaction aborts it (<see cref="EndTransactionAsync"/> then refuses to call the rollback a commit).</summary>
    private void NoteTransactionError(Exception? failure)
    {
        // A command timeout counts: the server cancelled the statement (57014), though Npgsql keeps that error to itself.
        if (failure is not null && (failure is AequorCommandTimeoutException || RetryClassifier.SqlStateOf(failure) is not null))
        {
            _transactionAbortedBy ??= failure;
        }
    }

    private void RaiseQueryEnd(AequorStatement statement, int parameterCount, int recordsAffected, long rows, long startedAt, int attempts)
    {
        if (OnQueryEnd is { } end)
        {
            EventDispatch.Raise(end, this, new AequorQueryEndEvent(statement.CommandText, parameterCount, recordsAffected, rows, Stopwatch.GetElapsedTime(startedAt), attempts), Counters);
        }
    }

    private static void AddParameters(NpgsqlParameterCollection parameters, AequorStatement statement)
    {
        if (statement.PositionalParameters is { } positional)
        {
            foreach (var value in positional)
            {
                parameters.Add(StatementParameters.Create(null, value));
            }
        }
        else if (statement.NamedParameters is { } named)
        {
            foreach (var (name, value) in named)
            {
                parameters.Add(StatementParameters.Create(name.TrimStart('@'), value));
            }
        }
    }

    private static int ParameterCount(AequorStatement statement) =>
        statement.PositionalParameters?.Count ?? statement.NamedParameters?.Count ?? 0;
}
