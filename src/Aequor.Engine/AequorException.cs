namespace Aequor.Engine;

/// <summary>The base of the client's own failures, so a caller can tell them from Npgsql's and .NET's.</summary>
public abstract class AequorException : Exception
{
    protected AequorException()
    {
    }

    protected AequorException(string message) : base(message)
    {
    }

    protected AequorException(string message, Exception? innerException) : base(message, innerException)
    {
    }

    /// <summary>The SQLSTATE behind the failure, when the server gave one.</summary>
    public string? SqlState => RetryClassifier.SqlStateOf(InnerException);
}
