using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace Aequor.PowerShell;

/// <summary>Completes -Name with the names of this runspace's sessions.</summary>
public sealed class SessionNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var pattern = WildcardPattern.Get((wordToComplete ?? string.Empty).Trim('\'', '"') + "*", WildcardOptions.IgnoreCase);
        foreach (var session in SessionStore.Current.Snapshot())
        {
            if (pattern.IsMatch(session.Name))
            {
                var text = session.Name.Contains(' ', StringComparison.Ordinal) ? $"'{session.Name}'" : session.Name;
                yield return new CompletionResult(text, session.Name, CompletionResultType.ParameterValue, session.ToString());
            }
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
