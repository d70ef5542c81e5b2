namespace Aequor.Engine;

/// <summary>A lease renewal failed and <see cref="HeartbeatErrorMode.Throw"/> was chosen; the statement was not sent.</summary>
public sealed class AequorHeartbeatException : AequorClientException
{
    public AequorHeartbeatException()
    {
    }

    public AequorHeartbeatException(string message) : base(message)
    {
    }

    public AequorHeartbeatException(string message, Exception? innerException) : base(message, innerException)
    {
    }
}
