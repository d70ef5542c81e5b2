using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using System.Management.Automation.Runspaces;

namespace Aequor.PowerShell;

/// <summary>Completes -Name with the names of the sessions this runspace's script may see.</summary>
public sealed class SessionNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        // What is typed so far is a prefix pattern, as for -Name itself; one that is no valid pattern ('db[') completes nothing.
        if (!SessionNames.TryPattern((wordToComplete ?? string.Empty).Trim('\'', '"') + "*", out var pattern, out _))
        {
            return [];
        }

        return SessionStore.Peek(ReadMarker())
            .Where(s => pattern.IsMatch(s.Name))
            .Select(s => new CompletionResult(SessionNames.AsArgument(s.Name), s.Name, CompletionResultType.ParameterValue, s.ToString()))
            .ToList();
    }

    // A completer gets no SessionState; completion runs on the pipeline thread, where a nested pipeline
    // reads the global marker variable (a ForEach-Object -Parallel iteration must not be offered an earlier one's names).
    private static object? ReadMarker()
    {
        try
        {
            using var nested = System.Management.Automation.PowerShell.Create(RunspaceMode.CurrentRunspace);
            return nested.AddCommand(@"Microsoft.PowerShell.Utility\Get-Variable")
                .AddParameter("Name", SessionStore.MarkerVariable)
                .AddParameter("Scope", "Global")
                .AddParameter("ValueOnly")
                .AddParameter("ErrorAction", ActionPreference.Ignore)
                .Invoke()
                .FirstOrDefault()?.BaseObject;
        }
#pragma warning disable CA1031 // Completion offers nothing rather than fail where no nested pipeline can run.
        catch (Exception)
#pragma warning restore CA1031
        {
            return null;
        }
    }
}

/// <summary>Completes a string parameter from a fixed list (kept a string so a wrong value gets our ErrorId).</summary>
public abstract class FixedValuesCompleter(params string[] values) : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        values.Where(v => v.StartsWith((wordToComplete ?? string.Empty).Trim('\'', '"'), StringComparison.OrdinalIgnoreCase))
            .Select(v => new CompletionResult(v, v, CompletionResultType.ParameterValue, v));
}

public sealed class QueryOutputCompleter() : FixedValuesCompleter(InvokeAequorQueryCommand.OutputKinds);
