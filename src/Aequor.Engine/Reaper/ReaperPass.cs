using System.Data;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Npgsql;

namespace Aequor.Engine.Reaper;

/// <summary>
/// One reaper pass on an open connection that is not inside a user's transaction:
/// BEGIN + lock + scan (one round trip), then kill + wait for the killed to exit + COMMIT (one round trip).
/// </summary>
public static class ReaperPass
{
    /// <summary>pg-aequor's advisory-lock class id (0x50474151, "PGAQ"); the second key is hashtext(service).</summary>
    public const int LockClassId = ReaperSql.LockClassId;

    /// <summary>
    /// Runs a pass now, ignoring probability and cooldown but never the lock. With
    /// <see cref="ReaperErrorMode.Swallow"/> it does not throw once the options are valid: errors,
    /// cancellation included, are in <see cref="ReapResult.Error"/>.
    /// </summary>
    /// <exception cref="AequorConfigurationException">The options or the request cannot work.</exception>
    public static async Task<ReapResult> RunAsync(
        NpgsqlConnection connection,
        ReaperOptions options,
        ReapRequest? overrides = null,
        CancellationToken cancellationToken = default)
    {
        var result = await ExecuteAsync(connection, options, overrides, beforeKill: null, cancellationToken).ConfigureAwait(false);
        ThrowIfRequested(result, options);
        return result;
    }

    internal static void ThrowIfRequested(ReapResult result, ReaperOptions options)
    {
        if (result.Error is not null && options.ErrorMode == ReaperErrorMode.Throw)
        {
            ExceptionDispatchInfo.Capture(result.Error).Throw();
        }
    }

