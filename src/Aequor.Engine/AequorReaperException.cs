namespace Aequor.Engine;

/// <summary>A reaper pass failed and <see cref="ReaperErrorMode.Throw"/> was chosen; the connection itself is fine and the statement was not sent.</summary>
public sealed class AequorReaperException : AequorClientException
{
    public AequorReaperException()
    {
    }

    public AequorReaperException(string message) : base(message)
    {
    }

    public AequorReaperException(string message, Exception? innerException) : base(message, innerException)
    {
    }
}
