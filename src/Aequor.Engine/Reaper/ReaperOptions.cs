using System.Globalization;

namespace Aequor.Engine.Reaper;

/// <summary>
/// How the reaper finds and clears zombie connections of one service. Names and defaults follow
/// pg-aequor 0.1.4; <see cref="IncludeIdleInTransaction"/>, <see cref="PreviousCoordinationSecret"/>
/// and storm mode go beyond it.
/// </summary>
public sealed class ReaperOptions
{
    public const int DefaultMaxIdleConnectionsToKill = 10;
    public const int DefaultMinConnectionIdleTimeSec = 180;
    public const int DefaultMinIdleInTransactionSec = 300;
    public const double DefaultRunProbability = 0.1;
    public const int DefaultCooldownMs = 30_000;
    public const int MaxBackoffMs = 600_000;
    public const double DefaultNearLimitRatio = 0.8;
    public const int DefaultNearLimitMaxIdleConnectionsToKill = 100;

    /// <summary>The service whose leases this reaper may kill; normalised as pg-aequor does before use.</summary>
    public string ServiceName { get; init; } = LeaseFormat.DefaultServiceName;

    /// <summary>The secret leases are signed with (at least 16 bytes, UTF-8).</summary>
    public required string CoordinationSecret { get; init; }

    /// <summary>The secret before a rotation: leases signed with it still count as ours.</summary>
    public string? PreviousCoordinationSecret { get; init; }

    public int MaxIdleConnectionsToKill { get; init; } = DefaultMaxIdleConnectionsToKill;

    public int MinConnectionIdleTimeSec { get; init; } = DefaultMinConnectionIdleTimeSec;

    /// <summary>
    /// The cap of a pass whose scan found the database near its limit (<see cref="NearLimitRatio"/>), never
    /// below <see cref="MaxIdleConnectionsToKill"/>. Every candidate is still ours, signed, expired on the
    /// database clock, idle past the threshold and re-checked at kill time; only the count changes. At 10 per
    /// pass a burst of 30 new clients against 50 zombies needs three passes in a row, each by a client that
    /// got in after a retry delay, while the rest are refused (measured by bench/Aequor.Bench storm).
    /// </summary>
    public int NearLimitMaxIdleConnectionsToKill { get; init; } = DefaultNearLimitMaxIdleConnectionsToKill;

    /// <summary>
    /// Clients of one process that share this key share storm mode: a 53300 one of them saw, or a pass that
    /// measured the database near its limit, makes the others' next connects reap too. Null (the default):
    /// storm mode is this reaper's own. <see cref="ForClient"/> sets it to server, database and service.
    /// </summary>
    public string? StormScope { get; init; }

    /// <summary>
    /// Also reap expired leases that sit <c>idle in transaction</c> (or aborted): a frozen worker
    /// inside a transaction holds its row locks. pg-aequor never does.
    /// </summary>
    public bool IncludeIdleInTransaction { get; init; }

    public int MinIdleInTransactionSec { get; init; } = DefaultMinIdleInTransactionSec;

    /// <summary>Chance that a connect outside the cooldown runs a pass (pg-aequor documents it but never applies it).</summary>
    public double ReaperRunProbability { get; init; } = DefaultRunProbability;

    public int ReaperCooldownMs { get; init; } = DefaultCooldownMs;

    /// <summary>Share of the slots open to non-superusers above which the database counts as near its limit (storm mode).</summary>
    public double NearLimitRatio { get; init; } = DefaultNearLimitRatio;

    public ReaperErrorMode ErrorMode { get; init; } = ReaperErrorMode.Swallow;

    /// <summary>Called after every pass with its result; an exception it throws is ignored.</summary>
    public Action<ReapResult>? OnReap { get; init; }

    /// <summary>
    /// The reaper options of a client, or null when the client runs no reaper (Reaper off, or no
    /// secret under LeaseMode Optional). The client's options must be valid.
    /// </summary>
    /// <param name="serviceName">The client's service name, resolved once when it was created (null: resolve it now).</param>
    public static ReaperOptions? ForClient(AequorClientOptions client, string? serviceName = null, Action<ReapResult>? onReap = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        if (!client.Reaper || string.IsNullOrEmpty(client.CoordinationSecret))
        {
            return null;
        }

        return Of(client, serviceName, onReap);
    }

