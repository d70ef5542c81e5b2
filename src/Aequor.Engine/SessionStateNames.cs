namespace Aequor.Engine;

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

        if (kinds.HasFlag(SessionStateKinds.Role))
        {
            parts.Add("the role taken with SET ROLE or SET SESSION AUTHORIZATION");
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
