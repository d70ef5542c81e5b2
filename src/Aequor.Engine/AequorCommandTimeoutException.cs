namespace Aequor.Engine;

/// <summary>
/// The statement ran past its command timeout and the server cancelled it (57014): it did not take effect, and
/// the connection is still open. Inside a transaction the transaction is now aborted and must be rolled back.
/// Not retried: the timeout is the caller's own limit. (When the server does not answer the cancel either, the
/// connection is dropped and the outcome is unknown: <see cref="AequorOutcomeUnknownException"/>.)
/// </summary>
public sealed class AequorCommandTimeoutException : AequorClientException
{
    public AequorCommandTimeoutException()
    {
    }

    public AequorCommandTimeoutException(string message) : base(message)
    {
    }

    public AequorCommandTimeoutException(string message, Exception? innerException) : base(message, innerException)
    {
    }

    /// <summary>The command timeout that ran out, in seconds.</summary>
    public int TimeoutSeconds { get; init; }
}
