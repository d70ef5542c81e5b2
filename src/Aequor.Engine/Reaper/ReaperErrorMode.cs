namespace Aequor.Engine.Reaper;

/// <summary>What a failed pass does: report the error in its result (default), or throw it too.</summary>
public enum ReaperErrorMode
{
    /// <summary>The error goes into <see cref="ReapResult.Error"/>; nothing is thrown. A pass never fails a connect.</summary>
    Swallow = 0,

    /// <summary>The error is thrown after the lock was released (for diagnostics and tests).</summary>
    Throw = 1,
}
