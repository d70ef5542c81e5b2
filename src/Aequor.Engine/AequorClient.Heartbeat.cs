using System.Data;
using System.Diagnostics;
using Aequor.Engine.Reaper;
using Npgsql;

namespace Aequor.Engine;

/// <summary>The lease heartbeat and the liveness probe that ride ahead of statements.</summary>
public sealed partial class AequorClient
{
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

    /// <summary>One reading of the database clock, on the client's clock before and after it.</summary>
    private readonly record struct ClockReading(long SentAtMs, long ReceivedAtMs, long DatabaseMs);

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

        var probe = (_signer is not null && !_probedOnConnection)
            || QuietLongEnoughToProbe();
        if (renewal == RenewalNeed.None && !probe)
        {
            return PrefixPlan.None;
        }

        var kind = renewal == RenewalNeed.None ? PrefixKind.Probe : PrefixKind.Renew;
        var standalone = statementText is null || renewal == RenewalNeed.Hard || !StatementShape.CanShareBatch(statementText);
        return new PrefixPlan(kind, standalone);
    }

    /// <summary>Long enough since the last round trip that the backend may have died unseen: a probe is worth its cost.</summary>
    private bool QuietLongEnoughToProbe() => Stopwatch.GetElapsedTime(_lastActivity).TotalMilliseconds >= ProbeAfterIdleMs;

    /// <summary>
    /// Inside a transaction nothing is renewed, but a statement that may commit gets a probe of its own after
    /// <see cref="ProbeAfterIdleMs"/> of quiet: a backend ended while the transaction sat idle (a reaper with
    /// IncludeIdleInTransaction, an administrator's terminate, a restart) answers the COMMIT itself with a FATAL that
    /// cannot tell a transaction rolled back long ago from a commit cut short, so the caller was told the outcome was
    /// unknown. A failed probe proves the COMMIT never left: nothing was committed.
    /// </summary>
    private PrefixPlan PlanCommitProbe(string statementText) =>
        TransactionControlText.MayCommit(statementText) && QuietLongEnoughToProbe()
            ? new PrefixPlan(PrefixKind.Probe, Standalone: true)
            : PrefixPlan.None;

    /// <summary>
    /// <see cref="PlanCommitProbe"/> for <see cref="CommitAsync"/>: the backend's FATAL when the probe found it ended
    /// while the transaction sat idle (the connection is then marked dead), or null to go on and commit.
    /// </summary>
    private async Task<Exception?> ProbeBeforeCommitAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, long generation, CancellationToken cancellationToken)
    {
        if (!QuietLongEnoughToProbe())
        {
            return null;
        }

        try
        {
            var command = new NpgsqlCommand(Heartbeat.ProbeSql, connection, transaction);
            await using (command.ConfigureAwait(false))
            {
                _ = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            }

            Touch();
            return null;
        }
        catch (Exception ex) when (ex is not OperationCanceledException && IsConnectionFailure(ex, connection))
        {
            await MarkDeadAsync(generation, "probe", ex).ConfigureAwait(false);
            return ex;
        }
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
        int? abandonedPid = null;
        if (lease is not null)
        {
            _renewalInFlight = lease;
            _renewalInFlightShared = false;
        }

        try
        {
            var work = ExecutePrefixAsync(connection, lease, stop.Token);
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
                    var timeout = new TimeoutException($"The lease renewal did not complete within HeartbeatTimeoutMs ({_options.HeartbeatTimeoutMs} ms).");

                    // Let go here, whatever happens next: should the caller's token be cancelled before the catch
                    // below is reached, its filter skips it, and the connection stuck in the renewal stayed in use.
                    abandonedPid = Abandon(generation, connection, work, stop, timeout);
                    throw timeout;
                }
            }

            // Applied here by the caller, never by the command itself: an abandoned renewal that answers late
            // belongs to a connection already replaced (the reading would spare the new one its first probe).
            if (await work.ConfigureAwait(false) is { } reading)
            {
                _clock.Observe(reading.SentAtMs, reading.ReceivedAtMs, reading.DatabaseMs);
                _probedOnConnection = true;
            }

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
                // The connection stuck inside the renewal was let go (never reused) whatever the mode.
                if (abandonedPid is { } pid && OnClientDead is { } dead)
                {
                    EventDispatch.Raise(dead, this, new AequorClientDeadEvent(generation, "heartbeat", ex, pid), Counters);
                }

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
                        $"The lease renewal failed ({Describe(ex)}); HeartbeatErrorMode is Throw, so the statement was not sent.", ex);
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

    /// <summary>Touches no state of the client: once abandoned, it goes on in the background.</summary>
    private async Task<ClockReading?> ExecutePrefixAsync(NpgsqlConnection connection, string? lease, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(lease is null ? Heartbeat.ProbeSql : Heartbeat.RenewSql, connection);
        await using (command.ConfigureAwait(false))
        {
            if (lease is not null)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = lease });
            }

            var sentAt = _clock.ClientNowMs();
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
                    ? new ClockReading(sentAt, _clock.ClientNowMs(), ServerClock.ReadDatabaseMs(reader, lease is null ? 0 : 1))
                    : null;
            }
        }
    }

    /// <summary>
    /// Lets go of a connection that is stuck in a command the client stopped waiting for. It is detached at once
    /// (the next statement connects afresh) and disposed once that command has ended; the continuation observes
    /// and contains every failure, so nothing escapes from the background. Returns the detached backend's pid
    /// (for the caller's OnClientDead, raised after its OnHeartbeatFail), or null when it was no longer current.
    /// </summary>
    private int? Abandon(long generation, NpgsqlConnection connection, Task work, CancellationTokenSource stop, Exception reason)
    {
        if (generation != Generation || !ReferenceEquals(_connection, connection))
        {
            _ = DisposeAfterAsync(work, null, stop);
            return null;
        }

        var pid = BackendPid;
        _connection = null;
        _renewalInFlight = null;
        _lastDeath = reason;
        _ = DisposeAfterAsync(work, connection, stop);
        Counters.ClientDied();
        return pid;
    }

    private static async Task DisposeAfterAsync(Task work, NpgsqlConnection? connection, CancellationTokenSource stop)
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

        stop.Dispose();
    }

    /// <summary>
    /// The lease the server holds now, read from the application_name it reports (ParameterStatus): a renewal
    /// reverted by a rollback or by a failed batch is noticed here, because the server reports the revert.
    /// </summary>
    private long? ReadServerLease(NpgsqlConnection connection)
    {
        if (!ReferenceEquals(connection, _serverParametersOf))
        {
            // The connector's own dictionary, the same for the life of an open connection and updated in place by the
            // server's ParameterStatus messages. NpgsqlConnection.PostgresParameters checks the connection and binds a
            // temporary scope on every read: ~1 µs each time, twice per statement, timed in place.
            _serverParameters = connection.PostgresParameters;
            _serverParametersOf = connection;
        }

        _serverParameters!.TryGetValue(ApplicationNameParameter, out var name);
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
        ObserveServerTransaction(generation);
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
    /// Expiry on the database's timeline. The lease a connect sets is signed before that connection could read
    /// the database clock, so it uses the offset learned earlier (another connection of this client) or, for the
    /// very first, the client clock; the same round trip reads the clock, and a lease found off by more than
    /// <see cref="Heartbeat.SkewToleranceMs"/> is set again in that connect (a second round trip only then).
    /// </summary>
    private string SignLease() =>
        _signer!.Sign(ServiceName, InstanceId, _clock.DatabaseNowMs() + _options.LeaseTtlMs);

    private void Touch() => _lastActivity = Stopwatch.GetTimestamp();
}
