using System.Management.Automation;
using System.Security;
using System.Text;
using Aequor.Engine;

namespace Aequor.PowerShell;

/// <summary>Whether a coordination secret is required (pg-aequor's leaseMode).</summary>
public enum AequorLeaseMode
{
    Required,
    Optional,
}

/// <summary>What a failed lease renewal does (pg-aequor's heartbeatErrorMode).</summary>
public enum AequorHeartbeatErrorMode
{
    Reconnect,
    Swallow,
    Throw,
}

/// <summary>Opens a leased session now and makes it the runspace's default.</summary>
[Cmdlet(VerbsCommunications.Connect, "Aequor", DefaultParameterSetName = ConnectionStringSet)]
[OutputType(typeof(AequorSession))]
public sealed class ConnectAequorCommand : AequorCmdlet
{
    public const string ConnectionStringSet = "ConnectionString";
    public const string ParametersSet = "Parameters";
    public const string SecretVariable = "AEQUOR_COORDINATION_SECRET";
    public const string PreviousSecretVariable = "AEQUOR_PREVIOUS_COORDINATION_SECRET";
    public const string ServiceNameVariable = "AEQUOR_SERVICE_NAME";
    public const string DefaultName = "default";

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ConnectionStringSet)]
    [ValidateNotNullOrEmpty]
    public string ConnectionString { get; set; } = string.Empty;

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ParametersSet)]
    [Alias("Host")]
    [ValidateNotNullOrEmpty]
    public string Server { get; set; } = string.Empty;

    [Parameter(ParameterSetName = ParametersSet)]
    [ValidateRange(1, 65535)]
    public int Port { get; set; } = 5432;

    [Parameter(ParameterSetName = ParametersSet)]
    [ValidateNotNullOrEmpty]
    public string? Database { get; set; }

    [Parameter]
    [Credential]
    public PSCredential? Credential { get; set; }

    [Parameter]
    public SecureString? CoordinationSecret { get; set; }

    [Parameter]
    public SecureString? PreviousCoordinationSecret { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ServiceName { get; set; }

    [Parameter]
    public AequorLeaseMode LeaseMode { get; set; } = AequorLeaseMode.Required;

    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(SessionNameCompleter))]
    public string Name { get; set; } = DefaultName;

    [Parameter]
    public int? LeaseTtlMs { get; set; }

    [Parameter]
    public int? HeartbeatSoftRemainingMs { get; set; }

    [Parameter]
    public int? HeartbeatHardWaitRemainingMs { get; set; }

    [Parameter]
    public int? HeartbeatTimeoutMs { get; set; }

    [Parameter]
    public AequorHeartbeatErrorMode? HeartbeatErrorMode { get; set; }

    [Parameter]
    public SwitchParameter NoReaper { get; set; }

    [Parameter]
    public double? ReaperRunProbability { get; set; }

    [Parameter]
    public int? ReaperCooldownMs { get; set; }

    [Parameter]
    public int? MinConnectionIdleTimeSec { get; set; }

    [Parameter]
    public int? MaxIdleConnectionsToKill { get; set; }

    [Parameter]
    public SwitchParameter IncludeIdleInTransaction { get; set; }

    [Parameter]
    public int? MinIdleInTransactionSec { get; set; }

    [Parameter]
    public int? Retries { get; set; }

    [Parameter]
    public int? MinBackoff { get; set; }

    [Parameter]
    public int? MaxBackoff { get; set; }

    [Parameter]
    public int? MaxConnectRetryTimeMs { get; set; }

    [Parameter]
    public int? MaxQueryRetryTimeMs { get; set; }

    [Parameter]
    public SwitchParameter RetrySerializationFailures { get; set; }

    [Parameter]
    public int? CommandTimeout { get; set; }

    protected override void EndProcessing()
    {
        if (SessionNames.Problem(Name) is { } problem)
        {
            ThrowInvalidParameter(problem, Name);
        }

        // [pscredential]::Empty is the usual default of a wrapper function's -Credential: no credential.
        if (Credential == PSCredential.Empty)
        {
            Credential = null;
        }

        var password = SecureStrings.Reveal(Credential?.Password);
        var secret = SecureStrings.Reveal(CoordinationSecret) ?? Environment.GetEnvironmentVariable(SecretVariable);
        var previous = SecureStrings.Reveal(PreviousCoordinationSecret) ?? Environment.GetEnvironmentVariable(PreviousSecretVariable);
        var connectionString = BuildConnectionString(password);
        password ??= ConnectionStrings.GetPassword(connectionString);
        var redactor = new Redactor([password, secret, previous]);

        CheckSecret(secret, nameof(CoordinationSecret), SecretVariable);
        CheckSecret(previous, nameof(PreviousCoordinationSecret), PreviousSecretVariable);
        if (string.IsNullOrEmpty(secret) && LeaseMode == AequorLeaseMode.Required)
        {
            ThrowTerminatingError(Errors.Create(ErrorIds.SecretMissing, ErrorCategory.InvalidArgument,
                $"A coordination secret is required (LeaseMode Required): pass -CoordinationSecret or set {SecretVariable} (at least {LeaseSigner.MinSecretBytes} bytes, distinct from the database password), or use -LeaseMode Optional for a plain connection.",
                null));
        }

        if (!string.IsNullOrEmpty(secret) && secret == password)
        {
            ThrowInvalidParameter("The coordination secret is the database password: choose a distinct secret, since every client of the service must know it.");
        }

        if (SessionStore.For(this).Find(Name) is { IsStreamingOnThisThread: true } streaming)
        {
            // Replacing it closes it, which waits for the query this pipeline thread is in the middle of.
            ThrowTerminatingError(SessionBusy(streaming,
                "Give the new session another name (Connect-Aequor -Name …), or connect after the pipeline.",
                $"replacing it with a new session named '{Name}' would close it under that query"));
        }

        var options = BuildOptions(connectionString, secret, previous);
        AequorClient client;
        try
        {
            client = new AequorClient(options);
        }
        catch (AequorConfigurationException ex)
        {
            ThrowTerminatingError(Errors.FromException(ex, ErrorIds.InvalidParameter, ErrorCategory.InvalidArgument, string.Empty, null, redactor));
            return;
        }

        if (client.IsLeased && ConnectionStrings.GetApplicationName(connectionString) is { } applicationName)
        {
            // The lease lives in application_name, where every client of the service and the reaper read it: a name of
            // the script's own cannot stay beside it, and dropping it silently hides it from whoever looks for it there.
            WriteWarning(redactor.Redact(
                $"The connection string's Application Name '{applicationName}' is replaced by the signed lease: a leased session's application_name is its lease, which the reaper and Get-AequorLease read. " +
                "Identify the service with -ServiceName instead (it is written into the lease, and is the service whose leases a reaper pass may terminate), or connect without a coordination secret (-LeaseMode Optional) to keep the Application Name."));
        }

        var where = (string.IsNullOrEmpty(client.UserName) ? string.Empty : client.UserName + "@") + client.Endpoint;
        WriteVerbose($"Connecting session '{Name}' to {where} (service {client.ServiceName}, instance {client.InstanceId}, {(client.IsLeased ? $"lease {options.LeaseTtlMs} ms" : "no lease")}).");
        // The session exists before the connect so the retries of the connect reach -Verbose.
        var session = new AequorSession(Name, client, redactor);
        using (session.Listen(this))
        {
            try
            {
                Await(client.ConnectAsync(StopToken));
            }
            catch (Exception ex) when (ex is not PipelineStoppedException)
            {
                session.Close();
                ThrowTerminatingError(Errors.FromException(ex, ErrorIds.ConnectFailed, ErrorCategory.ConnectionError,
                    $"Could not connect session '{Name}' to {where}", null, redactor));
            }
            catch (PipelineStoppedException)
            {
                session.Close();
                throw;
            }
        }

        if (SessionStore.For(this).Add(session) is { } replaced)
        {
            WriteVerbose($"Closing the previous session named '{replaced.Name}'.");
            var openTransaction = replaced.InTransaction;
            replaced.Close();
            if (openTransaction)
            {
                WriteWarning($"The previous session named '{replaced.Name}' had an open transaction: closing it rolled the transaction back, and nothing of it was committed.");
            }
        }

        WriteVerbose(client.IsLeased
            ? $"Connected: backend pid {client.BackendPid}, lease until {client.LeaseExpiresAt:O}; '{Name}' is now the default session."
            : $"Connected without a lease: backend pid {client.BackendPid}; '{Name}' is now the default session.");
        WriteObject(session);
    }

    private string BuildConnectionString(string? password)
    {
        try
        {
            if (ParameterSetName == ParametersSet)
            {
                return ConnectionStrings.FromParameters(Server, MyInvocation.BoundParameters.ContainsKey(nameof(Port)) ? Port : null, Database, Credential?.UserName, password);
            }

            return Credential is null
                ? ConnectionStrings.Normalize(ConnectionString)
                : ConnectionStrings.WithCredential(ConnectionString, Credential.UserName, password);
        }
        catch (AequorConfigurationException ex)
        {
            // Our messages name the problem, never the value (a URI holds its password).
            ThrowInvalidParameter(ex.Message);
            throw;
        }
    }

    private void CheckSecret(string? secret, string parameter, string variable)
    {
        if (string.IsNullOrEmpty(secret))
        {
            return;
        }

        var bytes = Encoding.UTF8.GetByteCount(secret);
        if (bytes < LeaseSigner.MinSecretBytes)
        {
            ThrowTerminatingError(Errors.Create(ErrorIds.SecretTooShort, ErrorCategory.InvalidArgument,
                $"The coordination secret (-{parameter} or {variable}) is {bytes} bytes long; it must be at least {LeaseSigner.MinSecretBytes} bytes (UTF-8).",
                null));
        }
    }

    private AequorClientOptions BuildOptions(string connectionString, string? secret, string? previous)
    {
        var d = new AequorClientOptions { ConnectionString = connectionString };
        var serviceName = ServiceName;
        if (serviceName is not null && string.IsNullOrWhiteSpace(serviceName))
        {
            // Falling back to AEQUOR_SERVICE_NAME or sls_pg would join (and reap for) a service the script never named.
            ThrowInvalidParameter("-ServiceName is blank: name the service (the fleet that shares leases and a reaper), or leave -ServiceName out to use AEQUOR_SERVICE_NAME, then 'sls_pg'.", serviceName);
        }

        if (string.IsNullOrWhiteSpace(serviceName))
        {
            serviceName = Environment.GetEnvironmentVariable(ServiceNameVariable);
        }

        // A short lease (-LeaseTtlMs 2000) with pg-aequor's renewal thresholds (30 s / 5 s) could never
        // work: unless given, they scale with the lease as the defaults do (1/3 and 1/18 of 90 s).
        var ttl = LeaseTtlMs ?? d.LeaseTtlMs;
        var soft = HeartbeatSoftRemainingMs ?? Math.Min(d.HeartbeatSoftRemainingMs, ttl / 3);
        var hard = HeartbeatHardWaitRemainingMs ?? Math.Min(Math.Min(d.HeartbeatHardWaitRemainingMs, ttl / 18), soft);
        if (soft != d.HeartbeatSoftRemainingMs || hard != d.HeartbeatHardWaitRemainingMs)
        {
            WriteVerbose($"Lease of {ttl} ms: renewing when under {soft} ms are left, waiting for the renewal under {hard} ms.");
        }

        return new AequorClientOptions
        {
            ConnectionString = connectionString,
            CoordinationSecret = string.IsNullOrEmpty(secret) ? null : secret,
            PreviousCoordinationSecret = string.IsNullOrEmpty(previous) ? null : previous,
            // Null falls through to AWS_LAMBDA_FUNCTION_NAME, then sls_pg, in the engine.
            ServiceName = string.IsNullOrWhiteSpace(serviceName) ? null : serviceName,
            LeaseMode = LeaseMode == AequorLeaseMode.Optional ? Engine.LeaseMode.Optional : Engine.LeaseMode.Required,
            LeaseTtlMs = ttl,
            HeartbeatSoftRemainingMs = soft,
            HeartbeatHardWaitRemainingMs = hard,
            HeartbeatTimeoutMs = HeartbeatTimeoutMs ?? d.HeartbeatTimeoutMs,
            HeartbeatErrorMode = HeartbeatErrorMode switch
            {
                AequorHeartbeatErrorMode.Swallow => Engine.HeartbeatErrorMode.Swallow,
                AequorHeartbeatErrorMode.Throw => Engine.HeartbeatErrorMode.Throw,
                AequorHeartbeatErrorMode.Reconnect => Engine.HeartbeatErrorMode.Reconnect,
                _ => d.HeartbeatErrorMode,
            },
            Reaper = !NoReaper.IsPresent,
            ReaperRunProbability = ReaperRunProbability ?? d.ReaperRunProbability,
            ReaperCooldownMs = ReaperCooldownMs ?? d.ReaperCooldownMs,
            MinConnectionIdleTimeSec = MinConnectionIdleTimeSec ?? d.MinConnectionIdleTimeSec,
            MaxIdleConnectionsToKill = MaxIdleConnectionsToKill ?? d.MaxIdleConnectionsToKill,
            IncludeIdleInTransaction = IncludeIdleInTransaction.IsPresent,
            MinIdleInTransactionSec = MinIdleInTransactionSec ?? d.MinIdleInTransactionSec,
            Retries = Retries ?? d.Retries,
            MinBackoff = MinBackoff ?? d.MinBackoff,
            MaxBackoff = MaxBackoff ?? d.MaxBackoff,
            MaxConnectRetryTimeMs = MaxConnectRetryTimeMs ?? d.MaxConnectRetryTimeMs,
            MaxQueryRetryTimeMs = MaxQueryRetryTimeMs ?? d.MaxQueryRetryTimeMs,
            RetrySerializationFailures = RetrySerializationFailures.IsPresent,
            CommandTimeout = CommandTimeout,
        };
    }
}
