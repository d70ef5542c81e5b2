namespace Aequor.Engine;

/// <summary>
/// A begin while a transaction is open, or a commit or rollback with none, found once the call held the client: another
/// caller sharing it (another runspace) began or ended one between the caller's own look at
/// <see cref="AequorClient.InTransaction"/> and its turn. Nothing was sent. <see cref="TransactionOpen"/> is the state found.
/// </summary>
public sealed class AequorTransactionStateException : AequorClientException
{
    public AequorTransactionStateException()
    {
    }

    public AequorTransactionStateException(string message) : base(message)
    {
    }

    public AequorTransactionStateException(string message, Exception? innerException) : base(message, innerException)
    {
    }

    private AequorTransactionStateException(bool transactionOpen, string message) : base(message) => TransactionOpen = transactionOpen;

    /// <summary>True: the begin found one open; false: the commit or rollback found none.</summary>
    public bool TransactionOpen { get; }

    internal static AequorTransactionStateException AlreadyOpen() =>
        new(true, "A transaction is already open on this session; complete or undo it first.");

    internal static AequorTransactionStateException NoneOpen() =>
        new(false, "No transaction is open on this session.");
}
