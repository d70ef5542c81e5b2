namespace Aequor.PowerShell;

/// <summary>
/// A value that cannot be sent as a parameter. -Parameters makes it a terminating AequorInvalidParameter; a row piped
/// in makes it that row's error only, so the rows after it still run.
/// </summary>
#pragma warning disable CA1032 // Raised only by QueryParameters, always with a message.
internal sealed class ParameterValueException(string message, Exception? innerException = null) : Exception(message, innerException);
#pragma warning restore CA1032
