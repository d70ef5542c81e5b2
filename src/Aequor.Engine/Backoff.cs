namespace Aequor.Engine;

/// <summary>
/// Decorrelated jitter, as pg-aequor computes it: delay = min(max, random integer in [min, previous × 3]),
/// previous starting at min. Each client draws from its own random source, so a crowd of workers that failed
/// together does not come back together.
/// </summary>
internal sealed class Backoff
{
    private readonly long _minMs;
    private readonly long _maxMs;
    private readonly Random _random;
    private long _previousMs;

    public Backoff(int minMs, int maxMs, Random random)
    {
        // From 0 the delays would stay 0 (0 × 3); the options refuse it (AequorClientOptions.Validate).
        ArgumentOutOfRangeException.ThrowIfLessThan(minMs, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxMs, minMs);
        ArgumentNullException.ThrowIfNull(random);
        _minMs = minMs;
        _maxMs = maxMs;
        _random = random;
        _previousMs = minMs;
    }

    public TimeSpan Next()
    {
        var upper = Math.Max(_minMs, _previousMs * 3);
        var drawn = _random.NextInt64(_minMs, upper + 1);
        _previousMs = Math.Min(_maxMs, drawn);
        return TimeSpan.FromMilliseconds(_previousMs);
    }
}
