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
public sealed partial class AequorClient : IAsyncDisposable
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
    private readonly string _dataSourceKey;
    private readonly Random _random;
    private readonly ServerClock _clock;
    private readonly ClientReaper? _reaper;
    private NpgsqlConnection? _connection;
    private NpgsqlTransaction? _transaction;
    private bool _transactionLost;
    private Exception? _transactionLostBy;

    // The server error that aborted the open transaction, until a later statement in it succeeds (a ROLLBACK TO
    // SAVEPOINT: in an aborted transaction nothing else can). The server answers COMMIT then with a rollback.
    private Exception? _transactionAbortedBy;

    // The server's transaction status after the last statement on the current connection (ServerTransaction).
    private ServerTransactionStatus _serverTransaction = ServerTransactionStatus.Idle;
    private Exception? _lastDeath;
    private long _generation;
    private bool _hadConnection;
    // Whether a statement on this connection has carried a probe yet: the first one always does (a leased client),
    // as the proof that it never started if the backend died since the connect.
    private bool _probedOnConnection;

    // Set when a column's type was not in the connection's catalogue; read and cleared before a statement is sent.
    private volatile bool _typesStale;
    private long _lastActivity;
    private string? _leaseSeen;
    private IReadOnlyDictionary<string, string>? _serverParameters;
    private NpgsqlConnection? _serverParametersOf;
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
            throw ConnectionStringErrors.From(ex, options.ConnectionString);
        }

        if (options.CommandTimeout is { } timeout)
        {
            _baseBuilder.CommandTimeout = timeout;
        }

        ServiceName = options.ResolveServiceName();
        InstanceId = InstanceIds.Generate();
        _dataSourceKey = SharedDataSources.KeyFor(_baseBuilder.ConnectionString, _signer, ServiceName, options.LeaseTtlMs);

        // Null when the options run no reaper (Reaper off, or no secret under LeaseMode Optional).
        if (ReaperOptions.ForClient(options, ServiceName) is { } reaperOptions)
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

    /// <summary>The server sent a notice (raised on the thread reading the statement's results).</summary>
    public event EventHandler<AequorNoticeEvent>? OnNotice;

    /// <summary>A statement is about to run on a replacement connection without session state the old one held (see <see cref="SessionState"/>).</summary>
    public event EventHandler<AequorSessionStateLostEvent>? OnSessionStateLost;

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

    /// <summary>
    /// host:port/database for messages, without the parts the connection string left to Npgsql's defaults (the
    /// operating system's user, a database of the user's name), which would read as "@host:5432/".
    /// </summary>
    public string Endpoint => $"{Host}:{Port}" + (string.IsNullOrEmpty(Database) ? string.Empty : $"/{Database}");

    public int? BackendPid { get; private set; }

    /// <summary>The expiry of the lease the server holds now (on the database's clock), as last reported by the server.</summary>
    public DateTimeOffset? LeaseExpiresAt { get; private set; }

    /// <summary>The application_name the server reported last (ParameterStatus), not merely what was sent.</summary>
    public string? ApplicationName { get; private set; }

    /// <summary>True from <see cref="BeginTransactionAsync"/> until the transaction is committed or rolled back, lost or not.</summary>
    public bool InTransaction => _transaction is not null || _transactionLost || SqlTransactionOpen;

    // A transaction block the server reports that BeginTransactionAsync did not open: BEGIN sent in a statement.
    private bool SqlTransactionOpen => _transaction is null && _serverTransaction is ServerTransactionStatus.InBlock or ServerTransactionStatus.Failed;

    /// <summary>The connection died inside the open transaction: statements fail until it is ended.</summary>
    public bool TransactionLost => _transactionLost;

    /// <summary>
    /// A statement failed inside the open transaction and the server aborted it: nothing of it can commit any more,
    /// and every statement but a rollback fails until it is ended (a COMMIT rolls back).
    /// </summary>
    public bool TransactionAborted => !_transactionLost
        && (_serverTransaction == ServerTransactionStatus.Failed || (_transaction is not null && _transactionAbortedBy is not null));

    public AequorClientState State =>
        _disposed ? AequorClientState.Disposed
        // Lost inside a transaction: every statement fails until it is ended, no reconnect is waiting to happen.
        : _transactionLost ? AequorClientState.Broken
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
        using var call = await EnterAsync(synchronous: false, cancellationToken).ConfigureAwait(false);
        try
        {
            var reaper = _reaper ?? throw new InvalidOperationException(
                "This client runs no reaper: Reaper is off, or LeaseMode is Optional without a coordination secret.");
            if (InTransaction)
            {
                throw new InvalidOperationException("A reaper pass cannot run inside the open transaction; commit or roll it back first.");
            }

            for (var attempt = 1; ; attempt++)
            {
                // A connection the server ended while idle (reaped, idle_session_timeout, a restart) still looks open
                // here: the probe finds it dead and the pass runs on a fresh one, as a statement would.
                var connection = await ProbedConnectionAsync("the reaper pass could run", call.Token).ConfigureAwait(false);
                var generation = Generation;
                ReapResult result;
                try
                {
                    result = await reaper.RunNowAsync(connection, request, call.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException && IsConnectionFailure(ex, connection))
                {
                    // ReaperErrorMode.Throw: the same lost connection, thrown; when in the pass is unknown, so no retry.
                    await MarkDeadAsync(generation, "reaper pass", ex).ConfigureAwait(false);
                    throw;
                }

                if (attempt == 1 && result.Error is { } error && result.RoundTrips <= 1 && IsConnectionFailure(error, connection))
                {
                    // Lost within the probe's idle window, in the pass's first round trip (lock and scan): nothing was
                    // killed, so the pass runs again on a fresh connection. Lost later, the kill may have run and a second
                    // pass would report 0 killed: the result says what failed instead.
                    await MarkDeadAsync(generation, "reaper pass", error).ConfigureAwait(false);
                    continue;
                }

                if (result.Error is { } lost && IsConnectionFailure(lost, connection))
                {
                    await MarkDeadAsync(generation, "reaper pass", lost).ConfigureAwait(false);
                }

                Touch();
                LastReap = result;
                ReportReap(new ReapReport(true, result.LockAcquired, result.KilledPids.Count, TimeSpan.FromMilliseconds(result.DurationMs), result.Error));
                return result;
            }
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
        using var call = await EnterAsync(synchronous: false, cancellationToken).ConfigureAwait(false);
        try
        {
            await EnsureConnectedAsync(Stopwatch.GetTimestamp(), call.Token).ConfigureAwait(false);
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

    /// <summary>
    /// Runs a statement and streams its rows. Returns once the first row (or the end of the first result set)
    /// has arrived; the client is busy until the reader is disposed. See <see cref="AequorReader"/> for the retry rule.
    /// </summary>
    public Task<AequorReader> ExecuteReaderAsync(AequorStatement statement, CancellationToken cancellationToken) =>
        RunStatementAsync<AequorReader>(statement, StatementMode.Reader, synchronous: false, takeGate: true, cancellationToken);

    /// <summary>Runs a statement to its end and returns the rows it changed. The whole run is within the retry scope.</summary>
    public Task<int> ExecuteNonQueryAsync(AequorStatement statement, CancellationToken cancellationToken) =>
        RunStatementAsync<int>(statement, StatementMode.NonQuery, synchronous: false, takeGate: true, cancellationToken);

    /// <summary>Runs a statement to its end and returns the first column of its first row (null when none).</summary>
    public Task<object?> ExecuteScalarAsync(AequorStatement statement, CancellationToken cancellationToken) =>
        RunStatementAsync<object?>(statement, StatementMode.Scalar, synchronous: false, takeGate: true, cancellationToken);

    /// <summary>
    /// <see cref="ExecuteReaderAsync"/> on the calling thread. See <see cref="ExecuteScalar"/> for what that means;
    /// the rows are then read with <see cref="AequorReader.ReadAsync"/> as usual.
    /// </summary>
    public AequorReader ExecuteReader(AequorStatement statement, CancellationToken cancellationToken) =>
        RunStatementAsync<AequorReader>(statement, StatementMode.Reader, synchronous: true, takeGate: true, cancellationToken).GetAwaiter().GetResult();

    /// <summary><see cref="ExecuteNonQueryAsync"/> on the calling thread. See <see cref="ExecuteScalar"/>.</summary>
    public int ExecuteNonQuery(AequorStatement statement, CancellationToken cancellationToken) =>
        RunStatementAsync<int>(statement, StatementMode.NonQuery, synchronous: true, takeGate: true, cancellationToken).GetAwaiter().GetResult();

    /// <summary>
    /// <see cref="ExecuteScalarAsync"/> on the calling thread, for callers that wait for the result anyway (a
    /// PowerShell pipeline thread, a script): the round trip blocks the caller as Npgsql's synchronous methods
    /// do, with no hop through the thread pool and back. Same retries, write safety and events. Reconnects,
    /// retry delays and reaper passes also block the caller (they may run on the thread pool meanwhile).
    /// Cancelling the token sends the server a cancel request; the call then ends in
    /// <see cref="OperationCanceledException"/>.
    /// </summary>
    public object? ExecuteScalar(AequorStatement statement, CancellationToken cancellationToken) =>
        RunStatementAsync<object?>(statement, StatementMode.Scalar, synchronous: true, takeGate: true, cancellationToken).GetAwaiter().GetResult();

    /// <summary>
    /// Opens a transaction. A renewal that is due (soft or hard) is made first, in a round trip of its own:
    /// none can happen inside the transaction, where a rollback would silently revert it.
    /// </summary>
    public async Task BeginTransactionAsync(CancellationToken cancellationToken)
    {
        using var call = await EnterAsync(synchronous: false, cancellationToken).ConfigureAwait(false);
        try
        {
            if (InTransaction)
            {
                throw AequorTransactionStateException.AlreadyOpen();
            }

            var connection = await ProbedConnectionAsync("the transaction could begin", call.Token).ConfigureAwait(false);
            _ = await JudgeCallsLostWithConnectionAsync(connection, call.Token).ConfigureAwait(false);
            if (TakeLostSessionState(SessionStatementEffect.None, "The transaction was not begun") is { } lost)
            {
                throw lost;
            }

            _transaction = await connection.BeginTransactionAsync(call.Token).ConfigureAwait(false);
            _transactionAbortedBy = null;
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

    /// <summary>
    /// A live connection for work that cannot carry a probe or renewal of its own (a transaction, a reaper pass):
    /// anything due goes first, in a round trip of its own, and a connection found dead is replaced — once for free,
    /// then within the retry budget. Called holding the gate.
    /// </summary>
    private async Task<NpgsqlConnection> ProbedConnectionAsync(string before, CancellationToken cancellationToken)
    {
        var startedAt = Stopwatch.GetTimestamp();
        RetryBudget? budget = null;
        var freeReconnect = true;
        while (true)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var connection = await EnsureConnectedAsync(startedAt, cancellationToken).ConfigureAwait(false);
            var plan = PlanPrefix(connection, statementText: null);
            if (plan.Kind == PrefixKind.None
                || await RunStandalonePrefixAsync(connection, plan, cancellationToken).ConfigureAwait(false) != PrefixOutcome.Reconnect)
            {
                return _connection!;
            }

            budget ??= new RetryBudget(_options, _random, startedAt);
            var delay = TimeSpan.Zero;
            if (!freeReconnect && !budget.TryTake(RetryPhase.Statement, out delay))
            {
                throw new AequorConnectFailedException($"The connection kept failing before {before}, and the retry budget is spent.", _lastDeath, budget.RetriesUsed + 1, budget.Elapsed);
            }

            freeReconnect = false;
            await DelayAsync(delay, cancellationToken).ConfigureAwait(false);
        }
    }

    public Task CommitAsync(CancellationToken cancellationToken) => EndTransactionAsync(commit: true, cancellationToken);

    /// <summary>Rolls back. Also ends a lost transaction (the server already rolled it back) without error.</summary>
    public Task RollbackAsync(CancellationToken cancellationToken) => EndTransactionAsync(commit: false, cancellationToken);

    private async Task EndTransactionAsync(bool commit, CancellationToken cancellationToken)
    {
        // The commit itself takes the caller's token only: a COMMIT cut short by the dispose would leave its outcome
        // unknown, and it is short (the dispose waits for it, within its bound).
        using var call = await EnterAsync(synchronous: false, cancellationToken).ConfigureAwait(false);
        try
        {
            if (_transactionLost)
            {
                var cause = _transactionLostBy;
                _transactionLost = false;
                _transactionLostBy = null;
                if (commit)
                {
                    throw LostTransactionCommitted(cause);
                }

                return;
            }

            if (_transaction is null && SqlTransactionOpen)
            {
                // Opened by BEGIN in SQL: ended the same way (a COMMIT of an aborted block rolls back and throws).
                try
                {
                    _ = await RunStatementAsync<int>(new AequorStatement(commit ? "COMMIT" : "ROLLBACK"), StatementMode.NonQuery, synchronous: false, takeGate: false, cancellationToken).ConfigureAwait(false);
                }
                catch (AequorTransactionLostException lost) when (_transactionLost)
                {
                    // Found dead on the way: the server rolled it back. A rollback is then done; a commit says so.
                    _transactionLost = false;
                    _transactionLostBy = null;
                    if (commit)
                    {
                        throw LostTransactionCommitted(lost.InnerException);
                    }
                }

                return;
            }

            var transaction = _transaction ?? throw AequorTransactionStateException.NoneOpen();
            _transaction = null;
            var abortedBy = _transactionAbortedBy;
            _transactionAbortedBy = null;
            // Whatever happens below, the block is over (committed, rolled back, or gone with its connection).
            _serverTransaction = ServerTransactionStatus.Idle;
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

                if (commit && abortedBy is not null)
                {
                    await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
                    Touch();
                    throw Aborted(abortedBy);
                }

                if (commit && await ProbeBeforeCommitAsync(connection, transaction, generation, cancellationToken).ConfigureAwait(false) is { } endedWhileIdle)
                {
                    throw LostTransactionCommitted(endedWhileIdle);
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
                await AfterTransactionEndedAsync(generation, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not AequorClientException && connection is not null && IsConnectionFailure(ex, connection))
            {
                await MarkDeadAsync(generation, commit ? "commit" : "rollback", ex).ConfigureAwait(false);
                if (commit && abortedBy is not null)
                {
                    // Only a rollback was sent; the server discards an aborted transaction of a lost backend anyway.
                    throw Aborted(abortedBy);
                }

                if (commit && RetryClassifier.EndedWhileIdle(ex))
                {
                    // The server rolled the transaction back while it sat idle, before the COMMIT arrived.
                    throw LostTransactionCommitted(ex);
                }

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

    private static AequorTransactionAbortedException Aborted(Exception abortedBy, bool chained = false) =>
        new($"Nothing was committed: a statement failed inside the transaction ({Describe(abortedBy)}), which aborted it, and it has been rolled back{(chained ? " (AND CHAIN: a new transaction is open)" : string.Empty)}. To keep the rest of a transaction after an error, roll back to a savepoint.", abortedBy);

    /// <summary>Never shows the secret or the password.</summary>
    public override string ToString() => $"AequorClient({ServiceName}/{InstanceId} → {Endpoint}, {State})";
}
