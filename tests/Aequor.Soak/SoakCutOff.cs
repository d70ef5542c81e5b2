using System.Globalization;
using System.Text.RegularExpressions;
using Aequor.Engine;

namespace Aequor.Soak;

/// <summary>What the soak report says of a worker's statement cut off by 57P01, from the lines the workers printed.</summary>
public static class SoakCutOff
{
    /// <summary>
    /// One cut-off statement, told from every side: the worker's time line (its client's clock, relative to the call's
    /// start), the pids its client connected, the harness's SIGSTOPs of it, and each reaper kill of one of those pids —
    /// or, for a kill during a connect the client never finished (its pid unknown to it), every kill in the call's
    /// window — with the lease the pass read, its expiry and the backend's state and state_change against the pass's
    /// database clock.
    /// </summary>
    public static string Describe(string[] error, string[]? timeline, IReadOnlyList<string[]> kills, Func<DateTime, DateTime, Func<long, string>, string>? frozen)
    {
        var sb = new System.Text.StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"worker {error[1]} statement {error[2]} ({error[5]}, {error[3]} {error[4]} after {error[6]})");
        if (timeline is null || timeline.Length == 0)
        {
            return sb.Append(": no time line printed").ToString();
        }

        var entries = timeline.Select(e => e.Split(':', 2)).Where(e => e.Length == 2 && long.TryParse(e[0], CultureInfo.InvariantCulture, out _))
            .Select(e => (At: long.Parse(e[0], CultureInfo.InvariantCulture), What: e[1])).ToList();
        if (entries.Count == 0)
        {
            return sb.Append(": time line unreadable").ToString();
        }

        var start = entries[0].At;
        var end = entries[^1].At;
        string Rel(long ms) => (ms - start).ToString("+0;-0", CultureInfo.InvariantCulture) + " ms";
        var pids = entries.SelectMany(e => Regex.Matches(e.What, @"pid=(\d+)").Select(m => m.Groups[1].Value)).ToHashSet();
        var instance = Regex.Match(entries[0].What, "instance=([^,)]+)").Groups[1].Value;
        sb.Append(CultureInfo.InvariantCulture, $"; backend pids [{string.Join(", ", pids)}]; time line: {string.Join(", ", entries.Select(e => $"{Rel(e.At)} {e.What}"))}");
        if (frozen is not null)
        {
            sb.Append("; SIGSTOPs of the worker: ").Append(frozen(DateTimeOffset.FromUnixTimeMilliseconds(start - 2_000).UtcDateTime, DateTimeOffset.FromUnixTimeMilliseconds(end + 2_000).UtcDateTime, Rel));
        }

        string Field(string[] k, string name) => k.FirstOrDefault(x => x.StartsWith(name + "=", StringComparison.Ordinal))?[(name.Length + 1)..] ?? "?";
        long FieldMs(string[] k, string name) => long.TryParse(Field(k, name), CultureInfo.InvariantCulture, out var v) ? v : 0;
        var matched = kills.Where(k => pids.Contains(k[1])).ToList();
        var how = "its pid";
        if (matched.Count == 0)
        {
            matched = kills.Where(k => FieldMs(k, "passNowMs") >= start - 1_000 && FieldMs(k, "passNowMs") <= end + 1_000).ToList();
            how = "no kill of its pids; kills in the call's window";
        }

        sb.Append(CultureInfo.InvariantCulture, $"; reaper decisions ({how}): ");
        sb.Append(matched.Count == 0 ? "none printed (the reaping worker may have died before its pass ended)" : string.Join(" | ", matched.Select(k =>
        {
            var lease = Lease.TryParse(k[2], out var l) ? l : null;
            var whose = lease is null ? "unreadable lease" : lease.InstanceId == instance ? "this client's own lease" : "another instance's lease (a data source's startup lease, or another client's)";
            return $"pid {k[1]} killed by worker {Field(k, "by")}'s pass at {Rel(FieldMs(k, "passNowMs"))}: {whose} {k[2]}, expiring at {Rel(FieldMs(k, "expiresAtMs"))} ({Field(k, "expiredMsAgo")} ms before the pass's database clock), state {Field(k, "state")} since {Rel(FieldMs(k, "stateChangeMs"))} (idle {Field(k, "idle")} s)";
        })));
        return sb.ToString();
    }
}
