using System.Globalization;

namespace Aequor.Bench;

/// <summary>
/// The one machine-readable line every bench prints, collected by <c>build.ps1 Bench</c>:
/// <c>BENCH|name|value|unit|baseline|ratio|target|met</c>. <c>ratio</c> is value / baseline (both measured in
/// the same run); <c>target</c> says what is compared (<c>ratio&lt;=1.02</c>, <c>value&gt;=30</c>); <c>met</c> is
/// yes, no or '-'. A value that does not exist (a baseline that never served everyone) is '-'.
/// Facts about the run (server version, pinning) go in <c>BENCH-INFO|key|value</c>.
/// </summary>
internal static class BenchLine
{
    public static void Write(string name, double? value, string unit, double? baseline, string target, bool? met, double? ratio = null)
    {
        ratio ??= value is { } v && baseline is { } b && b != 0 ? v / b : null;
        Console.WriteLine(string.Join('|',
            "BENCH", name, Format(value), unit, Format(baseline), Format(ratio), target,
            met is null ? "-" : met.Value ? "yes" : "no"));
    }

    public static void Info(string key, string value) =>
        Console.WriteLine($"BENCH-INFO|{key}|{value.Replace('|', '/')}");

    private static string Format(double? value) =>
        value is not { } v || double.IsNaN(v) || double.IsInfinity(v) ? "-"
        : Math.Abs(v) >= 100 ? v.ToString("0", CultureInfo.InvariantCulture)
        : v.ToString("0.###", CultureInfo.InvariantCulture);
}
