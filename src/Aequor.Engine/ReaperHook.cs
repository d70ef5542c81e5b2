using Npgsql;

namespace Aequor.Engine;

/// <summary>Why the client asks for a reaper pass.</summary>
internal enum ReapTrigger
{
    /// <summary>A connect succeeded: a pass may run if the schedule (probability, cooldown) allows.</summary>
    AfterConnect,

    /// <summary>A connect succeeded after this call saw 53300 (every slot taken): the schedule's storm rule applies.</summary>
    AfterTooManyConnections,
}

/// <summary>What a pass did. <see cref="Ran"/> false: the schedule skipped it (no event, no count).</summary>
internal sealed record ReapReport(bool Ran, bool Locked, int Killed, TimeSpan Duration, Exception? Error = null)
{
    public static readonly ReapReport Skipped = new(false, false, 0, TimeSpan.Zero);
}

/// <summary>
/// The seam where the reaper plugs into the client (<see cref="AequorClient.Reaper"/>). The client calls it
/// on its freshly opened connection, right after a successful connect and before the caller's statement, never
/// inside a transaction, only for a leased client with <c>Reaper</c> on. The hook owns the schedule
/// (probability, cooldown, storm) and the pass; the client owns containment (ReaperErrorMode), the OnReap
/// event and the counters. By default it is the client's <see cref="Reaper.ClientReaper"/>; tests put their own.
/// </summary>
internal delegate Task<ReapReport> ReaperHook(NpgsqlConnection connection, ReapTrigger trigger, CancellationToken cancellationToken);
