using System.Management.Automation;

namespace Aequor.PowerShell;

/// <summary>
/// A warning where no cmdlet is running to write it: Remove-Module calls the module's cleanup on its
/// pipeline thread, so a nested pipeline there reaches the host (and honours $WarningPreference).
/// </summary>
internal static class HostWarning
{
    public static void Write(string message)
    {
        try
        {
            using var nested = System.Management.Automation.PowerShell.Create(RunspaceMode.CurrentRunspace);
            nested.AddCommand(@"Microsoft.PowerShell.Utility\Write-Warning").AddParameter("Message", message).Invoke();
        }
#pragma warning disable CA1031 // Removal must complete even where no nested pipeline can run (a closing runspace).
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }
}
