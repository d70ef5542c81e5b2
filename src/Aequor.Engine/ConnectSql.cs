using Aequor.Engine.Reaper;

namespace Aequor.Engine;

/// <summary>
/// The one statement a connect sends after the startup, before the connection is handed out. Its columns, in order:
/// with a lease, the lease set in place of the data source's ($1) and the database clock; always the catalogue's
/// fingerprint (<see cref="SharedDataSources"/>); with a reaper, the connection slots used, max_connections and
/// the reserved slots, so a client that gets in while the database is near its limit starts the storm pass at
/// once instead of waiting for some client to be refused (the clients that got the last slots never were, and
/// the first pass of the storm bench started 0.4–1.3 s into the burst).
/// </summary>
internal static class ConnectSql
{
    /// <summary>Changes whenever a type is created or dropped (a new type takes a new, higher oid). A scan of a few hundred rows.</summary>
    private const string Fingerprint = "(SELECT count(*)::text || '/' || max(oid::int8)::text FROM pg_type)";

    private const string Lease = "set_config('application_name', $1, false), clock_timestamp()";

    /// <summary>
    /// The reaper's count of used slots (<see cref="ReaperSql.UsedConnections"/>), on the activity function itself:
    /// the view's joins cost a fresh backend most of its planning time.
    /// </summary>
    private const string Load = """
        (SELECT count(*) FROM pg_stat_get_activity(NULL) s
         WHERE s.backend_type = 'client backend' OR (s.backend_type IS NULL AND s.datid IS NOT NULL))::int,
        current_setting('max_connections')::int,
        current_setting('superuser_reserved_connections')::int
          + coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0)
        """;

    public const string Plain = $"SELECT {Fingerprint}";

    public const string Leased = $"SELECT {Lease}, {Fingerprint}";

    public const string LeasedWithLoad = $"SELECT {Lease}, {Fingerprint}, {Load}";

    /// <summary>
    /// Sets the lease again, signed on the clock just read: only when the one set above was off by more than the
    /// skew tolerance, so a client whose clock is right pays no second round trip.
    /// </summary>
    public const string Resign = "SELECT set_config('application_name', $1, false)";

    /// <summary>Column of the fingerprint in each statement.</summary>
    public static int FingerprintColumn(bool leased) => leased ? 2 : 0;
}
