using System.Management.Automation;
using System.Net;
using System.Security;
using Aequor.Engine;

namespace Aequor.PowerShell;

/// <summary>Reads leases: offline from application_name strings, with no database.</summary>
[Cmdlet(VerbsCommon.Get, "AequorLease", DefaultParameterSetName = OfflineSet)]
[OutputType(typeof(AequorLease))]
public sealed class GetAequorLeaseCommand : PSCmdlet
{
    public const string OfflineSet = "Offline";
    public const string SecretVariable = "AEQUOR_COORDINATION_SECRET";

    private LeaseSigner? _signer;

    [Parameter(Mandatory = true, ParameterSetName = OfflineSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, Position = 0)]
    [Alias("application_name")]
    [AllowEmptyString]
    public string[] ApplicationName { get; set; } = [];

    [Parameter(ParameterSetName = OfflineSet)]
    public SecureString? CoordinationSecret { get; set; }

    protected override void BeginProcessing()
    {
        var secret = CoordinationSecret is null
            ? Environment.GetEnvironmentVariable(SecretVariable)
            : new NetworkCredential(string.Empty, CoordinationSecret).Password;
        if (string.IsNullOrEmpty(secret))
        {
            return; // Without a secret, leases are read but never shown as valid.
        }

        try
        {
            _signer = new LeaseSigner(secret);
        }
        catch (AequorConfigurationException ex)
        {
            ThrowTerminatingError(new ErrorRecord(ex, "AequorSecretTooShort", ErrorCategory.InvalidArgument, null));
        }
    }

    protected override void ProcessRecord()
    {
        foreach (var text in ApplicationName)
        {
            WriteObject(ToLease(text));
        }
    }

    private AequorLease ToLease(string text)
    {
        if (!Lease.TryParse(text, out var lease))
        {
            return new AequorLease { ApplicationName = text, IsSignatureValid = false };
        }

        return new AequorLease
        {
            ApplicationName = text,
            ServiceName = lease.ServiceName,
            InstanceId = lease.InstanceId,
            ExpiresAt = lease.ExpiresAt,
            IsExpired = lease.IsExpiredAt(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()),
            IsSignatureValid = _signer?.IsSignatureValid(lease) ?? false,
        };
    }
}
