using System.Diagnostics;

namespace Aequor.Engine;

/// <summary>Where in a call a failure happened: each has its own time budget.</summary>
internal enum RetryPhase
{
    Connect,
    Statement,
}

/// <summary>
/// One budget per user call, shared by its connect attempts and its statement attempts: at most
/// <c>Retries</c> retries in all (so at most Retries + 1 connection attempts in a 53300 storm, where
/// pg-aequor nested connect retries inside query retries and made 16), and no retry whose delay would end
/// past <c>MaxConnectRetryTimeMs</c> (connect failures) or <c>MaxQueryRetryTimeMs</c> (statement failures),
/// both counted from the start of the call.
/// </summary>
internal sealed class RetryBudget
{
    private readonly int _retries;
    private readonly long _connectBudgetMs;
    private readonly long _statementBudgetMs;
    private readonly Backoff _backoff;
    private readonly long _startedAt;

    /// <param name="startedAt">When the user call began (a <see cref="Stopwatch"/> timestamp).</param>
    public RetryBudget(AequorClientOptions options, Random random, long startedAt)
    {
        ArgumentNullException.ThrowIfNull(options);
        _startedAt = startedAt;
        _retries = options.Retries;
        _connectBudgetMs = options.MaxConnectRetryTimeMs;
        _statementBudgetMs = options.MaxQueryRetryTimeMs;
        _backoff = new Backoff(options.MinBackoff, options.MaxBackoff, random);
    }

    public int RetriesUsed { get; private set; }

    public TimeSpan Elapsed => Stopwatch.GetElapsedTime(_startedAt);

    /// <summary>What is left of the phase's time budget (zero when spent).</summary>
    public TimeSpan TimeLeft(RetryPhase phase)
    {
        var left = TimeSpan.FromMilliseconds(phase == RetryPhase.Connect ? _connectBudgetMs : _statementBudgetMs) - Elapsed;
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    /// <summary>Takes one retry and its delay, or says the budget is spent.</summary>
    public bool TryTake(RetryPhase phase, out TimeSpan delay)
    {
        delay = TimeSpan.Zero;
        if (RetriesUsed >= _retries)
        {
            return false;
        }

        var candidate = _backoff.Next();
        var limit = phase == RetryPhase.Connect ? _connectBudgetMs : _statementBudgetMs;
        if ((Elapsed + candidate).TotalMilliseconds > limit)
        {
            return false;
        }

        RetriesUsed++;
        delay = candidate;
        return true;
    }
}
