using System.Management.Automation;
using Aequor.Engine;

namespace Aequor.PowerShell;

/// <summary>
/// Lets <c>-Session</c> take a session's name as well as the object: <c>-Session reporting</c> is what people
/// type after <c>Connect-Aequor -Name reporting</c>. The name is looked up among the calling script's
/// sessions (case-insensitive, as <c>Get-AequorSession -Name</c> does).
/// An unknown name does not fail the binding: PowerShell would report any failure here under its own id
/// (ParameterArgumentTransformationError) and, for <c>-Session a, typo</c>, bind none of the array. It becomes a
/// stand-in session carrying the AequorSessionNotFound error, which the cmdlet reports for that input alone.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class SessionTransformationAttribute : ArgumentTransformationAttribute
{
    /// <summary>The parameter takes several sessions (Disconnect-Aequor); every other -Session takes one.</summary>
    public bool Several { get; set; }

    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        ArgumentNullException.ThrowIfNull(engineIntrinsics);
        var value = inputData is PSObject wrapped ? wrapped.BaseObject : inputData;
        if (!Several && value is object?[] given)
        {
            // Left to the binder, -Session $a, $b fails with "Cannot convert 'System.Object[]' … Specified method is not
            // supported." Said here, it names the problem and what to do instead.
            if (given.Length != 1)
            {
                throw new ArgumentTransformationMetadataException(
                    $"-Session takes one session, and {given.Length} were given. To run the command on several, pipe them: $sessions | ForEach-Object {{ <command> -Session $_ … }}.");
            }

            inputData = given[0];
            value = inputData is PSObject one ? one.BaseObject : inputData;
        }

        return value switch
        {
            string name => Resolve(engineIntrinsics, name),

            // Disconnect-Aequor -Session a, b takes several: each name among them is looked up the same way.
            object?[] items when items.Any(i => (i is PSObject p ? p.BaseObject : i) is string) =>
                items.Select(i => (i is PSObject p ? p.BaseObject : i) is string n ? Resolve(engineIntrinsics, n) : i).ToArray(),
            _ => inputData,
        };
    }

    private static AequorSession Resolve(EngineIntrinsics engineIntrinsics, string name)
    {
        // Binding runs before the cmdlet's body: the same check as its own, so a runspace that
        // ForEach-Object -Parallel reuses never hands an earlier iteration's session over by name.
        var sessions = SessionStore.For(engineIntrinsics.SessionState, HostWarning.Write);
        if (sessions.Find(name) is { } session)
        {
            return session;
        }

        return Missing(name, NotFound(sessions, name));
    }

    /// <summary>
    /// The stand-in for a name that is not open: closed from the start over a client that never connects, so
    /// a command that missed <see cref="AequorSession.NotFound"/> would still fail (AequorSessionClosed), never run anywhere.
    /// </summary>
    private static AequorSession Missing(string name, ErrorRecord notFound)
    {
        var client = new AequorClient(new AequorClientOptions { ConnectionString = "Host=localhost", LeaseMode = LeaseMode.Optional, Reaper = false });
        var session = new AequorSession(name, client, Redactor.None) { NotFound = notFound };
        session.Close();
        return session;
    }

    private static ErrorRecord NotFound(RunspaceSessions sessions, string name)
    {
        if (SessionNames.HasPatternCharacters(name))
        {
            return Errors.Create(ErrorIds.SessionNotFound, ErrorCategory.ObjectNotFound,
                $"-Session takes one session's exact name and expands no wildcards; '{name}' names none. Session names hold none of * ? [ ] `: pipe the sessions a pattern matches instead, e.g. Get-AequorSession -Name '{name}' | ...", name);
        }

        var open = sessions.Snapshot().Select(s => $"'{s.Name}'").ToList();
        return Errors.Create(ErrorIds.SessionNotFound, ErrorCategory.ObjectNotFound, open.Count == 0
            ? $"There is no Aequor session named '{name}': this runspace has none open. Run Connect-Aequor -Name {name} first."
            : $"There is no Aequor session named '{name}'. Open in this runspace: {string.Join(", ", open)}.", name);
    }
}
