namespace Aequor.Engine;

/// <summary>
/// A load of rows (<see cref="AequorTableWriter"/>) stopped by its cancellation token: nothing was written. The message
/// says how it ended (the server stopped it, or the connection was closed when the server did not) and what became of
/// a transaction it ran in. An <see cref="OperationCanceledException"/>, so that whoever stops on one stops on it.
/// </summary>
public sealed class AequorCopyCancelledException : OperationCanceledException
{
    public AequorCopyCancelledException()
    {
    }

    public AequorCopyCancelledException(string message) : base(message)
    {
    }

    public AequorCopyCancelledException(string message, Exception? innerException) : base(message, innerException)
    {
    }

    public AequorCopyCancelledException(string message, Exception? innerException, CancellationToken token) : base(message, innerException, token)
    {
    }
}
