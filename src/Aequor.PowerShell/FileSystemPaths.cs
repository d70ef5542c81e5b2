using System.Management.Automation;
using Microsoft.PowerShell.Commands;

namespace Aequor.PowerShell;

/// <summary>
/// -Path of a CSV file as Export- and Import-AequorTableData take it: literally (a '[' in a name is no wildcard),
/// relative to the current location, on the file system only; a terminating AequorInvalidParameter before anything
/// is sent when it cannot name a file.
/// </summary>
internal static class FileSystemPaths
{
    /// <param name="notDone">What did not happen, for the messages: "exported", "imported".</param>
    public static string Resolve(AequorCmdlet cmdlet, string path, string notDone)
    {
        if (path.Contains('\0', StringComparison.Ordinal))
        {
            // No file system takes one; .NET would refuse it later with a bare ArgumentException ("Null character in path").
            cmdlet.ThrowInvalidParameter($"-Path '{path.Replace("\0", "\\0", StringComparison.Ordinal)}' holds a NUL character (U+0000), which no file name can hold: nothing was {notDone}.", path);
        }

        if (string.IsNullOrWhiteSpace(path))
        {
            // Taken as written it is a file named by blanks in the current folder, which nobody means.
            cmdlet.ThrowInvalidParameter($"-Path '{path}' is blank: give a file name. Nothing was {notDone}.", path);
        }

        string resolved;
        ProviderInfo provider;
        try
        {
            resolved = cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(path, out provider, out _);
        }
        catch (Exception ex) when (ex is ItemNotFoundException or System.Management.Automation.DriveNotFoundException or ProviderNotFoundException or NotSupportedException or ArgumentException or PSInvalidOperationException)
        {
            cmdlet.ThrowInvalidParameter($"-Path '{path}' cannot be resolved: {ex.Message} Nothing was {notDone}.", path);
            return string.Empty;
        }

        if (provider.ImplementingType != typeof(FileSystemProvider))
        {
            cmdlet.ThrowInvalidParameter($"-Path '{path}' is on the {provider.Name} provider, not a file system: nothing was {notDone}.", path);
        }

        if (Directory.Exists(resolved))
        {
            cmdlet.ThrowInvalidParameter($"-Path '{path}' is a folder ({resolved}): give a file name. Nothing was {notDone}.", path);
        }

        return resolved;
    }
}
