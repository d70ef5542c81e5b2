using System.Data;
using System.Diagnostics;
using Aequor.Engine.Reaper;
using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// One client, one physical connection (Npgsql with pooling off) carrying a signed lease in its
/// application_name. The connection is opened on first use or by <see cref="ConnectAsync"/>, renewed by a
/// heartbeat that rides along the caller's statements, and replaced on next use when it dies.
/// </summary>
/// <remarks>
/// <para>Threading: one call at a time (a gate); a reader holds the gate until it is disposed. Nothing runs on
/// a timer or a background task, so nothing can throw where no caller is waiting; event handlers run on the
/// calling thread and whatever they throw is contained.</para>
/// <para>Write safety: a statement is sent again only when it provably never ran — the failure happened while
/// connecting, or before it was written, or the server reported an error before the batch reached it — or when
/// the caller marked it <see cref="AequorStatement.Idempotent"/>. Otherwise a lost connection surfaces as
/// <see cref="AequorOutcomeUnknownException"/>. Inside a transaction nothing is retried
/// (<see cref="AequorTransactionLostException"/>).</para>
/// </remarks>
public sealed class AequorClient : IAsyncDisposable
{
    /// <summary>
    /// A connection idle at least this long gets a probe ahead of the next statement, in the same batch when the
    /// statement allows (no extra round trip). Postgres answers a batch in order, so an error that arrives
    /// before the probe's own result proves the caller's statement never started: a backend terminated while
    /// idle (57P01, a fast shutdown) is then replaced and the statement sent again, write or not. Below this
    /// idle time nothing is added; a connection lost that quickly costs an outcome-unknown error, never a
    /// double write.
    /// </summary>
    internal const int DefaultProbeAfterIdleMs = 500;

    private const string ApplicationNameParameter = "application_name";

    private readonly AequorClientOptions _options;
    private readonly LeaseSigner? _signer;
    private readonly NpgsqlConnectionStringBuilder _baseBuilder;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Random _random;
    private readonly ServerClock _clock;
    private readonly ClientReaper? _reaper;
    private NpgsqlDataSource? _dataSource;
    private NpgsqlConnection? _connection;
    private NpgsqlTransaction? _transaction;
    private bool _transactionLost;
    private Exception? _transactionLostBy;
    private Exception? _lastDeath;
    private long _generation;
    private bool _disposed;
    private bool _hadConnection;
    private bool _clockReadOnConnection;
    private long _lastActivity;
    private string? _leaseSeen;
    private long? _leaseSeenExpiresAtMs;
    private string? _renewalInFlight;
    private bool _renewalInFlightShared;

    public AequorClient(AequorClientOptions options)
        : this(options, new Random(), TimeProvider.System)
    {
    }

    /// <param name="clientClock">This machine's wall clock (tests shift it to play a skewed client).</param>
    internal AequorClient(AequorClientOptions options, Random random, TimeProvider clientClock)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        options.Validate();
        _options = options;
        _random = random;
        _clock = new ServerClock(clientClock);
        if (!string.IsNullOrEmpty(options.CoordinationSecret))
        {
            _signer = new LeaseSigner(options.CoordinationSecret);
        }

        try
        {
            _baseBuilder = new NpgsqlConnectionStringBuilder(options.ConnectionString) { Pooling = false };
        }
        catch (ArgumentException ex)
        {
            throw new AequorConfigurationException($"The connection string is not valid: {ex.Message}", ex);
        }

        if (options.CommandTimeout is { } timeout)
        {
            _baseBuilder.CommandTimeout = timeout;
        }

        ServiceName = options.ResolveServiceName();
        InstanceId = InstanceIds.Generate();

