namespace Aequor.Bench;

/// <summary>The statistics the benches report: medians, which one slow round on a shared machine cannot move.</summary>
internal static class BenchMath
{
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
