namespace Aequor.Engine.Reaper;

/// <summary>The reaper's statements. Each is one round trip; none can raise 42501.</summary>
internal static class ReaperSql
{
    /// <summary>0x50474151, "PGAQ": pg-aequor's first advisory-lock key, so Node and PowerShell clients of a service share one lock.</summary>
    public const int LockClassId = 1346847057;

    /// <summary>
    /// Whether this role may pg_terminate_backend the row's backend, mirroring the server's own check:
    /// a superuser's backend needs a superuser; otherwise membership in its role or pg_signal_backend.
    /// Needs <c>r</c> (the backend's pg_roles row, LEFT JOINed) and <c>me</c> (the current user's rolsuper).
    /// </summary>
    public const string CanSignal = """
        (r.oid IS NOT NULL
         AND (NOT r.rolsuper OR me.rolsuper)
         AND (me.rolsuper OR pg_has_role(r.oid, 'USAGE') OR pg_has_role('pg_signal_backend'::name, 'USAGE')))
        """;

    /// <summary>
    /// Client backends holding a connection slot. A non-superuser sees no backend_type for other roles'
    /// sessions; those attached to a database are clients too (the launchers and auxiliary processes have none).
    /// </summary>
    public const string UsedConnections = """
        (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' OR (backend_type IS NULL AND datid IS NOT NULL))::int
        """;

    /// <summary>
    /// Lock and scan in one statement, first in the pass's own transaction. $1 = normalised service,
    /// $2 = its lease prefix. The lock is transaction-scoped: it conflicts with pg-aequor's session
    /// lock on the same keys, and it ends with the transaction whatever happens — commit, rollback,
    /// a failed kill, a dropped connection — so it can never be left behind.
    /// The first row always comes (LEFT JOIN): it carries the lock outcome, the database clock and
    /// the connection figures for storm mode, measured even when the lock is busy.
    /// </summary>
    public const string LockAndScan = $"""
        SELECT g.locked, g.now_ms, g.max_conn, g.reserved, g.used,
               b.pid, b.application_name, b.state, b.usename, b.state_change, b.idle_sec, b.can_signal
        FROM (
            SELECT pg_try_advisory_xact_lock({LockClassIdText}, hashtext($1)) AS locked,
                   (extract(epoch FROM now()) * 1000)::bigint AS now_ms,
                   current_setting('max_connections')::int AS max_conn,
                   current_setting('superuser_reserved_connections')::int
                     + coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0) AS reserved,
                   {UsedConnections} AS used
            OFFSET 0
        ) g
        LEFT JOIN LATERAL (
            SELECT a.pid, a.application_name, a.state, a.usename::text AS usename, a.state_change,
                   extract(epoch FROM now() - a.state_change)::float8 AS idle_sec,
                   {CanSignal} AS can_signal
            FROM pg_stat_activity a
            LEFT JOIN pg_roles r ON r.oid = a.usesysid
            CROSS JOIN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) me
            WHERE g.locked
              AND a.datname = current_database()
              AND a.pid <> pg_backend_pid()
              AND left(a.application_name, length($2)) = $2
        ) b ON true
        """;

    /// <summary>
    /// pg_stat_activity is a snapshot taken once per transaction: without this the kill's re-check
    /// would see the scan's stale rows. It also lifts statement_timeout for the rest of the pass's own
    /// transaction (is_local): a session's timeout below the kill's wait for the exits (a script's
    /// SET statement_timeout = '200ms', a role's setting) cancelled the kill after it had signalled the
    /// zombies, and the pass reported 57014 for backends it had killed. The wait is bounded by
    /// <see cref="ExitWaitPolls"/>, and the client's command timeout still applies.
    /// </summary>
    public const string FreshActivity = "SELECT pg_stat_clear_snapshot(), set_config('statement_timeout', '0', true)";

    public const string Commit = "COMMIT";

