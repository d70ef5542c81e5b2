namespace Aequor.Engine;

/// <summary>
/// A load of rows (<see cref="AequorTableWriter"/>) failed and wrote nothing: COPY is one statement, and the server
/// rolls back one that did not finish. (Lost once the end of the COPY was sent, the outcome is unknown instead:
/// <see cref="AequorOutcomeUnknownException"/>.)
/// </summary>
public sealed class AequorCopyFailedException : AequorClientException
{
    public AequorCopyFailedException()
    {
    }

    public AequorCopyFailedException(string message) : base(message)
    {
    }

    public AequorCopyFailedException(string message, Exception? innerException) : base(message, innerException)
    {
    }

    /// <summary>The 1-based input row the server's error names, when it names one.</summary>
    public long? Row { get; init; }
}
