using System.Net;
using System.Net.Sockets;

namespace Aequor.TestServer;

/// <summary>
/// A throwaway PostgreSQL cluster: initdb + pg_ctl in a temp dir, loopback only, fsync off.
/// Deleted on dispose, whatever happened to the tests.
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    public const string AdminUser = "aequor_admin";
    public const string AdminPassword = "aequor-admin-pw";

    private readonly string _bin;
    private readonly string? _runAs;
    private int _disposed;

    private LocalCluster(string bin, string root, string? runAs, int port)
    {
        _bin = bin;
        Root = root;
        _runAs = runAs;
        Port = port;
    }

    public string Root { get; }

    public string DataDir => Path.Combine(Root, "data");

    public int Port { get; }

    public string AdminConnectionString =>
        $"Host=127.0.0.1;Port={Port};Username={AdminUser};Password={AdminPassword};Database=postgres;Pooling=false";

    /// <summary>The directory holding initdb and pg_ctl, or null when this machine has none.</summary>
    public static string? FindServerBinaries()
    {
        var candidates = new List<string>();
        var env = Environment.GetEnvironmentVariable("AEQUOR_PG_BIN");
        if (!string.IsNullOrEmpty(env))
        {
            candidates.Add(env);
        }

        if (Directory.Exists("/usr/lib/postgresql"))
        {
            candidates.AddRange(Directory.GetDirectories("/usr/lib/postgresql")
                .Select(d => (dir: d, version: int.TryParse(Path.GetFileName(d), out var v) ? v : 0))
                .OrderByDescending(x => x.version)
                .Select(x => Path.Combine(x.dir, "bin")));
        }

        candidates.AddRange((Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        return candidates.FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")) && File.Exists(Path.Combine(d, "pg_ctl")));
    }

    public static async Task<LocalCluster> StartAsync(string bin, int maxConnections = 100)
    {
        var runAs = ProcessRunner.IsRoot ? PickUnprivilegedUser() : null;
        var root = Path.Combine(Path.GetTempPath(), "aequor-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        var cluster = new LocalCluster(bin, root, runAs, FreePort());
        try
        {
            await cluster.InitAsync(maxConnections).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task InitAsync(int maxConnections)
    {
        var pwFile = Path.Combine(Root, "pw");
        await File.WriteAllTextAsync(pwFile, AdminPassword + "\n").ConfigureAwait(false);
        if (_runAs is not null)
        {
            await ProcessRunner.RunAsync("chown", ["-R", _runAs, Root], null, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        }

        await ProcessRunner.RunAsync(Tool("initdb"),
            ["-D", DataDir, "-U", AdminUser, "--pwfile", pwFile, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
            _runAs, TimeSpan.FromMinutes(2)).ConfigureAwait(false);

        var conf = string.Join('\n',
            "listen_addresses = '127.0.0.1'",
            $"port = {Port}",
            $"unix_socket_directories = '{Root}'",
            $"max_connections = {maxConnections}",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "shared_buffers = 32MB",
            "log_disconnections = on",
            "log_line_prefix = '%m [%p] %u@%d %a '",
            // Lets tests see terminations (FATAL 57P01) in the log when they need to.
            "logging_collector = off",
            string.Empty);
        await File.AppendAllTextAsync(Path.Combine(DataDir, "postgresql.conf"), conf).ConfigureAwait(false);
        await StartServerAsync().ConfigureAwait(false);
    }

    private Task StartServerAsync() =>
        ProcessRunner.RunAsync(Tool("pg_ctl"), ["-D", DataDir, "-l", Path.Combine(Root, "server.log"), "-w", "-t", "60", "start"], _runAs, TimeSpan.FromSeconds(90));

    /// <summary>Restarts the server (fast or immediate), as an operator or a crash would.</summary>
    public Task RestartAsync(string mode = "fast") =>
        ProcessRunner.RunAsync(Tool("pg_ctl"), ["-D", DataDir, "-l", Path.Combine(Root, "server.log"), "-w", "-t", "60", "-m", mode, "restart"], _runAs, TimeSpan.FromSeconds(90));

    public Task StopAsync(string mode = "fast") =>
        ProcessRunner.RunAsync(Tool("pg_ctl"), ["-D", DataDir, "-w", "-t", "60", "-m", mode, "stop"], _runAs, TimeSpan.FromSeconds(90), check: false);

    public Task StartAgainAsync() => StartServerAsync();

    public string ReadLog()
    {
        var path = Path.Combine(Root, "server.log");
        return File.Exists(path) ? File.ReadAllText(path) : string.Empty;
    }

    private string Tool(string name) => Path.Combine(_bin, name);

    private static string PickUnprivilegedUser()
    {
        foreach (var user in new[] { "postgres", "nobody" })
        {
            if (File.ReadLines("/etc/passwd").Any(l => l.StartsWith(user + ":", StringComparison.Ordinal)))
            {
                return user;
            }
        }

        throw new TestServerException("Running as root and no unprivileged user (postgres or nobody) exists to run initdb as.");
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            if (File.Exists(Path.Combine(DataDir, "postmaster.pid")))
            {
                await ProcessRunner.RunAsync(Tool("pg_ctl"), ["-D", DataDir, "-w", "-t", "30", "-m", "immediate", "stop"], _runAs, TimeSpan.FromSeconds(45), check: false).ConfigureAwait(false);
            }
        }
        catch (Exception)
        {
            // Best effort: the directory goes below either way.
        }

        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
