using System.Text;

namespace Aequor.Soak;

/// <summary>What a soak saw; <see cref="Problems"/> is empty when every promise held.</summary>
public sealed class SoakReport
{
    public int WorkersStarted { get; set; }

    public int SigKills { get; set; }

    public int SigStops { get; set; }

    public int AckedInserts { get; set; }

    public int UnknownOutcomes { get; set; }

    public int RowsWritten { get; set; }

    public int DuplicateKeys { get; set; }

    public int AckedMissing { get; set; }

    public int ReaperKills { get; set; }

    public int KilledWhileLive { get; set; }

    /// <summary>Statements begun with a valid lease (or none yet) whose worker the harness froze meanwhile, then cut off.</summary>
    public int KilledWhileFrozen { get; set; }

    public int NeighbourTerminations { get; set; }

    public int NeighbourErrors { get; set; }

    public int UnhandledInWorkers { get; set; }

    public int WorkersExitedBadly { get; set; }

    public int LeftoverBackends { get; set; }

    public Dictionary<string, int> ErrorsByKind { get; } = new();

    public List<string> Problems { get; } = new();

    public List<string> ErrorSamples { get; } = new();

    /// <summary>
    /// For each statement of a worker cut off by 57P01 (live, or frozen meanwhile): its backend pids, its time line and
    /// the reaper decisions that killed them, so the next such run says what happened.
    /// </summary>
    public List<string> CutOffs { get; } = new();

    public TimeSpan Elapsed { get; set; }

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"soak: {Elapsed.TotalSeconds:0} s, workers started {WorkersStarted}, SIGKILL {SigKills}, SIGSTOP {SigStops}");
        sb.AppendLine($"  inserts acknowledged {AckedInserts}, outcome unknown {UnknownOutcomes}, rows {RowsWritten}, duplicate keys {DuplicateKeys}, acknowledged but missing {AckedMissing}");
        sb.AppendLine($"  reaper kills {ReaperKills}, live workers cut off {KilledWhileLive} (frozen meanwhile {KilledWhileFrozen}), neighbour/plain terminations {NeighbourTerminations}, neighbour errors {NeighbourErrors}");
        sb.AppendLine($"  unhandled exceptions in workers {UnhandledInWorkers}, workers exiting badly {WorkersExitedBadly}, leftover backends {LeftoverBackends}");
        sb.AppendLine($"  worker errors by kind: {(ErrorsByKind.Count == 0 ? "none" : string.Join(", ", ErrorsByKind.Select(kv => $"{kv.Key} {kv.Value}")))}");
        foreach (var e in ErrorSamples)
        {
            sb.AppendLine("    " + e);
        }

        foreach (var c in CutOffs)
        {
            sb.AppendLine("  cut off: " + c);
        }

        sb.Append(Problems.Count == 0 ? "  every promise held" : "  PROBLEMS: " + string.Join("; ", Problems));
        return sb.ToString();
    }
}
