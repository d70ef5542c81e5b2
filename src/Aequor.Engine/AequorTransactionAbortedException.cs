namespace Aequor.Engine;

/// <summary>
/// A commit of a transaction that an earlier statement's error had aborted: PostgreSQL answers such a COMMIT
/// with a rollback and no error, so without this the caller would believe its writes committed. The
/// transaction is rolled back and ended; <see cref="Exception.InnerException"/> is the first error that aborted it.
/// </summary>
public sealed class AequorTransactionAbortedException : AequorClientException
{
    public AequorTransactionAbortedException()
    {
    }

    public AequorTransactionAbortedException(string message) : base(message)
    {
    }

    public AequorTransactionAbortedException(string message, Exception? innerException) : base(message, innerException)
    {
    }
}
