using System.Reflection;
using System.Runtime.Loader;

namespace Aequor.PowerShell.Loading;

/// <summary>
/// Answers the default context's Resolving event for Aequor.Engine alone, from the private
/// <see cref="EngineLoadContext"/>. Everything the engine needs is then resolved inside that context,
/// so the default context never sees our Npgsql.
/// </summary>
internal static class EngineResolver
{
    public const string EngineAssemblyName = "Aequor.Engine";

    private static readonly object Gate = new();
    private static EngineLoadContext? _context;
    private static int _imports;

    /// <summary>The private context; created on first import and kept for the process (re-imports reuse it).</summary>
    public static EngineLoadContext Context
    {
        get
        {
            lock (Gate)
            {
                return _context ??= new EngineLoadContext(
                    DependencyFolder.For(Path.GetDirectoryName(typeof(EngineResolver).Assembly.Location)!));
            }
        }
    }

    // One hook per process however many runspaces import the module; it goes when the last one removes it.
    public static void Attach()
    {
        lock (Gate)
        {
            // A copy without dependencies/ (a partial copy, a hand-made zip) would otherwise fail later,
            // on the first cmdlet, with a bare "could not load Aequor.Engine".
            var engine = Path.Combine(Context.Directory, EngineAssemblyName + ".dll");
            if (!File.Exists(engine))
            {
                throw new FileNotFoundException(
                    $"The Aequor module is incomplete: {engine} is missing. Reinstall it (Install-PSResource Aequor -Reinstall) or copy the whole module folder, dependencies/ included.",
                    engine);
            }

            if (_imports++ == 0)
            {
                AssemblyLoadContext.Default.Resolving += Resolve;
            }
        }
    }

    public static void Detach()
    {
        lock (Gate)
        {
            if (_imports == 0)
            {
                return;
            }

            if (--_imports == 0)
            {
                AssemblyLoadContext.Default.Resolving -= Resolve;
            }
        }
    }

    private static Assembly? Resolve(AssemblyLoadContext requester, AssemblyName name)
    {
        if (!string.Equals(name.Name, EngineAssemblyName, StringComparison.Ordinal))
        {
            return null; // Not ours: other modules' assemblies are none of our business.
        }

        return Context.LoadFromAssemblyName(name);
    }
}
