namespace Aequor.Engine;

/// <summary>
/// The connection was lost inside a transaction: the server has rolled it back, nothing was retried, and
/// every statement fails with this until the caller ends the transaction (a rollback then succeeds).
/// </summary>
public sealed class AequorTransactionLostException : AequorClientException
{
    public AequorTransactionLostException()
    {
    }

    public AequorTransactionLostException(string message) : base(message)
    {
    }

    public AequorTransactionLostException(string message, Exception? innerException) : base(message, innerException)
    {
    }
}
