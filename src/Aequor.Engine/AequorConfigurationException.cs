namespace Aequor.Engine;

/// <summary>Options that cannot work (a short secret, a name that cannot fit): fixed by the caller, never retried.</summary>
public sealed class AequorConfigurationException : Exception
{
    public AequorConfigurationException(string message) : base(message)
    {
    }

    public AequorConfigurationException(string message, Exception innerException) : base(message, innerException)
    {
    }

    public AequorConfigurationException()
    {
    }
}
