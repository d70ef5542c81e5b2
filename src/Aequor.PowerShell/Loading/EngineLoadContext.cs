using System.Reflection;
using System.Runtime.Loader;

namespace Aequor.PowerShell.Loading;

/// <summary>
/// The one private load context that holds Aequor.Engine, Npgsql and every other third-party
/// assembly from the module's dependencies/ folder, so another module's Npgsql (or logging
/// abstractions) in the default context never meets ours.
/// </summary>
internal sealed class EngineLoadContext : AssemblyLoadContext
{
    public const string ContextName = "Aequor";

    private readonly string _directory;
    private readonly Lazy<Dictionary<string, string>> _platformAssemblies = new(ReadPlatformAssemblies);

    public EngineLoadContext(string directory)
        : base(ContextName, isCollectible: false) // Collectible contexts cannot be relied on to unload while sockets and timers hold references; a re-import reuses this one.
    {
        _directory = directory;
    }

    public string Directory => _directory;

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        if (assemblyName.Name is null)
        {
            return null;
        }

        var path = Path.Combine(_directory, assemblyName.Name + ".dll");
        if (!File.Exists(path) || IsBetterServedByPlatform(assemblyName.Name, path))
        {
            // Returning null hands the request to the default context: the framework and the
            // PowerShell host assemblies are shared, never duplicated.
            return null;
        }

        return LoadFromAssemblyPath(path);
    }

    // A package such as System.Diagnostics.DiagnosticSource ships in dependencies/ for net8.0 but is
    // part of newer runtimes. When the running runtime's copy is at least as new, share it: a second
    // copy would split Activity and DiagnosticListener types between the host and Npgsql.
    private bool IsBetterServedByPlatform(string name, string ourPath)
    {
        if (!_platformAssemblies.Value.TryGetValue(name, out var platformPath))
        {
            return false;
        }

        try
        {
            var platform = AssemblyName.GetAssemblyName(platformPath).Version;
            var ours = AssemblyName.GetAssemblyName(ourPath).Version;
            return platform is not null && ours is not null && platform >= ours;
        }
        catch (Exception ex) when (ex is IOException or BadImageFormatException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static Dictionary<string, string> ReadPlatformAssemblies()
    {
        var map = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") is string list)
        {
            foreach (var path in list.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            {
                map[Path.GetFileNameWithoutExtension(path)] = path;
            }
        }

        return map;
    }
}
