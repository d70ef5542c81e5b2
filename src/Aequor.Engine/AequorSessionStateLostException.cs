namespace Aequor.Engine;

/// <summary>
/// The connection was replaced (its backend ended between statements: an idle timeout, a reaper, an administrator, a
/// restart) while the session may have held a session-level advisory lock or a role taken with SET ROLE / SET SESSION
/// AUTHORIZATION, which ended with it. The statement was not sent: it would have run without the lock it may rely on, or
/// as the login role. The session itself works: the next statement runs.
/// </summary>
public sealed class AequorSessionStateLostException : AequorClientException
{
    public AequorSessionStateLostException()
    {
    }

    public AequorSessionStateLostException(string message) : base(message)
    {
    }

    public AequorSessionStateLostException(string message, Exception? innerException) : base(message, innerException)
    {
    }

    /// <summary>What the old backend held that the new one does not (always including <see cref="SessionStateKinds.AdvisoryLock"/> or <see cref="SessionStateKinds.Role"/>).</summary>
    public SessionStateKinds Lost { get; init; }
}
