namespace Aequor.Engine;

/// <summary>The base of the client's own failures (outcome unknown, transaction lost, connect failed, heartbeat, reaper), so a caller can tell them from Npgsql's and .NET's. (Aequor.PowerShell.AequorException is the module's user-facing error.)</summary>
public abstract class AequorClientException : Exception
{
    protected AequorClientException()
    {
    }

    protected AequorClientException(string message) : base(message)
    {
    }

    protected AequorClientException(string message, Exception? innerException) : base(message, innerException)
    {
    }

    /// <summary>The SQLSTATE behind the failure, when the server gave one.</summary>
    public string? SqlState => RetryClassifier.SqlStateOf(InnerException);
}
