using System.Management.Automation;

namespace Aequor.PowerShell;

/// <summary>Remove-Module Aequor closes the removing runspace's sessions; other runspaces keep theirs.</summary>
public sealed class SessionCleanup : IModuleAssemblyCleanup
{
    public void OnRemove(PSModuleInfo psModuleInfo) => SessionStore.CloseCurrentRunspace();
}
