namespace Aequor.Engine.Reaper;

/// <summary>How a lease's signature checked out against the secrets we hold.</summary>
public enum LeaseVerification
{
    Invalid = 0,
    Current = 1,
    Previous = 2,
}

/// <summary>
/// Verifies leases with the current coordination secret and, during a rotation, the previous one:
/// workers still holding the old secret keep being recognised (and reaped) until they are gone.
/// </summary>
public sealed class LeaseVerifier
{
    private readonly LeaseSigner _current;
    private readonly LeaseSigner? _previous;

    public LeaseVerifier(string coordinationSecret, string? previousCoordinationSecret = null)
    {
        _current = new LeaseSigner(coordinationSecret);
        _previous = string.IsNullOrEmpty(previousCoordinationSecret) ? null : new LeaseSigner(previousCoordinationSecret);
    }

    /// <summary>Never throws.</summary>
    public LeaseVerification Verify(Lease lease)
    {
        ArgumentNullException.ThrowIfNull(lease);
        if (_current.IsSignatureValid(lease))
        {
            return LeaseVerification.Current;
        }

        return _previous is not null && _previous.IsSignatureValid(lease) ? LeaseVerification.Previous : LeaseVerification.Invalid;
    }

    public override string ToString() => "LeaseVerifier(secrets: ***)";
}
