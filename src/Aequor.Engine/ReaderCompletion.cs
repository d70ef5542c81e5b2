namespace Aequor.Engine;

/// <summary>
/// Ties a handed-out <see cref="AequorReader"/> back to the client call that made it: failures are translated
/// under the streaming rule, and disposal finishes the call (bookkeeping, OnQueryEnd, the client's gate).
/// </summary>
internal sealed class ReaderCompletion
{
    private readonly Func<Exception, long, Exception> _translate;
    private readonly Func<Exception?, long, int, ValueTask> _complete;
    private readonly Action _typesUnknown;
    private int _completed;

    public ReaderCompletion(Func<Exception, long, Exception> translate, Func<Exception?, long, int, ValueTask> complete, Action typesUnknown)
    {
        _translate = translate;
        _complete = complete;
        _typesUnknown = typesUnknown;
    }

    /// <summary>A column's type was not in the connection's catalogue (<see cref="UnknownTypes"/>).</summary>
    public void TypesUnknown() => _typesUnknown();

    /// <summary>The text the reader's statements came from: a server error is located in it.</summary>
    public string? CommandText { get; init; }

    public Exception Translate(Exception failure, long rowsRead) => _translate(failure, rowsRead);

    public ValueTask CompleteAsync(Exception? failure, long rowsRead, int recordsAffected) =>
        Interlocked.Exchange(ref _completed, 1) == 0 ? _complete(failure, rowsRead, recordsAffected) : ValueTask.CompletedTask;
}
