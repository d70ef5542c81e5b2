using System.Data;
using System.Diagnostics;
using Aequor.Engine.Reaper;
using Npgsql;

namespace Aequor.Engine;

/// <summary>Physical connections: connect with retries, the reaper after connect, dead and abandoned connections.</summary>
public sealed partial class AequorClient
{
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
            var slotsFreedBefore = _reaper?.Schedule.SlotsFreedCount ?? 0;
            try
            {
                NpgsqlConnection connection;

                // Counted only where it may run a pass, and ended before a refusal's wait below: the attempts a
                // refused client waits for are its neighbours'.
                var passing = PassAfterConnect is null ? null : _reaper?.Schedule;
                passing?.ConnectStarting();
                try
                {
                    connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
                    await RunReaperAsync(connection, sawTooManyConnections ? ReapTrigger.AfterTooManyConnections : ReapTrigger.AfterConnect, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    passing?.ConnectEnded();
                }

                if (IsAlive(connection))
                {
                    return connection;
                }

                // The connection died during the pass (a worker frozen mid-pass comes back to find its own
                // backend reaped): nothing of the caller's was sent, so this is a connect to do again.
                await MarkDeadAsync(Generation, "reaper", null).ConfigureAwait(false);
                throw new IOException("the new connection was lost during the reaper pass that followed it");
            }
            catch (Exception ex) when (ex is not AequorClientException && !(ex is OperationCanceledException && cancellationToken.IsCancellationRequested) && !_disposed)
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
                        $"Could not connect to {Endpoint}: {Describe(ex)}. This is not a transient failure, so it was not retried.", ex, attempts, budget.Elapsed);
                }

                if (!budget.TryTake(RetryPhase.Connect, out var delay))
                {
                    throw new AequorConnectFailedException(
                        $"Could not connect to {Endpoint} after {attempts} attempt(s) in {budget.Elapsed.TotalSeconds:0.0} s (Retries {_options.Retries}, MaxConnectRetryTimeMs {_options.MaxConnectRetryTimeMs}): {Describe(ex)}."
                        + (kind == FailureKind.TooManyConnections ? " The server has no free connection slot (max_connections); idle leased connections are reclaimed by the reaper." : string.Empty),
                        ex, attempts, budget.Elapsed);
                }

                Counters.Retried();
                if (OnReconnect is { } reconnect)
                {
                    EventDispatch.Raise(reconnect, this, new AequorReconnectEvent(Generation + 1, budget.RetriesUsed, delay, ex), Counters);
                }

                if (kind == FailureKind.TooManyConnections && _reaper is { } reaper)
                {
                    // A pass of this process may free the slots before the delay is over: it wakes us then.
                    // While a pass is under way the server stays full: wait for it, up to MaxBackoff.
                    var longest = TimeSpan.FromMilliseconds(Math.Min(_options.MaxBackoff, budget.TimeLeft(RetryPhase.Connect).TotalMilliseconds));
                    await reaper.Schedule.WaitForRetryAsync(delay, slotsFreedBefore, longest, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await DelayAsync(delay, cancellationToken).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>
    /// One round trip before the connection is handed out (<see cref="ConnectSql"/>): this client's own lease in
    /// place of the data source's, with the database clock, so the first statement already judges the lease on the
    /// database's timeline; the catalogue's fingerprint, so a type created since the shared data source loaded its
    /// catalogue is read like any other (the types are reloaded then); with a reaper, the database's load, which
    /// turns storm mode on when it is near its limit (and off below it). Not set means not handed out: the connect fails.
    /// </summary>
    private async Task CompleteConnectAsync(NpgsqlConnection connection, SharedDataSources.Entry shared, CancellationToken cancellationToken)
    {
        var signedWithOffsetMs = _clock.OffsetMs;
        var lease = _signer is null ? null : SignLease();
        string fingerprint;
        var sql = lease is null ? ConnectSql.Plain : _reaper is null ? ConnectSql.Leased : ConnectSql.LeasedWithLoad;
        var command = new NpgsqlCommand(sql, connection);
        await using (command.ConfigureAwait(false))
        {
            if (lease is not null)
            {
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = lease });
            }

            var sentAt = _clock.ClientNowMs();
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    throw new InvalidOperationException("The connect's first statement returned no row.");
                }

                if (lease is not null)
                {
                    _clock.Observe(sentAt, _clock.ClientNowMs(), ServerClock.ReadDatabaseMs(reader, 1), fresh: true);
                }

                var column = ConnectSql.FingerprintColumn(lease is not null);
                fingerprint = reader.GetString(column);
                if (lease is not null && _reaper is { } reaper)
                {
                    var used = reader.GetInt32(column + 1);
                    var available = Math.Max(1, reader.GetInt32(column + 2) - reader.GetInt32(column + 3));
                    reaper.Schedule.ReportLoad(used >= reaper.Options.NearLimitRatio * available);
                }
            }
        }

        if (shared.CatalogueChanged(fingerprint))
        {
            await connection.ReloadTypesAsync(cancellationToken).ConfigureAwait(false);
        }

        if (lease is not null && Math.Abs(_clock.OffsetMs - signedWithOffsetMs) > Heartbeat.SkewToleranceMs)
        {
            // The lease just set was signed before this reading, on the client clock (a first connect) or an offset
            // since gone stale: its expiry is off by the skew. Behind by more than the TTL it is expired at birth and
            // a reaper takes this live, idle client for a zombie; ahead, a frozen one would outlive its TTL. Set it
            // again on the database timeline now, not at the next statement, which may come much later.
            lease = SignLease();
            var resign = new NpgsqlCommand(ConnectSql.Resign, connection);
            await using (resign.ConfigureAwait(false))
            {
                resign.Parameters.Add(new NpgsqlParameter<string> { TypedValue = lease });
                await resign.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        connection.PostgresParameters.TryGetValue(ApplicationNameParameter, out var name);
        if (lease is not null && !string.Equals(name, lease, StringComparison.Ordinal))
        {
            throw new InvalidOperationException("The server did not report this client's lease as the connection's application_name after setting it.");
        }
    }

    private static string Describe(Exception ex) => FailureText.Describe(ex);

    /// <summary>
    /// Opens one physical connection from the process's shared data source for these options
    /// (<see cref="SharedDataSources"/>) and, before handing it out, puts this client's own lease in its
    /// application_name in place of the data source's.
    /// </summary>
    private async Task<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var shared = SharedDataSources.For(_dataSourceKey, _baseBuilder.ConnectionString, _signer, ServiceName, StartupLeaseTtlMs, _clock.DatabaseNowMs());
        NpgsqlConnection? connection = null;
        try
        {
            connection = shared.DataSource.CreateConnection();
            connection.Notice += RaiseNotice;
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            await CompleteConnectAsync(connection, shared, cancellationToken).ConfigureAwait(false);

            // A connect that completed as the client was disposed: closed here, never handed out.
            ObjectDisposedException.ThrowIf(_disposed, this);
        }
        catch
        {
            if (connection is not null)
            {
                await DisposeQuietlyAsync(connection).ConfigureAwait(false);
            }

            throw;
        }
        finally
        {
            shared.Release();
        }

        _connection = connection;
        var generation = Interlocked.Increment(ref _generation);
        BackendPid = connection.ProcessID;
        // The connect read the clock already; the first statement still carries the probe, for its liveness proof.
        _probedOnConnection = false;
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
    /// How long the lease in a connection's startup packet lasts: the lease TTL plus the connect timeout. That lease is
    /// the backend's from the startup until the connect's first statement (<see cref="ConnectSql"/>) puts this
    /// client's own in its place, and a live connect may take up to the connect timeout (a slow network, or TLS, the
    /// authentication and the first connection's type catalogue on a loaded box): signed for the TTL alone, it expired
    /// under a connect that took longer, and a reaper of the service cut off a live client's backend, idle between two
    /// of the connect's round trips (SlowConnectReapTests; the soak once saw a first statement cut off by 57P01 after a
    /// 13.9 s connect under 3 s leases, and a connect that outlasts the connect budget is not tried again). A process
    /// frozen there is still reaped, the connect timeout later (MidConnectFreezeReapTests). Timeout 0 (no limit) counts as Npgsql's default 15 s.
    /// </summary>
    internal int StartupLeaseTtlMs => (int)Math.Min(int.MaxValue, _options.LeaseTtlMs + (1_000L * (_baseBuilder.Timeout > 0 ? _baseBuilder.Timeout : 15)));

    /// <summary>
    /// REAPER HOOK: after every successful connect, on the new connection, before the caller's statement and
    /// outside any transaction. Best effort: a failing pass never fails the connect unless ReaperErrorMode is Throw.
    /// </summary>
    /// <summary>What runs a pass after this client's connect, or null where none may run (reaper off, no secret, inside a transaction).</summary>
    private ReaperHook? PassAfterConnect => Reaper is { } reaper && _options.Reaper && _signer is not null && _transaction is null ? reaper : null;

    private async Task RunReaperAsync(NpgsqlConnection connection, ReapTrigger trigger, CancellationToken cancellationToken)
    {
        if (PassAfterConnect is not { } reaper)
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
                throw new AequorReaperException($"The reaper pass failed ({Describe(ex)}); ReaperErrorMode is Throw. The connection is open; the statement was not sent.", ex);
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
        _connection = null;
        _renewalInFlight = null;
        _lastDeath = error;
        if (_transaction is { } transaction)
        {
            _transaction = null;
            _transactionLost = true;
            _transactionLostBy = error;
            await DisposeQuietlyAsync(transaction).ConfigureAwait(false);
        }
        else if (SqlTransactionOpen)
        {
            // BEGIN in SQL: the same rule, or the next statement would run on a fresh connection outside it.
            _transactionLost = true;
            _transactionLostBy = error;
        }

        _serverTransaction = ServerTransactionStatus.Idle;

        await DisposeQuietlyAsync(connection).ConfigureAwait(false);
        Counters.ClientDied();
        if (OnClientDead is { } dead)
        {
            EventDispatch.Raise(dead, this, new AequorClientDeadEvent(generation, source, error, pid), Counters);
        }
    }

    private void RaiseNotice(object sender, NpgsqlNoticeEventArgs e)
    {
        if (OnNotice is { } handlers)
        {
            var n = e.Notice;
            EventDispatch.Raise(handlers, this, new AequorNoticeEvent(n.InvariantSeverity, n.SqlState, n.MessageText, n.Detail, n.Hint), Counters);
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
}
