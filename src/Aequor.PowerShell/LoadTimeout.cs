namespace Aequor.PowerShell;

/// <summary>
/// -CommandTimeout of a load (Write- and Import-AequorTableData): each round trip of the COPY, 1 to
/// <see cref="MaxSeconds"/>. No "0 waits forever", unlike a statement's: Ctrl+C stops a load the server holds up (a
/// lock, a slow trigger), but in a scheduled job nobody is there to press it, and the load would wait for ever.
/// </summary>
internal static class LoadTimeout
{
    /// <summary>Npgsql arms a COPY's timeout in milliseconds, in an int.</summary>
    public const int MaxSeconds = int.MaxValue / 1000;

    /// <param name="nothingDone">What the refusal says was not done: "Nothing was sent.", "Nothing was imported.".</param>
    public static void Check(AequorCmdlet cmdlet, int? seconds, string nothingDone)
    {
        if (seconds is 0)
        {
            cmdlet.ThrowInvalidParameter(
                "-CommandTimeout 0 (no limit) is not offered for a load: a COPY whose server stopped reading the rows (a lock, a slow trigger) " +
                $"would then wait for ever where nobody is there to press Ctrl+C (a scheduled job). Give the seconds each round trip may take, 1 to {MaxSeconds}; " +
                $"without -CommandTimeout the session's command timeout applies. {nothingDone}", seconds);
        }

        if (seconds is > MaxSeconds)
        {
            cmdlet.ThrowInvalidParameter($"-CommandTimeout is {seconds} s; a load's can be at most {MaxSeconds} s (about 24 days). {nothingDone}", seconds);
        }
    }
}
