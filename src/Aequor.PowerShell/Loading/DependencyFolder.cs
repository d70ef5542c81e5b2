using System.Runtime.InteropServices;

namespace Aequor.PowerShell.Loading;

/// <summary>
/// Which build of the engine and Npgsql a process loads. dependencies/ holds the portable net8.0 build,
/// which every PowerShell 7.4+ runs; dependencies/net10.0-linux-x64/ holds the same code published
/// ReadyToRun for .NET 10 on Linux x64 (PowerShell 7.6), whose first connect then compiles far fewer
/// methods. .NET 10 ignores code precompiled against net8.0, so the portable build cannot carry it.
/// </summary>
internal static class DependencyFolder
{
    public const string Portable = "dependencies";
    public const string Precompiled = "net10.0-linux-x64";

    /// <summary>Set to 0 (or false) to load the portable build where the precompiled one would be used.</summary>
    public const string OptOutVariable = "AEQUOR_READYTORUN";

    public static string For(string moduleDirectory) =>
        Choose(moduleDirectory, RuntimeInformation.RuntimeIdentifier, Environment.Version.Major,
            Environment.GetEnvironmentVariable(OptOutVariable));

    private static string Choose(string moduleDirectory, string runtimeIdentifier, int runtimeMajor, string? optOut)
    {
        var portable = Path.Combine(moduleDirectory, Portable);
        var precompiled = Path.Combine(portable, Precompiled);
        // The RID the runtime itself was built for: linux-musl-x64 (Alpine) and every other platform keep the
        // portable build, as does a newer runtime, which would reject this code and compile it all anyway.
        var wanted = runtimeIdentifier == "linux-x64" && runtimeMajor == 10 && !IsOff(optOut);
        return wanted && File.Exists(Path.Combine(precompiled, EngineResolver.EngineAssemblyName + ".dll")) ? precompiled : portable;
    }

    private static bool IsOff(string? value) =>
        value?.Trim() is { } text && (text == "0" || text.Equals("false", StringComparison.OrdinalIgnoreCase));
}