    /// <summary>
    /// The options a client's settings give a pass, whether or not the client runs a reaper: a manual
    /// pass (<see cref="ManualReapPass"/>) and a lease listing (<see cref="LeaseScanner"/>) judge with
    /// the same thresholds. Without a secret the secret is empty: such options select nothing.
    /// </summary>
    /// <param name="serviceName">
    /// The client's own, resolved once: resolving again re-reads AWS_LAMBDA_FUNCTION_NAME, and a pass that locked
    /// one service and then scanned and killed under another's name would reap while that service's reaper runs.
    /// </param>
    internal static ReaperOptions Of(AequorClientOptions client, string? serviceName = null, Action<ReapResult>? onReap = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        serviceName ??= client.ResolveServiceName();
        return new ReaperOptions
        {
            ServiceName = serviceName,
            CoordinationSecret = client.CoordinationSecret ?? string.Empty,
            PreviousCoordinationSecret = client.PreviousCoordinationSecret,
            MaxIdleConnectionsToKill = client.MaxIdleConnectionsToKill,
            MinConnectionIdleTimeSec = client.MinConnectionIdleTimeSec,
            IncludeIdleInTransaction = client.IncludeIdleInTransaction,
            MinIdleInTransactionSec = client.MinIdleInTransactionSec,
            ReaperRunProbability = client.ReaperRunProbability,
            ReaperCooldownMs = client.ReaperCooldownMs,
            ErrorMode = client.ReaperErrorMode,
            StormScope = StormScopeOf(client, serviceName),
            OnReap = onReap,
        };
    }

    /// <summary>Host, port, database and service: the clients that crowd the same slots and may reap each other's zombies.</summary>
    private static string? StormScopeOf(AequorClientOptions client, string serviceName)
    {
        try
        {
            var b = new Npgsql.NpgsqlConnectionStringBuilder(client.ConnectionString);
            return string.Create(CultureInfo.InvariantCulture, $"{b.Host}|{b.Port}|{b.Database ?? b.Username}|{serviceName}");
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    /// <summary>Throws <see cref="AequorConfigurationException"/> for options that cannot work.</summary>
    public void Validate()
    {
        if (string.IsNullOrEmpty(ServiceName))
        {
            throw new AequorConfigurationException("The reaper needs a service name; give the one the workers sign their leases with.");
        }

        // Constructing the signers checks the secrets' length without ever showing them.
        _ = new LeaseVerifier(CoordinationSecret, PreviousCoordinationSecret);
        RequireAtLeast(nameof(MaxIdleConnectionsToKill), MaxIdleConnectionsToKill, 1);
        RequireAtLeast(nameof(MinConnectionIdleTimeSec), MinConnectionIdleTimeSec, 0);
        RequireAtLeast(nameof(NearLimitMaxIdleConnectionsToKill), NearLimitMaxIdleConnectionsToKill, 1);
        RequireAtLeast(nameof(MinIdleInTransactionSec), MinIdleInTransactionSec, 0);
        RequireAtLeast(nameof(ReaperCooldownMs), ReaperCooldownMs, 0);
        if (double.IsNaN(ReaperRunProbability) || ReaperRunProbability is < 0 or > 1)
        {
            throw new AequorConfigurationException($"ReaperRunProbability is {ReaperRunProbability.ToString(CultureInfo.InvariantCulture)}; it must be between 0 and 1.");
        }

        if (double.IsNaN(NearLimitRatio) || NearLimitRatio is <= 0 or > 1)
        {
            throw new AequorConfigurationException($"NearLimitRatio is {NearLimitRatio.ToString(CultureInfo.InvariantCulture)}; it must be above 0 and at most 1.");
        }
    }

    private static void RequireAtLeast(string name, int value, int min)
    {
        if (value < min)
        {
            throw new AequorConfigurationException($"{name} is {value.ToString(CultureInfo.InvariantCulture)}; it must be at least {min.ToString(CultureInfo.InvariantCulture)}.");
        }
    }

    /// <summary>Never shows the secrets.</summary>
    public override string ToString() =>
        $"ReaperOptions(service: {ServiceName}, secret: ***, previous secret: {(PreviousCoordinationSecret is null ? "none" : "***")}, max kills: {MaxIdleConnectionsToKill}, min idle: {MinConnectionIdleTimeSec}s, idle in transaction: {(IncludeIdleInTransaction ? MinIdleInTransactionSec.ToString(CultureInfo.InvariantCulture) + "s" : "off")})";
}
