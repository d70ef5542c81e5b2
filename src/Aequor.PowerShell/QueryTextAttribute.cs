using System.Management.Automation;

namespace Aequor.PowerShell;

/// <summary>
/// Keeps -Query to text. PowerShell turns anything into a string for a string parameter, so a row piped in
/// with no statement given (<c>Import-Csv x.csv | Invoke-AequorQuery</c>, the statement forgotten) was sent as the SQL
/// "@{name=ann; …}" and a hashtable as "System.Collections.Hashtable": a syntax error at best, and one that aborts an
/// open transaction. Refused here, before anything is sent (with the statement given, the rows bind -InputObject); so is a line of a SQL file that Get-Content sends line by line. An object
/// with a path property is let through untouched, so that a piped file still reaches -LiteralPath by its FullName or PSPath.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class QueryTextAttribute : ArgumentTransformationAttribute
{
    private static readonly string[] PathProperties = ["FullName", "PSPath", "LP", "LiteralPath"];

    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        ArgumentNullException.ThrowIfNull(engineIntrinsics);
        var value = inputData is PSObject wrapped ? wrapped.BaseObject : inputData;
        if (value is string line && inputData is PSObject fromFile && LineOfFile(engineIntrinsics, fromFile, line) is { } where)
        {
            throw new ArgumentTransformationMetadataException(
                $"-Query got line {where.Line} of '{where.File}' from Get-Content, which sends a file line by line: each line would run as a statement of its own " +
                $"(a DELETE whose WHERE is on the next line would run without it). Nothing was sent. Run the file whole: -File '{where.File}', or Get-Content -Raw.");
        }

        if (value is null or string or System.Text.StringBuilder
            || (inputData is PSObject withProperties && PathProperties.Any(p => withProperties.Properties[p] is not null)))
        {
            return inputData;
        }

        var what = value is PSCustomObject ? "an object (a row)" : $"a {value.GetType().Name}";
        throw new ArgumentTransformationMetadataException(
            $"-Query takes SQL text, and this is {what}: nothing was sent. To run a statement once per piped row, its properties bound to the @name placeholders, " +
            "give the statement: ... | Invoke-AequorQuery 'INSERT INTO t VALUES (@name, @email)'.");
    }
    /// <summary>
    /// Which line of a file of several lines this string is, when Get-Content sent it line by line (it marks each
    /// line with ReadCount and PSPath); null for anything else. Get-Content -Raw also marks its one string, which
    /// holds the line breaks; only a line of a file holding more than that line is refused.
    /// </summary>
    private static (long Line, string File)? LineOfFile(EngineIntrinsics engine, PSObject wrapped, string line)
    {
        if (wrapped.Properties["ReadCount"]?.Value is not long number || wrapped.Properties["PSPath"]?.Value is not string psPath
            || line.Contains('\n', StringComparison.Ordinal))
        {
            return null;
        }

        string file;
        try
        {
            file = engine.SessionState.Path.GetUnresolvedProviderPathFromPSPath(psPath);
        }
        catch (Exception ex) when (ex is PSInvalidOperationException or ProviderNotFoundException or System.Management.Automation.DriveNotFoundException or NotSupportedException or ArgumentException)
        {
            return null;
        }

        if (number > 1)
        {
            return (number, file);
        }

        try
        {
            // The first line: whether more follow decides, read from the file (a one-line file may come this way).
            return File.ReadAllText(file).TrimEnd('\r', '\n').Contains('\n', StringComparison.Ordinal) ? (number, file) : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            return (number, file);
        }
    }
}
