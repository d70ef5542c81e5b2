namespace Aequor.Engine.Reaper;

/// <summary>The options of one pass after a manual request's overrides.</summary>
internal sealed record ReapSettings(
    string ServiceName,
    bool DryRun,
    int MaxKills,
    int MinIdleSec,
    bool IncludeIdleInTransaction,
    int MinIdleInTransactionSec,
    double NearLimitRatio)
{
    public const string Idle = "idle";
    public const string IdleInTransaction = "idle in transaction";
    public const string IdleInTransactionAborted = "idle in transaction (aborted)";

    /// <summary>
    /// The cap of a pass that measured the database near its limit; 0 or below <see cref="MaxKills"/> keeps
    /// <see cref="MaxKills"/>. A request that names its own cap keeps it in every case.
    /// </summary>
    public int NearLimitMaxKills { get; init; }

    /// <summary>The lease prefix of the service: <c>s=&lt;service&gt;;</c>.</summary>
    public string Prefix => "s=" + ServiceName + ";";

    /// <summary>States a backend may be killed in; the kill statement re-checks against them.</summary>
    public string[] KillableStates => IncludeIdleInTransaction
        ? [Idle, IdleInTransaction, IdleInTransactionAborted]
        : [Idle];

    public static ReapSettings From(ReaperOptions options, ReapRequest? request)
    {
        ArgumentNullException.ThrowIfNull(options);
        var settings = new ReapSettings(
            LeaseFormat.NormalizeServiceName(options.ServiceName),
            request?.DryRun ?? false,
            request?.MaxIdleConnectionsToKill ?? options.MaxIdleConnectionsToKill,
            request?.MinConnectionIdleTimeSec ?? options.MinConnectionIdleTimeSec,
            request?.IncludeIdleInTransaction ?? options.IncludeIdleInTransaction,
            request?.MinIdleInTransactionSec ?? options.MinIdleInTransactionSec,
            options.NearLimitRatio)
        {
            NearLimitMaxKills = request?.MaxIdleConnectionsToKill ?? options.NearLimitMaxIdleConnectionsToKill,
        };
        if (settings.MaxKills < 1 || settings.MinIdleSec < 0 || settings.MinIdleInTransactionSec < 0)
        {
            throw new AequorConfigurationException("A reap request needs at least one kill allowed and idle thresholds of 0 seconds or more.");
        }

        return settings;
    }
}
