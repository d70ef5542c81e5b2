using System.Management.Automation;

namespace Aequor.PowerShell.Loading;

/// <summary>
/// PowerShell calls this on Import-Module and Remove-Module. Import only wires the resolver: no
/// engine or Npgsql assembly is loaded until a cmdlet first needs it.
/// </summary>
public sealed class AequorModuleInitializer : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    public void OnImport() => EngineResolver.Attach();

    public void OnRemove(PSModuleInfo psModuleInfo)
    {
        // Sessions close while the engine can still be resolved; only then is the hook removed.
        // Failures are contained, not thrown: an exception here makes PowerShell keep the module
        // loaded with its resolver already gone, so nothing in it would work any more.
        try
        {
            _ = ModuleCleanup.RunAll();
        }
        finally
        {
            EngineResolver.Detach();
        }
    }
}
