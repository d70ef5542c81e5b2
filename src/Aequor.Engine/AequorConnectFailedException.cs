namespace Aequor.Engine;

/// <summary>No connection could be made: a permanent error (bad password, no such database), or transient ones until the connect budget was spent.</summary>
public sealed class AequorConnectFailedException : AequorClientException
{
    public AequorConnectFailedException()
    {
    }

    public AequorConnectFailedException(string message) : base(message)
    {
    }

    public AequorConnectFailedException(string message, Exception? innerException) : base(message, innerException)
    {
    }

    public AequorConnectFailedException(string message, Exception? innerException, int attempts, TimeSpan elapsed) : base(message, innerException)
    {
        Attempts = attempts;
        Elapsed = elapsed;
    }

    /// <summary>Connection attempts made in the call.</summary>
    public int Attempts { get; }

    public TimeSpan Elapsed { get; }
}
