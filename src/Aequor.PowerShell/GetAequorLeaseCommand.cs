using System.Management.Automation;
using System.Security;
using Aequor.Engine;

namespace Aequor.PowerShell;

/// <summary>
/// Reads leases: live from pg_stat_activity through a session (judged on the database's clock,
/// with the reaper's verdict), or offline from application_name strings with no database.
/// </summary>
[Cmdlet(VerbsCommon.Get, "AequorLease", DefaultParameterSetName = SessionSet)]
[OutputType(typeof(AequorLease))]
public sealed class GetAequorLeaseCommand : AequorCmdlet
{
    public const string SessionSet = "Session";
    public const string OfflineSet = "Offline";
    public const string SecretVariable = ConnectAequorCommand.SecretVariable;

    private LeaseSigner? _signer;
    private LeaseSigner? _previousSigner;
    private bool _signersRead;

    /// <summary>
    /// A session or its name, bound by name only: strings in the pipeline are application_names, and a name
    /// transformation on a pipeline parameter runs before the binder tries -ApplicationName, so it would
    /// claim them (and a string that happens to be a session's name would start a live scan).
    /// </summary>
    [Parameter(ParameterSetName = SessionSet)]
    [SessionTransformation]
    [ArgumentCompleter(typeof(SessionNameCompleter))]
    public AequorSession? Session { get; set; }

    /// <summary>
    /// A session from the pipeline. In the default set, so that the binder offers a piped $null here first:
    /// a mandatory parameter refusing it stops the binding with an error instead of trying the next one.
    /// ProcessRecord reads that $null as an empty application_name, not as "no session, take the default".
    /// </summary>
    [Parameter(ParameterSetName = SessionSet, ValueFromPipeline = true)]
    public AequorSession? InputObject { get; set; }

    /// <summary>Every lease of the database, any service (default: the session's service only).</summary>
    [Parameter(ParameterSetName = SessionSet)]
    public SwitchParameter All { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = OfflineSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, Position = 0)]
    [Alias("application_name")]
    [AllowEmptyString]
    [AllowNull]
    public string?[]? ApplicationName { get; set; } = [];

    [Parameter(ParameterSetName = OfflineSet)]
    public SecureString? CoordinationSecret { get; set; }

    [Parameter(ParameterSetName = OfflineSet)]
    public SecureString? PreviousCoordinationSecret { get; set; }

    // Not in BeginProcessing: with pipeline input the parameter set is chosen per record, after it.
    private void ReadSigners()
    {
        if (_signersRead)
        {
            return;
        }

        _signersRead = true;
        var secret = CoordinationSecret is null
            ? Environment.GetEnvironmentVariable(SecretVariable)
            : SecureStrings.Reveal(CoordinationSecret);
        var previous = PreviousCoordinationSecret is null
            ? Environment.GetEnvironmentVariable(ConnectAequorCommand.PreviousSecretVariable)
            : SecureStrings.Reveal(PreviousCoordinationSecret);
        // Without a secret, leases are read but never shown as valid.
        _signer = NewSigner(secret);
        _previousSigner = NewSigner(previous);
    }

    private LeaseSigner? NewSigner(string? secret)
    {
        if (string.IsNullOrEmpty(secret))
        {
            return null;
        }

        try
        {
            return new LeaseSigner(secret);
        }
        catch (AequorConfigurationException ex)
        {
            // LeaseSigner's message gives the length, never the secret.
            ThrowTerminatingError(new ErrorRecord(new AequorException(ex.Message), ErrorIds.SecretTooShort, ErrorCategory.InvalidArgument, null));
            return null;
        }
    }

    protected override void ProcessRecord()
    {
        if (ParameterSetName == OfflineSet)
        {
            // A piped $null arrives as a null array, an element of -ApplicationName @('x', $null) as a null string.
            WriteOffline(ApplicationName ?? [null]);
            return;
        }

        if (InputObject is null && MyInvocation.BoundParameters.ContainsKey(nameof(InputObject)))
        {
            WriteOffline([null]);
            return;
        }

        if (InputObject is not null && Session is not null)
        {
            ThrowInvalidParameter("Give the session either with -Session or through the pipeline, not both.", InputObject);
        }

        if (ResolveInputSession(InputObject ?? Session) is not { } session)
        {
            return;
        }

        if (!session.IsLeased)
        {
            // Listing anyway would say nothing of this session (it has no lease row) and judge every other lease with no
            // secret: all 'bad_signature', none reapable, which reads as a verdict. This input's error, as for Invoke-AequorReap.
            WriteError(Errors.Create(ErrorIds.NotLeased, ErrorCategory.InvalidOperation,
                $"Session '{session.Name}' has no lease (it was connected without a coordination secret), and without a secret it can verify none: connect with -CoordinationSecret to list leases through it, or pipe application_name values to Get-AequorLease -CoordinationSecret.", session));
            return;
        }

        LeaseScan scan;
        using var listening = session.Listen(this);
        try
        {
            scan = Await(LeaseScanner.ScanAsync(session.Client, All.IsPresent, overrides: null, StopToken));
        }
        catch (Exception ex) when (ex is not PipelineStoppedException)
        {
            WriteError(Errors.FromException(ex, ErrorIds.LeaseScanFailed, ErrorCategory.ReadError,
                $"Could not read the leases through session '{session.Name}'", session, session.Redactor));
            return;
        }

        WriteObject(scan.Leases.Select(AequorLease.From), enumerateCollection: true);
    }

    private void WriteOffline(IEnumerable<string?> texts)
    {
        ReadSigners();
        foreach (var text in texts)
        {
            var row = PSObject.AsPSObject(ToLease(text ?? string.Empty));
            // Offline rows have no pid, state or reaper verdict: their own view shows what was read instead.
            row.TypeNames.Insert(0, AequorLease.OfflineTypeName);
            WriteObject(row);
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
            IsSignatureValid = (_signer?.IsSignatureValid(lease) ?? false) || (_previousSigner?.IsSignatureValid(lease) ?? false),
        };
    }
}