        // Null when the options run no reaper (Reaper off, or no secret under LeaseMode Optional).
        if (ReaperOptions.ForClient(options) is { } reaperOptions)
        {
            _reaper = new ClientReaper(reaperOptions, clientClock, random);
            Reaper = RunScheduledPassAsync;
        }
    }

    /// <summary>A physical connection was opened.</summary>
    public event EventHandler<AequorConnectEvent>? OnConnect;

    /// <summary>A connection is about to be made again: after a failed attempt, or to replace a dead one.</summary>
    public event EventHandler<AequorReconnectEvent>? OnReconnect;

    public event EventHandler<AequorQueryStartEvent>? OnQueryStart;

    public event EventHandler<AequorQueryEndEvent>? OnQueryEnd;

    public event EventHandler<AequorQueryErrorEvent>? OnQueryError;

    public event EventHandler<AequorQueryRetryEvent>? OnQueryRetry;

    /// <summary>The server confirmed a renewed lease.</summary>
    public event EventHandler<AequorHeartbeatEvent>? OnHeartbeat;

    public event EventHandler<AequorHeartbeatFailEvent>? OnHeartbeatFail;

    public event EventHandler<AequorReapEvent>? OnReap;

    /// <summary>The connection was found dead (or dropped after a failed renewal); the next call reconnects.</summary>
    public event EventHandler<AequorClientDeadEvent>? OnClientDead;

    public AequorClientOptions Options => _options;

    /// <summary>The normalised service name that goes into leases.</summary>
    public string ServiceName { get; }

    public string InstanceId { get; }

    /// <summary>False when LeaseMode is Optional and no secret was given: a plain connection.</summary>
    public bool IsLeased => _signer is not null;

    public string? Host => _baseBuilder.Host;

    public int Port => _baseBuilder.Port;

    public string? Database => _baseBuilder.Database;

    public string? UserName => _baseBuilder.Username;

    public int? BackendPid { get; private set; }

    /// <summary>The expiry of the lease the server holds now (on the database's clock), as last reported by the server.</summary>
    public DateTimeOffset? LeaseExpiresAt { get; private set; }

    /// <summary>The application_name the server reported last (ParameterStatus), not merely what was sent.</summary>
    public string? ApplicationName { get; private set; }

    /// <summary>True from <see cref="BeginTransactionAsync"/> until the transaction is committed or rolled back, lost or not.</summary>
    public bool InTransaction => _transaction is not null || _transactionLost;

    /// <summary>The connection died inside the open transaction: statements fail until it is ended.</summary>
    public bool TransactionLost => _transactionLost;

    public AequorClientState State =>
        _disposed ? AequorClientState.Disposed
        : _connection is null ? AequorClientState.Disconnected
        : !IsAlive(_connection) ? AequorClientState.Broken
        : AequorClientState.Connected;

    /// <summary>Increases with every physical connection: a signal from an older one never discards a newer one.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    public AequorCounters Counters { get; } = new();

    /// <summary>Database clock minus client clock, once learned (first statement on a connection, every renewal).</summary>
    public TimeSpan? ServerClockOffset => _clock.IsKnown ? TimeSpan.FromMilliseconds(_clock.OffsetMs) : null;

    /// <summary>The reaper's seam (see <see cref="ReaperHook"/>); null: no pass runs.</summary>
    internal ReaperHook? Reaper { get; set; }

    internal int ProbeAfterIdleMs { get; set; } = DefaultProbeAfterIdleMs;

    /// <summary>The full result of the last reaper pass this client ran (after a connect or by <see cref="ReapNowAsync"/>).</summary>
    public ReapResult? LastReap { get; private set; }

    /// <summary>
    /// A manual reaper pass (Invoke-AequorReap) on this client's connection: now, whatever the probability and
    /// cooldown, still under the service's lock. Refused inside a transaction and when the client runs no reaper.
    /// </summary>
    public async Task<ReapResult> ReapNowAsync(ReapRequest? request, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var reaper = _reaper ?? throw new InvalidOperationException(
                "This client runs no reaper: Reaper is off, or LeaseMode is Optional without a coordination secret.");
            if (InTransaction)
            {
                throw new InvalidOperationException("A reaper pass cannot run inside the open transaction; commit or roll it back first.");
            }

            var connection = _connection is { } open && IsAlive(open)
                ? open
                : await EnsureConnectedAsync(Stopwatch.GetTimestamp(), cancellationToken).ConfigureAwait(false);
            var result = await reaper.RunNowAsync(connection, request, cancellationToken).ConfigureAwait(false);
            Touch();
            LastReap = result;
            ReportReap(new ReapReport(true, result.LockAcquired, result.KilledPids.Count, TimeSpan.FromMilliseconds(result.DurationMs), result.Error));
            return result;
        }
        finally
        {
            ReleaseGate();
        }
    }

    /// <summary>The default <see cref="Reaper"/>: the schedule decides, the pass runs on the new connection.</summary>
    private async Task<ReapReport> RunScheduledPassAsync(NpgsqlConnection connection, ReapTrigger trigger, CancellationToken cancellationToken)
    {
        // A 53300 of this call was already reported to the schedule (ReportConnectError): storm mode.
        _ = trigger;
        var result = await _reaper!.AfterConnectAsync(connection, cancellationToken).ConfigureAwait(false);
        if (result is null)
        {
            return ReapReport.Skipped;
        }

        LastReap = result;
        return new ReapReport(true, result.LockAcquired, result.KilledPids.Count, TimeSpan.FromMilliseconds(result.DurationMs), result.Error);
    }

    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            await EnsureConnectedAsync(Stopwatch.GetTimestamp(), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ReleaseGate();
        }
    }

    /// <summary>
    /// Runs a statement and streams its rows. Returns once the first row (or the end of the first result set)
    /// has arrived; the client is busy until the reader is disposed. See <see cref="AequorReader"/> for the retry rule.
    /// </summary>
    public async Task<AequorReader> ExecuteReaderAsync(AequorStatement statement, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(statement);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        var handedOut = false;
        try
        {
            var reader = (AequorReader)(await RunStatementAsync(statement, StatementMode.Reader, cancellationToken).ConfigureAwait(false))!;
            handedOut = true;
            return reader;
        }
        finally
        {
            if (!handedOut)
            {
                ReleaseGate();
            }
        }
    }

    /// <summary>Runs a statement to its end and returns the rows it changed. The whole run is within the retry scope.</summary>
    public async Task<int> ExecuteNonQueryAsync(AequorStatement statement, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(statement);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return (int)(await RunStatementAsync(statement, StatementMode.NonQuery, cancellationToken).ConfigureAwait(false))!;
        }
        finally
        {
            ReleaseGate();
        }
    }

    /// <summary>Runs a statement to its end and returns the first column of its first row (null when none).</summary>
    public async Task<object?> ExecuteScalarAsync(AequorStatement statement, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(statement);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await RunStatementAsync(statement, StatementMode.Scalar, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ReleaseGate();
        }
    }

    /// <summary>
    /// Opens a transaction. A renewal that is due (soft or hard) is made first, in a round trip of its own:
    /// none can happen inside the transaction, where a rollback would silently revert it.
    /// </summary>
    public async Task BeginTransactionAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (InTransaction)
            {
                throw new InvalidOperationException("A transaction is already open on this session; complete or undo it first.");
            }

            var startedAt = Stopwatch.GetTimestamp();
            RetryBudget? budget = null;
            var freeReconnect = true;
            while (true)
            {
                var connection = await EnsureConnectedAsync(startedAt, cancellationToken).ConfigureAwait(false);
                var plan = PlanPrefix(connection, statementText: null);
                if (plan.Kind != PrefixKind.None)
                {
                    var outcome = await RunStandalonePrefixAsync(connection, plan, cancellationToken).ConfigureAwait(false);
                    if (outcome == PrefixOutcome.Reconnect)
                    {
                        budget ??= new RetryBudget(_options, _random, startedAt);
                        var delay = TimeSpan.Zero;
                        if (!freeReconnect && !budget.TryTake(RetryPhase.Statement, out delay))
                        {
                            throw new AequorConnectFailedException("The connection kept failing before the transaction could begin, and the retry budget is spent.", _lastDeath, budget.RetriesUsed + 1, budget.Elapsed);
                        }

                        freeReconnect = false;
                        await DelayAsync(delay, cancellationToken).ConfigureAwait(false);
                        continue;
                    }
                }

                _transaction = await _connection!.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                return;
            }
        }
        finally
        {
            ReleaseGate();
        }
    }

    public Task CommitAsync(CancellationToken cancellationToken) => EndTransactionAsync(commit: true, cancellationToken);

    /// <summary>Rolls back. Also ends a lost transaction (the server already rolled it back) without error.</summary>
    public Task RollbackAsync(CancellationToken cancellationToken) => EndTransactionAsync(commit: false, cancellationToken);

    private async Task EndTransactionAsync(bool commit, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_transactionLost)
            {
                var cause = _transactionLostBy;
                _transactionLost = false;
                _transactionLostBy = null;
                if (commit)
                {
                    throw new AequorTransactionLostException(
                        "Nothing was committed: the connection was lost inside the transaction, which the server rolled back; its statements were not retried.", cause);
                }

                return;
            }

            var transaction = _transaction ?? throw new InvalidOperationException("No transaction is open on this session.");
            _transaction = null;
            var connection = _connection;
            var generation = Generation;
            try
            {
                if (connection is null || !IsAlive(connection))
                {
                    // Nothing was sent: the transaction died with its connection.
                    await MarkDeadAsync(generation, commit ? "commit" : "rollback", null).ConfigureAwait(false);
                    if (commit)
                    {
                        throw new AequorTransactionLostException("Nothing was committed: the connection was lost inside the transaction, which the server rolled back.");
                    }

                    return;
                }

                if (commit)
                {
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
                }

                Touch();
            }
            catch (Exception ex) when (ex is not AequorClientException && connection is not null && IsConnectionFailure(ex, connection))
            {
                await MarkDeadAsync(generation, commit ? "commit" : "rollback", ex).ConfigureAwait(false);
                if (commit)
                {
                    throw new AequorOutcomeUnknownException(
                        "The connection was lost while committing: whether the transaction committed is unknown. Check the data before repeating it.", ex);
                }

                // A rollback whose connection died is done: the server discards the transaction of a lost backend.
            }
            finally
            {
                await DisposeQuietlyAsync(transaction).ConfigureAwait(false);
            }
        }
        finally
        {
            ReleaseGate();
        }
    }

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
    }

    private async Task<object?> RunStatementAsync(AequorStatement statement, StatementMode mode, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_transactionLost)
        {
            throw new AequorTransactionLostException(
                "The connection was lost inside the open transaction: the server rolled it back and nothing was retried. End it (a rollback succeeds) and start again.", _transactionLostBy);
        }

        var startedAt = Stopwatch.GetTimestamp();
        var parameterCount = ParameterCount(statement);
        if (OnQueryStart is { } start)
        {
            EventDispatch.Raise(start, this, new AequorQueryStartEvent(statement.CommandText, parameterCount, DateTimeOffset.UtcNow), Counters);
        }

        var call = new CallState(startedAt);
        var attemptNumber = 0;
        while (true)
        {
            attemptNumber++;
            var attempt = new Attempt();
            var inTransaction = _transaction is not null;
            var generation = Generation;
            NpgsqlDataReader? reader = null;
            IAsyncDisposable? command = null;
            if (inTransaction && !(_connection is { } current && IsAlive(current)))
            {
                // Never reconnect under an open transaction: the statement would run outside it.
                await MarkDeadAsync(generation, "state", null).ConfigureAwait(false);
                throw new AequorTransactionLostException(
                    "The connection was lost inside a transaction: the transaction is lost (the server rolled it back) and nothing was retried. End it (a rollback succeeds) and start again.", _lastDeath);
            }

            try
            {
                var connection = _connection is { } open && IsAlive(open)
                    ? open
                    : await EnsureConnectedAsync(startedAt, cancellationToken).ConfigureAwait(false);
                generation = Generation;
                var plan = inTransaction ? PrefixPlan.None : PlanPrefix(connection, statement.CommandText);
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

                (reader, command) = plan.Kind == PrefixKind.None
                    ? await SendPlainAsync(connection, statement, attempt, cancellationToken).ConfigureAwait(false)
                    : await SendBehindPrefixAsync(connection, statement, plan.Kind, attempt, cancellationToken).ConfigureAwait(false);

                switch (mode)
                {
                    case StatementMode.Reader:
                        var first = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                        var handedOut = new AequorReader(reader, first, NewCompletion(statement, parameterCount, generation, startedAt, attemptNumber, command));
                        reader = null;
                        command = null;
                        return handedOut;
                    case StatementMode.Scalar:
                        object? value = null;
                        if (reader.FieldCount > 0 && await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        {
                            value = AequorReader.ConvertValue(reader, 0);
                        }

                        var rowsScalar = value is null ? 0 : 1;
                        await DrainAsync(reader, cancellationToken).ConfigureAwait(false);
                        var recordsScalar = reader.RecordsAffected;
                        await reader.DisposeAsync().ConfigureAwait(false);
                        reader = null;
                        AfterStatement(generation);
                        RaiseQueryEnd(statement, parameterCount, recordsScalar, rowsScalar, startedAt, attemptNumber);
                        return value;
                    default:
                        await DrainAsync(reader, cancellationToken).ConfigureAwait(false);
                        var records = reader.RecordsAffected;
                        await reader.DisposeAsync().ConfigureAwait(false);
                        reader = null;
                        AfterStatement(generation);
                        RaiseQueryEnd(statement, parameterCount, records, 0, startedAt, attemptNumber);
                        return records;
                }
            }
            catch (Exception ex)
            {
                if (reader is not null)
                {
                    await DisposeQuietlyAsync(reader).ConfigureAwait(false);
                    reader = null;
                }

                var failure = ex is ConnectionReplacedSignal signal ? signal.InnerException ?? ex : ex;
                var (retry, delay, toThrow, reconnectOnly) = await DecideAsync(ex, statement, attempt.Stage, inTransaction, generation, call, cancellationToken).ConfigureAwait(false);
                if (OnQueryError is { } error)
                {
                    EventDispatch.Raise(error, this, new AequorQueryErrorEvent(statement.CommandText, parameterCount, failure, Stopwatch.GetElapsedTime(startedAt), attemptNumber, retry), Counters);
                }

                if (!retry)
                {
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
                if (command is not null)
                {
                    await DisposeQuietlyAsync(command).ConfigureAwait(false);
                }
            }
        }
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
            // Not dead: a SQL error inside the transaction; the server marks it aborted and the caller decides.
            return dead
                ? (false, TimeSpan.Zero, new AequorTransactionLostException(
                    "The connection was lost inside a transaction: the transaction is lost (the server rolled it back) and nothing was retried. End it (a rollback succeeds) and start again.", cause), false)
                : (false, TimeSpan.Zero, null, false);
        }

        if (cancellationToken.IsCancellationRequested || ex is OperationCanceledException
            || !RetryClassifier.IsRetryable(kind, _options.RetrySerializationFailures))
        {
            return (false, TimeSpan.Zero, replaced ? cause : null, false);
        }

        // Never ran: not written; or Postgres answered with an error before the prefix's own result, and it
        // runs a batch strictly in order, so the statement behind it never started; or a serialization
        // failure, which the server rolled back (retried only when the caller opted in).
        var neverRan = stage == SendStage.NotSent
            || (stage == SendStage.BehindPrefix && cause is PostgresException)
            || kind == FailureKind.SerializationFailure;
        if (!neverRan && !statement.Idempotent)
        {
            return (false, TimeSpan.Zero, new AequorOutcomeUnknownException(
                $"The connection was lost after the statement was sent ({RetryClassifier.SqlStateOf(cause) ?? cause?.GetType().Name}): its outcome is unknown — it may or may not have run — and it was not sent again because it is not marked idempotent. Check the data before repeating it.",
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
        return call.Budget.TryTake(RetryPhase.Statement, out var delay)
            ? (true, delay, null, false)
            : (false, TimeSpan.Zero, replaced ? cause : null, false);
    }

    private async Task<(NpgsqlDataReader Reader, IAsyncDisposable Command)> SendPlainAsync(
        NpgsqlConnection connection, AequorStatement statement, Attempt attempt, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(statement.CommandText, connection, _transaction);
        if (statement.CommandTimeout is { } timeout)
        {
            command.CommandTimeout = timeout;
        }

        AddParameters(command.Parameters, statement);
        try
        {
            attempt.Stage = SendStage.Sent;
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            return (reader, command);
        }
        catch
        {
            await command.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Sends the probe or renewal and the caller's statement in one batch: one round trip. The prefix also
    /// reads the database clock. Its result is consumed before the caller's result set is reached, which is
    /// the moment the statement may have started (see <see cref="SendStage"/>).
    /// </summary>
    private async Task<(NpgsqlDataReader Reader, IAsyncDisposable Command)> SendBehindPrefixAsync(
        NpgsqlConnection connection, AequorStatement statement, PrefixKind kind, Attempt attempt, CancellationToken cancellationToken)
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

            var sentAt = _clock.ClientNowMs();
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    throw new InvalidOperationException("The clock reading returned no row.");
                }

                _clock.Observe(sentAt, _clock.ClientNowMs(), reader.GetInt64(lease is null ? 0 : 1));
                _clockReadOnConnection = true;

                // Consumes the prefix's CommandComplete: from here on, the statement may have started.
                await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                attempt.Stage = SendStage.Sent;
                await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
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

    private static async Task DrainAsync(NpgsqlDataReader reader, CancellationToken cancellationToken)
    {
        while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false))
        {
        }
    }

    private ReaderCompletion NewCompletion(AequorStatement statement, int parameterCount, long generation, long startedAt, int attempts, IAsyncDisposable? command) =>
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
                        RaiseQueryEnd(statement, parameterCount, recordsAffected, rowsRead, startedAt, attempts);
                    }
                    else if (_connection is { } connection && generation == Generation && !IsAlive(connection))
                    {
                        await MarkDeadAsync(generation, "reader", failure).ConfigureAwait(false);
                    }
                }
                finally
                {
                    ReleaseGate();
                }
            });

    /// <summary>Once rows may have been handed out nothing is retried: a lost connection is an unknown outcome.</summary>
    private Exception TranslateReaderFailure(Exception failure, long rowsRead, AequorStatement statement, int parameterCount, long generation, long startedAt, int attempts)
    {
        var connection = _connection;
        var dead = connection is null || generation != Generation || IsConnectionFailure(failure, connection);
        Exception result = failure;
        if (dead)
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
                parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
            }
        }
        else if (statement.NamedParameters is { } named)
        {
            foreach (var (name, value) in named)
            {
                parameters.AddWithValue(name.TrimStart('@'), value ?? DBNull.Value);
            }
        }
    }

    private static int ParameterCount(AequorStatement statement) =>
        statement.PositionalParameters?.Count ?? statement.NamedParameters?.Count ?? 0;

    // ---- Heartbeat and probe -------------------------------------------------------------------------------

    private enum PrefixKind
    {
        None,
        Probe,
        Renew,
    }

    private readonly record struct PrefixPlan(PrefixKind Kind, bool Standalone)
    {
        public static readonly PrefixPlan None = new(PrefixKind.None, false);
    }

    private enum PrefixOutcome
    {
        Proceed,
        Reconnect,
    }

    /// <summary>
    /// What to put ahead of the next statement (never called inside a transaction). <paramref name="statementText"/>
    /// null means "before BEGIN": anything due goes alone, now, since nothing can be renewed inside the transaction.
    /// </summary>
    private PrefixPlan PlanPrefix(NpgsqlConnection connection, string? statementText)
    {
        var renewal = RenewalNeed.None;
        if (_signer is not null)
        {
            renewal = Heartbeat.Assess(ReadServerLease(connection), _clock.DatabaseNowMs(), _options);
        }

        var probe = (_signer is not null && !_clockReadOnConnection)
            || Stopwatch.GetElapsedTime(_lastActivity).TotalMilliseconds >= ProbeAfterIdleMs;
        if (renewal == RenewalNeed.None && !probe)
        {
            return PrefixPlan.None;
        }

        var kind = renewal == RenewalNeed.None ? PrefixKind.Probe : PrefixKind.Renew;
        var standalone = statementText is null || renewal == RenewalNeed.Hard || !StatementShape.CanShareBatch(statementText);
        return new PrefixPlan(kind, standalone);
    }

    /// <summary>
    /// A probe or renewal in a round trip of its own, before the statement is written. Failure never reaches
    /// the statement: a dead connection is replaced; a failed renewal follows <see cref="HeartbeatErrorMode"/>
    /// (Reconnect: the statement goes to a fresh connection, where pg-aequor 0.1.4 threw a TypeError).
    /// </summary>
    private async Task<PrefixOutcome> RunStandalonePrefixAsync(NpgsqlConnection connection, PrefixPlan plan, CancellationToken cancellationToken)
    {
        var generation = Generation;
        var lease = plan.Kind == PrefixKind.Renew ? SignLease() : null;
        var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var abandoned = false;
        Task? work = null;
        try
        {
            work = ExecutePrefixAsync(connection, lease, stop.Token);
            if (lease is not null && !work.IsCompleted)
            {
                // A hard deadline of our own: Npgsql's cancellation waits for the server's answer (or for its own
                // timeouts) and on a stalled network that is many times HeartbeatTimeoutMs.
                var deadline = Task.Delay(_options.HeartbeatTimeoutMs, cancellationToken);
                if (await Task.WhenAny(work, deadline).ConfigureAwait(false) != work && !cancellationToken.IsCancellationRequested)
                {
                    abandoned = true;
                    // Npgsql's cancellation callback sends a cancel request and may block on the same stalled
                    // network: fire it off the caller's path, contained.
                    _ = Task.Run(() =>
                    {
                        try
                        {
                            stop.Cancel();
                        }
#pragma warning disable CA1031 // Best effort on a connection that is being dropped anyway.
                        catch (Exception)
#pragma warning restore CA1031
                        {
                        }
                    }, CancellationToken.None);
                    throw new TimeoutException($"The lease renewal did not complete within HeartbeatTimeoutMs ({_options.HeartbeatTimeoutMs} ms).");
                }
            }

            await work.ConfigureAwait(false);
            AfterStatement(generation);
            if (lease is not null && ReadServerLease(connection) is null)
            {
                throw new InvalidOperationException("The server did not report the renewed application_name.");
            }

            return PrefixOutcome.Proceed;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            _renewalInFlight = null;
            if (lease is not null)
            {
                Counters.HeartbeatFailed();
                if (OnHeartbeatFail is { } fail)
                {
                    EventDispatch.Raise(fail, this, new AequorHeartbeatFailEvent(generation, ex, _options.HeartbeatErrorMode), Counters);
                }
            }

            if (abandoned)
            {
                // The connection is stuck inside the renewal: it is let go (never reused) whatever the mode.
                Abandon(generation, connection, work!, stop, ex);
                if (_options.HeartbeatErrorMode == HeartbeatErrorMode.Throw)
                {
                    throw new AequorHeartbeatException(
                        $"The lease renewal timed out ({ex.Message}); HeartbeatErrorMode is Throw, so the statement was not sent. The connection was dropped.", ex);
                }

                return PrefixOutcome.Reconnect;
            }

            if (!IsAlive(connection) || IsConnectionFailure(ex, connection))
            {
                await MarkDeadAsync(generation, lease is null ? "probe" : "heartbeat", ex).ConfigureAwait(false);
                return PrefixOutcome.Reconnect;
            }

            if (lease is null)
            {
                throw;
            }

            switch (_options.HeartbeatErrorMode)
            {
                case HeartbeatErrorMode.Swallow:
                    return PrefixOutcome.Proceed;
                case HeartbeatErrorMode.Throw:
                    throw new AequorHeartbeatException(
                        $"The lease renewal failed ({ex.GetType().Name}: {ex.Message}); HeartbeatErrorMode is Throw, so the statement was not sent.", ex);
                default:
                    await MarkDeadAsync(generation, "heartbeat", ex).ConfigureAwait(false);
                    return PrefixOutcome.Reconnect;
            }
        }
        finally
        {
            if (!abandoned)
            {
                stop.Dispose();
            }
        }
    }

    private async Task ExecutePrefixAsync(NpgsqlConnection connection, string? lease, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(lease is null ? Heartbeat.ProbeSql : Heartbeat.RenewSql, connection);
        await using (command.ConfigureAwait(false))
        {
            if (lease is not null)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = lease });
                _renewalInFlight = lease;
                _renewalInFlightShared = false;
            }

            var sentAt = _clock.ClientNowMs();
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    _clock.Observe(sentAt, _clock.ClientNowMs(), reader.GetInt64(lease is null ? 0 : 1));
                    _clockReadOnConnection = true;
                }
            }
        }
    }

    /// <summary>
    /// Lets go of a connection that is stuck in a command the client stopped waiting for. It is detached at once
    /// (the next statement connects afresh) and disposed once that command has ended; the continuation observes
    /// and contains every failure, so nothing escapes from the background.
    /// </summary>
    private void Abandon(long generation, NpgsqlConnection connection, Task work, CancellationTokenSource stop, Exception reason)
    {
        if (generation != Generation || !ReferenceEquals(_connection, connection))
        {
            _ = DisposeAfterAsync(work, null, null, stop);
            return;
        }

        var pid = BackendPid;
        var dataSource = _dataSource;
        _connection = null;
        _dataSource = null;
        _renewalInFlight = null;
        _lastDeath = reason;
        _ = DisposeAfterAsync(work, connection, dataSource, stop);
        Counters.ClientDied();
        if (OnClientDead is { } dead)
        {
            EventDispatch.Raise(dead, this, new AequorClientDeadEvent(generation, "heartbeat", reason, pid), Counters);
        }
    }

    private static async Task DisposeAfterAsync(Task work, NpgsqlConnection? connection, NpgsqlDataSource? dataSource, CancellationTokenSource stop)
    {
        try
        {
            await work.ConfigureAwait(false);
        }
#pragma warning disable CA1031 // The abandoned command's outcome no longer matters; it must only be observed.
        catch (Exception)
#pragma warning restore CA1031
        {
        }

        if (connection is not null)
        {
            await DisposeQuietlyAsync(connection).ConfigureAwait(false);
        }

        if (dataSource is not null)
        {
            await DisposeQuietlyAsync(dataSource).ConfigureAwait(false);
        }

        stop.Dispose();
    }

    /// <summary>
    /// The lease the server holds now, read from the application_name it reports (ParameterStatus): a renewal
    /// reverted by a rollback or by a failed batch is noticed here, because the server reports the revert.
    /// </summary>
    private long? ReadServerLease(NpgsqlConnection connection)
    {
        connection.PostgresParameters.TryGetValue(ApplicationNameParameter, out var name);
        if (ReferenceEquals(name, _leaseSeen))
        {
            return _leaseSeenExpiresAtMs;
        }

        _leaseSeen = name;
        ApplicationName = name;
        _leaseSeenExpiresAtMs = _signer is not null && Lease.TryParse(name, out var lease) && lease.InstanceId == InstanceId && _signer.IsSignatureValid(lease)
            ? lease.ExpiresAtMs
            : null;
        LeaseExpiresAt = _leaseSeenExpiresAtMs is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
        return _leaseSeenExpiresAtMs;
    }

    /// <summary>After a statement ended: note the activity and whether a renewal sent with it took effect.</summary>
    private void AfterStatement(long generation)
    {
        Touch();
        if (_renewalInFlight is not { } sent || _connection is not { } connection || generation != Generation || !IsAlive(connection))
        {
            _renewalInFlight = null;
            return;
        }

        _renewalInFlight = null;
        ReadServerLease(connection);
        if (string.Equals(ApplicationName, sent, StringComparison.Ordinal))
        {
            Counters.HeartbeatSucceeded();
            if (OnHeartbeat is { } heartbeat)
            {
                EventDispatch.Raise(heartbeat, this, new AequorHeartbeatEvent(generation, LeaseExpiresAt!.Value, _renewalInFlightShared), Counters);
            }
        }

        // Otherwise the batch's implicit transaction rolled the renewal back with the statement's error:
        // the lease is still due and the next statement carries a new renewal.
    }

    /// <summary>
    /// Expiry on the database's timeline. The lease in the startup packet is signed before any reading of the
    /// database clock is possible on that connection, so it uses the offset learned earlier (another connection
    /// of this client) or, for the very first, the client clock. The first statement on every connection reads
    /// the database clock in the same batch; if the client clock was off, the lease's remaining time on the
    /// database timeline is what the heartbeat judges, so a skewed startup lease is re-signed on the database
    /// timeline at the next statement — no extra round trip either way.
    /// </summary>
    private string SignLease() =>
        _signer!.Sign(ServiceName, InstanceId, _clock.DatabaseNowMs() + _options.LeaseTtlMs);

    private void Touch() => _lastActivity = Stopwatch.GetTimestamp();

    // ---- Connections ----------------------------------------------------------------------------------------

    /// <summary>
    /// The open connection, or a new one. Connect failures are retried from the call's budget; nothing is
    /// written before the connection exists, so connecting is always safe to retry.
    /// </summary>
    private async Task<NpgsqlConnection> EnsureConnectedAsync(long startedAt, CancellationToken cancellationToken)
    {
        if (_connection is { } existing)
        {
            if (IsAlive(existing))
            {
                return existing;
            }

            await MarkDeadAsync(Generation, "state", null).ConfigureAwait(false);
        }

        if (_hadConnection && OnReconnect is { } replacing)
        {
            EventDispatch.Raise(replacing, this, new AequorReconnectEvent(Generation + 1, 0, TimeSpan.Zero, _lastDeath), Counters);
        }

        RetryBudget? budget = null;
        var attempts = 0;
        var sawTooManyConnections = false;
        while (true)
        {
            attempts++;
            try
            {
                var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
                await RunReaperAsync(connection, sawTooManyConnections ? ReapTrigger.AfterTooManyConnections : ReapTrigger.AfterConnect, cancellationToken).ConfigureAwait(false);
                return connection;
            }
            catch (Exception ex) when (ex is not AequorClientException && !(ex is OperationCanceledException && cancellationToken.IsCancellationRequested))
            {
                var kind = RetryClassifier.Classify(ex, connecting: true);
                budget ??= new RetryBudget(_options, _random, startedAt);
                if (kind == FailureKind.TooManyConnections)
                {
                    // The reaper's storm rule: the next connects that get in run a pass.
                    sawTooManyConnections = true;
                    _reaper?.ReportConnectError(ex);
                }

                if (!RetryClassifier.IsRetryable(kind, retrySerializationFailures: false))
                {
                    throw new AequorConnectFailedException(
                        $"Could not connect to {Host}:{Port}/{Database}: {Describe(ex)}. This is not a transient failure, so it was not retried.", ex, attempts, budget.Elapsed);
                }

                if (!budget.TryTake(RetryPhase.Connect, out var delay))
                {
                    throw new AequorConnectFailedException(
                        $"Could not connect to {Host}:{Port}/{Database} after {attempts} attempt(s) in {budget.Elapsed.TotalSeconds:0.0} s (Retries {_options.Retries}, MaxConnectRetryTimeMs {_options.MaxConnectRetryTimeMs}): {Describe(ex)}."
                        + (kind == FailureKind.TooManyConnections ? " The server has no free connection slot (max_connections); idle leased connections are reclaimed by the reaper." : string.Empty),
                        ex, attempts, budget.Elapsed);
                }

                Counters.Retried();
                if (OnReconnect is { } reconnect)
                {
                    EventDispatch.Raise(reconnect, this, new AequorReconnectEvent(Generation + 1, budget.RetriesUsed, delay, ex), Counters);
                }

                await DelayAsync(delay, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static string Describe(Exception ex) =>
        ex is PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : $"{ex.GetType().Name}: {ex.Message}";

    /// <summary>
    /// Opens one physical connection with the lease in the startup packet. Each connection gets a data source
    /// of its own, disposed with it: the lease makes every connection string unique, and
    /// <c>new NpgsqlConnection(string)</c> would register a data source per string in Npgsql's process-wide
    /// cache and keep it for the life of the process.
    /// </summary>
    private async Task<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var builder = new NpgsqlConnectionStringBuilder(_baseBuilder.ConnectionString);
        if (_signer is not null)
        {
            // The lease rides in the startup packet: no extra round trip.
            builder.ApplicationName = SignLease();
        }

        var dataSource = new NpgsqlDataSourceBuilder(builder.ConnectionString).Build();
        NpgsqlConnection? connection = null;
        try
        {
            connection = dataSource.CreateConnection();
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            if (connection is not null)
            {
                await DisposeQuietlyAsync(connection).ConfigureAwait(false);
            }

            await DisposeQuietlyAsync(dataSource).ConfigureAwait(false);
            throw;
        }

        _connection = connection;
        _dataSource = dataSource;
        var generation = Interlocked.Increment(ref _generation);
        BackendPid = connection.ProcessID;
        _clockReadOnConnection = false;
        _renewalInFlight = null;
        _leaseSeen = null;
        ReadServerLease(connection);
        Touch();
        var reconnect = _hadConnection;
        _hadConnection = true;
        Counters.Connected(reconnect);
        if (OnConnect is { } connect)
        {
            EventDispatch.Raise(connect, this, new AequorConnectEvent(generation, connection.ProcessID, reconnect), Counters);
        }

        return connection;
    }

    /// <summary>
    /// REAPER HOOK: after every successful connect, on the new connection, before the caller's statement and
    /// outside any transaction. Best effort: a failing pass never fails the connect unless ReaperErrorMode is Throw.
    /// </summary>
    private async Task RunReaperAsync(NpgsqlConnection connection, ReapTrigger trigger, CancellationToken cancellationToken)
    {
        if (Reaper is not { } reaper || !_options.Reaper || _signer is null || _transaction is not null)
        {
            return;
        }

        var generation = Generation;
        ReapReport report;
        try
        {
            report = await reaper(connection, trigger, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            if (_options.ReaperErrorMode == ReaperErrorMode.Throw)
            {
                throw new AequorReaperException($"The reaper pass failed ({ex.GetType().Name}: {ex.Message}); ReaperErrorMode is Throw. The connection is open; the statement was not sent.", ex);
            }

            return;
        }

        if (report.Ran)
        {
            ReportReap(report, generation);
        }
    }

    private void ReportReap(ReapReport report, long? generation = null)
    {
        Counters.Reaped(report.Killed);
        if (OnReap is { } reap)
        {
            EventDispatch.Raise(reap, this, new AequorReapEvent(generation ?? Generation, report.Locked, report.Killed, report.Duration, report.Error), Counters);
        }
    }

    /// <summary>
    /// Drops the connection of <paramref name="generation"/>. The generation guard: a signal about an older
    /// connection (a late reader, a stale error) never discards the one that replaced it.
    /// </summary>
    private async ValueTask MarkDeadAsync(long generation, string source, Exception? error)
    {
        if (generation != Generation || _connection is not { } connection)
        {
            return;
        }

        var pid = BackendPid;
        var dataSource = _dataSource;
        _connection = null;
        _dataSource = null;
        _renewalInFlight = null;
        _lastDeath = error;
        if (_transaction is { } transaction)
        {
            _transaction = null;
            _transactionLost = true;
            _transactionLostBy = error;
            await DisposeQuietlyAsync(transaction).ConfigureAwait(false);
        }

        await DisposeQuietlyAsync(connection).ConfigureAwait(false);
        if (dataSource is not null)
        {
            await DisposeQuietlyAsync(dataSource).ConfigureAwait(false);
        }

        Counters.ClientDied();
        if (OnClientDead is { } dead)
        {
            EventDispatch.Raise(dead, this, new AequorClientDeadEvent(generation, source, error, pid), Counters);
        }
    }

    private static bool IsAlive(NpgsqlConnection connection)
    {
        var state = connection.FullState;
        return (state & ConnectionState.Broken) == 0 && (state & ConnectionState.Open) != 0;
    }

    private static bool IsConnectionFailure(Exception ex, NpgsqlConnection connection) =>
        !IsAlive(connection) || RetryClassifier.Classify(ex, connecting: false) == FailureKind.ConnectionLost;

    private static Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken) =>
        delay <= TimeSpan.Zero ? Task.CompletedTask : Task.Delay(delay, cancellationToken);

    private static async ValueTask DisposeQuietlyAsync(IAsyncDisposable disposable)
    {
        try
        {
            await disposable.DisposeAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Disposing what already failed must not replace the failure the caller needs to see.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    private void ReleaseGate()
    {
        try
        {
            _gate.Release();
        }
        catch (ObjectDisposedException)
        {
            // The client was disposed while a reader was still open.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_transaction is not null)
        {
            await DisposeQuietlyAsync(_transaction).ConfigureAwait(false);
            _transaction = null;
        }

        if (_connection is not null)
        {
            await DisposeQuietlyAsync(_connection).ConfigureAwait(false);
            _connection = null;
        }

        if (_dataSource is not null)
        {
            await DisposeQuietlyAsync(_dataSource).ConfigureAwait(false);
            _dataSource = null;
        }

        _gate.Dispose();
    }

    /// <summary>Never shows the secret or the password.</summary>
    public override string ToString() => $"AequorClient({ServiceName}/{InstanceId} → {Host}:{Port}/{Database}, {State})";
}
