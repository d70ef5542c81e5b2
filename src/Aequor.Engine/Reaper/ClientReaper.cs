using Npgsql;

namespace Aequor.Engine.Reaper;

/// <summary>
/// The reaper of one client: decides when to run a pass (<see cref="ReaperSchedule"/>), runs it on
/// the client's own connection, reports it to <see cref="ReaperOptions.OnReap"/>, and never lets a
/// failure out unless <see cref="ReaperErrorMode.Throw"/> asks for it.
/// </summary>
/// <remarks>
/// The connection client calls <see cref="AfterConnectAsync"/> right after a successful connect,
/// before the connection is handed out (so it is outside any user transaction), and
/// <see cref="ReportConnectError"/> when a connect fails.
/// </remarks>
public sealed class ClientReaper
{
    public ClientReaper(ReaperOptions options, TimeProvider? timeProvider = null, Random? random = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        Schedule = new ReaperSchedule(options, timeProvider, random);
    }

    public ReaperOptions Options { get; }

    public ReaperSchedule Schedule { get; }

    /// <summary>
    /// Runs a pass if the schedule says so (probability, cooldown, storm mode); null when it did not.
    /// The connection must be open and outside a transaction.
    /// </summary>
    public async Task<ReapResult?> AfterConnectAsync(NpgsqlConnection connection, CancellationToken cancellationToken = default)
    {
        if (!Schedule.TryStartAfterConnect())
        {
            return null;
        }

        return await RunStartedAsync(connection, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A manual pass: now, whatever the probability and cooldown, but only under the lock.</summary>
    public Task<ReapResult> RunNowAsync(NpgsqlConnection connection, ReapRequest? request = null, CancellationToken cancellationToken = default)
    {
        Schedule.PassStarting();
        return RunStartedAsync(connection, request, cancellationToken);
    }

    /// <summary>
    /// Tells the reaper a connect failed. A "too many clients" refusal (53300) turns storm mode on,
    /// so the next connects that get in reap. Returns whether it did.
    /// </summary>
    public bool ReportConnectError(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is PostgresException { SqlState: PostgresErrorCodes.TooManyConnections }
                || e.Message.Contains("too many clients", StringComparison.OrdinalIgnoreCase))
            {
                Schedule.ReportNearLimit();
                return true;
            }
        }

        return false;
    }

    /// <summary>Runs a pass counted as under way (<see cref="ReaperSchedule.PassStarting"/>); always ends it.</summary>
    private async Task<ReapResult> RunStartedAsync(NpgsqlConnection connection, ReapRequest? request, CancellationToken cancellationToken)
    {
        ReapResult? result = null;
        try
        {
            result = await ReaperPass.ExecuteAsync(connection, Options, request, beforeKill: null, cancellationToken).ConfigureAwait(false);
            Schedule.RecordPass(result);
        }
        finally
        {
            // After RecordPass: the woken clients find storm mode already as the pass left it.
            Schedule.PassFinished(result is { ExitedPids.Count: > 0 });
        }
        try
        {
            Options.OnReap?.Invoke(result);
        }
#pragma warning disable CA1031 // A user's hook must never fail a connect.
        catch (Exception)
#pragma warning restore CA1031
        {
        }

        ReaperPass.ThrowIfRequested(result, Options);
        return result;
    }
}
