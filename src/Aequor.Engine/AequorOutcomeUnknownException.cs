namespace Aequor.Engine;

/// <summary>
/// The connection was lost after the statement was sent: it may or may not have run (or committed). It was
/// not sent again, because it was not marked idempotent. Check the data before repeating it.
/// </summary>
public sealed class AequorOutcomeUnknownException : AequorClientException
{
    public AequorOutcomeUnknownException()
    {
    }

    public AequorOutcomeUnknownException(string message) : base(message)
    {
    }

    public AequorOutcomeUnknownException(string message, Exception? innerException) : base(message, innerException)
    {
    }
}
