namespace Aequor.Engine;

/// <summary>
/// An export (<see cref="AequorClient.ExportCsv"/>) stopped before its end: what reached the caller's writer is a
/// part of the rows only and must be thrown away. Never resent once begun: the query may call functions that write.
/// </summary>
public sealed class AequorExportFailedException : AequorClientException
{
    public AequorExportFailedException()
    {
    }

    public AequorExportFailedException(string message) : base(message)
    {
    }

    public AequorExportFailedException(string message, Exception? innerException) : base(message, innerException)
    {
    }
}