    /// <summary>
    /// Kills the selected backends in one statement, each only if at this instant it is still in a
    /// killable state, with the very same application_name, in the same state since the scan
    /// (state_change unchanged: it ran nothing in between), and signalable — so it cannot raise 42501.
    /// Then, in the same statement, waits for the killed backends to exit (<see cref="ExitWaitPolls"/>).
    /// $1 the candidates as a JSON array of {pid, app, since}, $2 the killable states as a JSON array.
    /// </summary>
    /// <remarks>
    /// Why wait: a terminated backend keeps its connection slot until its process has exited, so the
    /// clients refused with 53300 that a pass wakes (<see cref="StormSignal"/>) would be refused again.
    /// Not <c>pg_terminate_backend(pid, timeout)</c> (PostgreSQL 14+): it waits pid by pid, at least one
    /// 10 ms poll each before signalling the next (half a second for 50), and calling it again on a pid
    /// already signalled could hit a new backend that reused the pid. Here every kill is sent first (the
    /// aggregate <c>k</c> reads all of <c>t</c>), then pg_stat_activity is read afresh every 10 ms until
    /// at most a tenth of them (rounded down: all of 9 or fewer) is left; the final column reads that last
    /// snapshot, so <see cref="ReapResult.ExitedPids"/> counts only the slots really free. Why not wait for
    /// the last one: in the storm bench 45 of 50 killed backends had exited 190 ms into the wait and the
    /// 50th at 400 ms; the clients the pass wakes spend longer than that on their own connects, so the
    /// stragglers' slots are free before they are needed, and the whole crowd no longer waits for the slowest. Plain SQL, any server version;
    /// still one round trip. A pid that left pg_stat_activity has released its slot (its status entry
    /// is cleared in the same exit sequence that returns its PGPROC).
    /// Why JSON in two text parameters rather than typed arrays: the kill is the first statement a process
    /// sends with int[], text[] and timestamptz[] parameters, and Npgsql's first use of those converters
    /// compiled ~550 methods on the pass's critical path (measured in the storm bench, up to ~0.8 s on a
    /// loaded 2-core box); text parameters take the path the scan already warmed.
    /// </remarks>
    public const string Kill = $"""
        WITH t AS (
            SELECT t.pid,
                   a.pid IS NOT NULL AS present,
                   a.application_name IS NOT DISTINCT FROM t.app AS same_app,
                   coalesce(a.state IN (SELECT json_array_elements_text($2::json)), false) AS killable_state,
                   a.state_change IS NOT DISTINCT FROM t.since AS same_since,
                   coalesce({CanSignal}, false) AS can_signal,
                   CASE WHEN a.application_name = t.app
                             AND a.state IN (SELECT json_array_elements_text($2::json))
                             AND a.state_change = t.since
                             AND {CanSignal}
                        THEN pg_terminate_backend(t.pid) END AS terminated
            FROM json_to_recordset($1::json) AS t(pid int, app text, since timestamptz)
            LEFT JOIN pg_stat_activity a ON a.pid = t.pid AND a.datname = current_database()
            LEFT JOIN pg_roles r ON r.oid = a.usesysid
            CROSS JOIN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) me
        ),
        k AS (SELECT array_agg(pid) FILTER (WHERE terminated) AS pids FROM t),
        w AS (
            SELECT (SELECT g FROM generate_series(0, {ExitWaitPollsText}) AS g
                    WHERE CASE WHEN g > 0 AND pg_sleep(0.01)::text IS NULL THEN false
                               WHEN pg_stat_clear_snapshot()::text IS NULL THEN false
                               ELSE (SELECT count(*) FROM k, unnest(k.pids) AS x(pid), pg_stat_get_activity(x.pid) s WHERE g >= 0)
                                    <= (SELECT coalesce(cardinality(k.pids), 0) / {StragglerShareText} FROM k)
                          END
                    LIMIT 1) AS polls
        )
        SELECT t.pid, t.present, t.same_app, t.killable_state, t.same_since, t.can_signal, t.terminated,
               CASE WHEN t.terminated THEN NOT EXISTS (SELECT 1 FROM pg_stat_get_activity(t.pid)) END AS exited
        FROM t CROSS JOIN w
        ORDER BY t.pid
        """;

    /// <summary>
    /// How long the kill waits for the killed backends to exit: polls 10 ms apart. 50 idle backends
    /// exit within ~30 ms on a quiet 2-core box and ~200 ms on a loaded one; past this the pass
    /// returns and reports them not yet exited.
    /// </summary>
    public const int ExitWaitPolls = 100; // ExitWaitPollsText in the SQL

    private const string LockClassIdText = "1346847057";

    private const string ExitWaitPollsText = "100";

    private const string StragglerShareText = "10";
}