    /// <summary>A pass that reports every failure in its result and throws only for invalid options.</summary>
    /// <param name="beforeKill">Test hook run between scan and kill while the lock is held.</param>
    internal static async Task<ReapResult> ExecuteAsync(
        NpgsqlConnection connection,
        ReaperOptions options,
        ReapRequest? overrides,
        Func<IReadOnlyList<ReapCandidate>, CancellationToken, Task>? beforeKill,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var settings = ReapSettings.From(options, overrides);
        var verifier = new LeaseVerifier(options.CoordinationSecret, options.PreviousCoordinationSecret);

        var clock = Stopwatch.StartNew();
        var roundTrips = 0;
        var locked = false;
        var ended = false;
        Exception? error = null;
        ScanOutcome? scan = null;
        ReapPlanner.Plan? plan = null;
        var killed = new List<int>();
        var exited = new List<int>();
        var notKilled = new List<ReapNotKilled>();
        NpgsqlTransaction? transaction = null;

        try
        {
            if (connection.State != ConnectionState.Open)
            {
                throw new InvalidOperationException($"The reaper needs an open connection; this one is {connection.State}.");
            }

            transaction = await BeginOwnTransactionAsync(connection, cancellationToken).ConfigureAwait(false);

            // Round trip 1: BEGIN (Npgsql sends it with the next statement) + lock + scan.
            roundTrips++;
            scan = await ScanAsync(connection, transaction, settings, cancellationToken).ConfigureAwait(false);
            locked = scan.Locked;
            if (locked)
            {
                plan = ReapPlanner.Select(scan.Rows, scan.NowMs, settings, verifier, scan.IsNearLimit(settings.NearLimitRatio));
                notKilled.AddRange(plan.NotPermitted);
                if (beforeKill is not null)
                {
                    await beforeKill(plan.Candidates, cancellationToken).ConfigureAwait(false);
                }
            }

            // Round trip 2: kill + COMMIT (which releases the lock), or just COMMIT.
            roundTrips++;
            if (plan is { Candidates.Count: > 0 } && !settings.DryRun)
            {
                await KillAndCommitAsync(connection, transaction, settings, plan.Candidates, killed, exited, notKilled, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                if (plan is not null && settings.DryRun)
                {
                    notKilled.AddRange(plan.Candidates.Select(c => new ReapNotKilled(c.Pid, ReapReasons.DryRun, c.ApplicationName, c.UserName)));
                }
            }

            ended = true;
        }
        catch (Exception ex)
        {
            error = ex;
        }
        finally
        {
            if (transaction is not null)
            {
                roundTrips += await EndAsync(transaction, ended).ConfigureAwait(false);
            }
        }

        return new ReapResult
        {
            ServiceName = settings.ServiceName,
            LockAcquired = locked,
            DryRun = settings.DryRun,
            Scanned = scan?.Rows.Count ?? 0,
            Candidates = plan?.Candidates ?? [],
            KilledPids = killed,
            ExitedPids = exited,
            NotKilled = notKilled,
            Skipped = plan?.Skipped ?? new Dictionary<string, int>(),
            ConnectionsUsed = scan?.Used,
            ConnectionsAvailable = scan?.Available,
            NearLimit = scan is not null && scan.IsNearLimit(settings.NearLimitRatio),
            StillNearLimit = scan is not null && scan.IsNearLimit(settings.NearLimitRatio, exited.Count),
            DatabaseNowMs = scan?.NowMs,
            DurationMs = clock.ElapsedMilliseconds,
            RoundTrips = roundTrips,
            Error = error,
        };
    }

    private sealed record ScanOutcome(bool Locked, long NowMs, int MaxConnections, int Reserved, int Used, List<ScannedBackend> Rows)
    {
        public int Available => Math.Max(1, MaxConnections - Reserved);

        /// <param name="freed">Slots freed since the scan: killed backends that have exited.</param>
        public bool IsNearLimit(double ratio, int freed = 0) => Used - freed >= ratio * Available;
    }

    /// <summary>
    /// The pass's own transaction. Npgsql refuses to begin one while a transaction is open on the
    /// connection (its own or a raw BEGIN): that is how a pass is kept out of a user's transaction.
    /// </summary>
    private static async Task<NpgsqlTransaction> BeginOwnTransactionAsync(NpgsqlConnection connection, CancellationToken ct)
    {
        try
        {
            return await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidOperationException("The reaper was called while a transaction is open on the connection; a pass runs only between transactions.", ex);
        }
    }

    private static async Task<ScanOutcome> ScanAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, ReapSettings settings, CancellationToken ct)
    {
        var cmd = new NpgsqlCommand(ReaperSql.LockAndScan, connection, transaction);
        await using var disposeCommand = cmd.ConfigureAwait(false);
        cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = settings.ServiceName });
        cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = settings.Prefix });
        var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        await using var disposeReader = reader.ConfigureAwait(false);
        ScanOutcome? outcome = null;
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            outcome ??= new ScanOutcome(
                reader.GetBoolean(0),
                reader.GetInt64(1),
                reader.GetInt32(2),
                reader.GetInt32(3),
                reader.GetInt32(4),
                []);
            if (reader.IsDBNull(5))
            {
                continue;
            }

            outcome.Rows.Add(new ScannedBackend(
                reader.GetInt32(5),
                reader.GetString(6),
                reader.IsDBNull(7) ? null : reader.GetString(7),
                reader.IsDBNull(8) ? null : reader.GetString(8),
                reader.IsDBNull(9) ? null : reader.GetDateTime(9),
                reader.IsDBNull(10) ? null : reader.GetDouble(10),
                !reader.IsDBNull(11) && reader.GetBoolean(11)));
        }

        return outcome ?? throw new InvalidOperationException("The reaper's scan returned no row.");
    }

    /// <summary>
    /// One batch: refresh the activity snapshot, kill with the re-check and wait for the exits, COMMIT. If the kill fails
    /// the server skips the COMMIT and the transaction is rolled back by <see cref="EndAsync"/>,
    /// which releases the lock just the same.
    /// </summary>
    private static async Task KillAndCommitAsync(
        NpgsqlConnection connection,
        NpgsqlTransaction transaction,
        ReapSettings settings,
        IReadOnlyList<ReapCandidate> candidates,
        List<int> killed,
        List<int> exited,
        List<ReapNotKilled> notKilled,
        CancellationToken ct)
    {
        var batch = new NpgsqlBatch(connection, transaction);
        await using var disposeBatch = batch.ConfigureAwait(false);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(ReaperSql.FreshActivity));
        var kill = new NpgsqlBatchCommand(ReaperSql.Kill);
        kill.Parameters.Add(new NpgsqlParameter<string> { TypedValue = KillJson.Candidates(candidates) });
        kill.Parameters.Add(new NpgsqlParameter<string> { TypedValue = KillJson.States(settings.KillableStates) });
        batch.BatchCommands.Add(kill);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(ReaperSql.Commit));

        var byPid = candidates.ToDictionary(c => c.Pid);
        var reader = await batch.ExecuteReaderAsync(ct).ConfigureAwait(false);
        await using var disposeReader = reader.ConfigureAwait(false);
        await reader.NextResultAsync(ct).ConfigureAwait(false);
        Func<int, object?> column = reader.GetValue;
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            var row = KillRow.Read(column);
            if (row.Reason is { } reason)
            {
                var candidate = byPid[row.Pid];
                notKilled.Add(new ReapNotKilled(row.Pid, reason, candidate.ApplicationName, candidate.UserName));
                continue;
            }

            killed.Add(row.Pid);
            if (row.Exited)
            {
                exited.Add(row.Pid);
            }
        }

        while (await reader.NextResultAsync(ct).ConfigureAwait(false))
        {
        }
    }

    /// <summary>
    /// Disposes the pass's transaction: nothing to send after a COMMIT; otherwise a ROLLBACK, which
    /// also releases the lock (a dropped connection releases it on the server). Never throws.
    /// Returns the round trips it used.
    /// </summary>
    private static async Task<int> EndAsync(NpgsqlTransaction transaction, bool ended)
    {
        try
        {
            await transaction.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or OperationCanceledException or IOException)
        {
            // The session is broken; the server ends its transaction and lock with it.
        }

        return ended ? 0 : 1;
    }
}
