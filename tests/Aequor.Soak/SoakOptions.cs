namespace Aequor.Soak;

/// <summary>How long and how hard a soak runs; every number is bounded so the run stops by itself.</summary>
public sealed record SoakOptions
{
    public required string AdminConnectionString { get; init; }

    public required string AppConnectionString { get; init; }

    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(150);

    public int Workers { get; init; } = 6;

    public int Seed { get; init; } = Environment.TickCount;

    public string Service { get; init; } = "soak";

    public string Secret { get; init; } = "soak-coordination-secret-0123456789";

    /// <summary>Same service name, another secret: must never be reaped.</summary>
    public string NeighbourSecret { get; init; } = "neighbour-secret-of-the-same-name-42";

    public int LeaseTtlMs { get; init; } = 3_000;

    public int MinIdleSec { get; init; } = 2;
}
