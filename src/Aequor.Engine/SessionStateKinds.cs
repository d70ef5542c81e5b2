namespace Aequor.Engine;

/// <summary>
/// What a statement can leave in the PostgreSQL session (the backend) that a replacement connection does not have:
/// the kinds the client remembers, so that a transparent reconnect that loses them is not silent.
/// </summary>
[Flags]
public enum SessionStateKinds
{
    None = 0,

    /// <summary>A session-level advisory lock (pg_advisory_lock, pg_try_advisory_lock; not the _xact_ ones).</summary>
    AdvisoryLock = 1,

    /// <summary>Temporary tables, views or sequences (CREATE TEMP …, SELECT … INTO TEMP).</summary>
    TemporaryObjects = 2,

    /// <summary>Prepared statements (PREPARE).</summary>
    PreparedStatements = 4,

    /// <summary>LISTEN channels.</summary>
    ListenChannels = 8,

    /// <summary>Session settings: SET (not SET LOCAL), set_config(…).</summary>
    Settings = 16,

    /// <summary>Cursors declared WITH HOLD.</summary>
    HoldCursors = 32,

    /// <summary>
    /// A role taken for the session: SET ROLE, SET SESSION AUTHORIZATION. Lost, the next statements would run as the
    /// login role, usually with other (often more) privileges than the script chose: refused like a lost lock.
    /// </summary>
    Role = 64,

    All = AdvisoryLock | TemporaryObjects | PreparedStatements | ListenChannels | Settings | HoldCursors | Role,
}
