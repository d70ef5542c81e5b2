using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Aequor.TestServer;

/// <summary>Runs the Postgres server tools, as an unprivileged user when we are root (initdb refuses root).</summary>
internal static partial class ProcessRunner
{
    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuid();

    public static bool IsRoot => OperatingSystem.IsLinux() && GetEuid() == 0;

    public static async Task<string> RunAsync(string file, IEnumerable<string> args, string? asUser, TimeSpan timeout, bool check = true)
    {
        var psi = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (asUser is not null)
        {
            psi.FileName = "runuser";
            psi.ArgumentList.Add("-u");
            psi.ArgumentList.Add(asUser);
            psi.ArgumentList.Add("--");
            psi.ArgumentList.Add(file);
        }
        else
        {
            psi.FileName = file;
        }

        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        // Server tools print localised messages and pick up PG* variables: keep them predictable.
        psi.Environment["LC_ALL"] = "C";
        psi.Environment.Remove("PGDATA");
        psi.Environment.Remove("PGPORT");

        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {file}.");
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TestServerException($"{Path.GetFileName(file)} did not finish within {timeout.TotalSeconds:0} s.");
        }

        var output = (await stdout.ConfigureAwait(false)) + (await stderr.ConfigureAwait(false));
        if (check && p.ExitCode != 0)
        {
            throw new TestServerException($"{Path.GetFileName(file)} {string.Join(' ', args)} failed with exit code {p.ExitCode}:\n{output.Trim()}");
        }

        return output;
    }
}
