using System.Globalization;

namespace Aequor.Engine.Reaper;

/// <summary>
/// One row of <see cref="ReaperSql.Kill"/>'s result. The automatic pass and the manual one both read
/// it here, so a backend left alive gets the same reason from either.
/// </summary>
/// <param name="Reason">Null when it was terminated; else why not (a <see cref="ReapReasons"/> kill-time reason).</param>
/// <param name="Exited">Terminated and gone from pg_stat_activity when the statement ended: its slot is free.</param>
internal readonly record struct KillRow(int Pid, string? Reason, bool Exited)
{
    /// <param name="column">The row's value at an ordinal; SQL NULL as null or DBNull (either reader's GetValue).</param>
    public static KillRow Read(Func<int, object?> column)
    {
        ArgumentNullException.ThrowIfNull(column);
        var pid = Convert.ToInt32(column(0), CultureInfo.InvariantCulture);
        if (column(6) is true)
        {
            return new KillRow(pid, Reason: null, Exited: column(7) is true);
        }

        // The first re-check that failed, in the statement's order: present, same_app, killable_state and same_since, can_signal.
        var reason =
            column(1) is not true ? ReapReasons.Gone
            : column(2) is not true ? ReapReasons.Renewed
            : column(3) is not true || column(4) is not true ? ReapReasons.WokeUp
            : column(5) is not true ? ReapReasons.NotPermitted
            : ReapReasons.TerminateFailed;
        return new KillRow(pid, reason, Exited: false);
    }
}
