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

    /// <summary>Session settings: SET (not SET LOCAL), set_config(…), SET ROLE, SET SESSION AUTHORIZATION.</summary>
    Settings = 16,

    /// <summary>Cursors declared WITH HOLD.</summary>
    HoldCursors = 32,

    All = AdvisoryLock | TemporaryObjects | PreparedStatements | ListenChannels | Settings | HoldCursors,
}

/// <summary>The words a user reads in a warning or an error about lost session state.</summary>
public static class SessionStateNames
{
    /// <summary>"temporary tables and LISTEN channels": each kind in <paramref name="kinds"/>, in a fixed order.</summary>
    public static string Describe(SessionStateKinds kinds)
    {
        var parts = new List<string>();
        if (kinds.HasFlag(SessionStateKinds.AdvisoryLock))
        {
            parts.Add("session advisory locks (pg_advisory_lock)");
        }

        if (kinds.HasFlag(SessionStateKinds.TemporaryObjects))
        {
            parts.Add("temporary tables");
        }

        if (kinds.HasFlag(SessionStateKinds.PreparedStatements))
        {
            parts.Add("prepared statements (PREPARE)");
        }

        if (kinds.HasFlag(SessionStateKinds.ListenChannels))
        {
            parts.Add("LISTEN channels");
        }

        if (kinds.HasFlag(SessionStateKinds.Settings))
        {
            parts.Add("session settings (SET, set_config)");
        }

        if (kinds.HasFlag(SessionStateKinds.HoldCursors))
        {
            parts.Add("cursors WITH HOLD");
        }

        return parts.Count switch
        {
            0 => "nothing",
            1 => parts[0],
            _ => string.Join(", ", parts.Take(parts.Count - 1)) + " and " + parts[^1],
        };
    }
}
