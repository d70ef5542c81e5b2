using System.Management.Automation;

namespace Aequor.PowerShell;

/// <summary>Lists this runspace's sessions, in connect order.</summary>
[Cmdlet(VerbsCommon.Get, "AequorSession")]
[OutputType(typeof(AequorSession))]
public sealed class GetAequorSessionCommand : PSCmdlet
{
    // By property name too: a piped session binds its Name, not its ToString().
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(SessionNameCompleter))]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    /// <summary>Only the default session.</summary>
    [Parameter]
    public SwitchParameter Default { get; set; }

    // Each session once per command, however many of the names match it: piped on, a duplicate would be served twice
    // (Complete-AequorTransaction committing it, then failing on it with AequorNoTransaction).
    private readonly HashSet<AequorSession> _written = [];

    protected override void ProcessRecord()
    {
        var store = SessionStore.For(this);
        var patterns = new List<(string Name, WildcardPattern Pattern)>();
        foreach (var name in Name ?? [])
        {
            // An invalid pattern is that name's error: the other names are still looked up.
            if (SessionNames.TryPattern(name, out var pattern, out var error))
            {
                patterns.Add((name, pattern));
            }
            else
            {
                WriteError(error);
            }
        }

        if (Default.IsPresent)
        {
            if (store.Default is { } current && (Name is null || patterns.Any(p => p.Pattern.IsMatch(current.Name))) && _written.Add(current))
            {
                WriteObject(current);
            }

            return;
        }

        var sessions = store.Snapshot();
        if (Name is null)
        {
            WriteObject(sessions.Where(_written.Add), enumerateCollection: true);
            return;
        }

        foreach (var (name, pattern) in patterns)
        {
            var found = sessions.Where(s => pattern.IsMatch(s.Name)).ToList();
            if (found.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(name))
            {
                WriteError(Errors.Create(ErrorIds.SessionNotFound, ErrorCategory.ObjectNotFound,
                    $"There is no Aequor session named '{name}' in this runspace.", name));
            }

            WriteObject(found.Where(_written.Add), enumerateCollection: true);
        }
    }
}
