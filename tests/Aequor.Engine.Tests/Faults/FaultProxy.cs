using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Aequor.Engine.Tests.Faults;

/// <summary>
/// A loopback TCP proxy between a client and PostgreSQL that can reset, delay or black-hole the
/// traffic on command, so tests see what a dying network really does to a connection.
/// Listens on 127.0.0.1 only and forwards only to the given loopback server.
/// </summary>
public sealed class FaultProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<int, (TcpClient Client, TcpClient Server)> _links = new();
    private readonly Task _acceptLoop;
    private int _nextId;
    private volatile bool _blackHole;
    private volatile bool _dropReplies;
    private volatile bool _swallowNewLinks;
    private volatile bool _freezeAtFirstStatement;
    private int _frozenLinks;
    private volatile int _delayMs;
    private volatile int _newLinkDelayMs;

    public FaultProxy(string targetHost, int targetPort)
    {
        var address = IPAddress.Parse(targetHost == "localhost" ? "127.0.0.1" : targetHost);
        if (!IPAddress.IsLoopback(address))
        {
            throw new ArgumentException("The fault proxy forwards to loopback servers only.", nameof(targetHost));
        }

        _target = new IPEndPoint(address, targetPort);
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _acceptLoop = AcceptLoopAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public int OpenLinks => _links.Count;

    /// <summary>Bytes stop flowing both ways; sockets stay open, as when a route or a peer vanishes.</summary>
    public bool BlackHole
    {
        get => _blackHole;
        set => _blackHole = value;
    }

    /// <summary>
    /// What the server sends is read and thrown away while what the client sends still arrives: the server runs
    /// what it is sent, the client never hears of it.
    /// </summary>
    public bool DropReplies
    {
        get => _dropReplies;
        set => _dropReplies = value;
    }

    /// <summary>New connections (a cancel request among them) are accepted and never reach the server.</summary>
    public bool SwallowNewLinks
    {
        get => _swallowNewLinks;
        set => _swallowNewLinks = value;
    }

    /// <summary>
    /// New connections get through the startup and the authentication; from the client's first statement on, what
    /// it sends is swallowed and its closing is not passed on: the server is left with a backend whose client froze
    /// mid-connect, its socket open and silent. Needs an unencrypted connection (<see cref="FirstStatementCut"/>).
    /// </summary>
    public bool FreezeAtFirstStatement
    {
        get => _freezeAtFirstStatement;
        set => _freezeAtFirstStatement = value;
    }

    /// <summary>Links <see cref="FreezeAtFirstStatement"/> has frozen so far.</summary>
    public int FrozenLinks => Volatile.Read(ref _frozenLinks);

    public TimeSpan Delay
    {
        get => TimeSpan.FromMilliseconds(_delayMs);
        set => _delayMs = (int)value.TotalMilliseconds;
    }

    /// <summary>
    /// Held up on top of <see cref="Delay"/>, for their whole life, by the links accepted while this is set: one
    /// client's slow connection beside fast ones through the same proxy (one host and port, one storm scope).
    /// </summary>
    public TimeSpan NewLinkDelay
    {
        get => TimeSpan.FromMilliseconds(_newLinkDelayMs);
        set => _newLinkDelayMs = (int)value.TotalMilliseconds;
    }

    /// <summary>Resets every link with a TCP RST, both towards the client and the server.</summary>
    public void ResetAll()
    {
        foreach (var (id, link) in _links)
        {
            Reset(link.Client);
            Reset(link.Server);
            _links.TryRemove(id, out _);
        }
    }

    /// <summary>Points a connection string at the proxy.</summary>
    public string Rewrite(string connectionString)
    {
        var b = new Npgsql.NpgsqlConnectionStringBuilder(connectionString) { Host = "127.0.0.1", Port = Port };
        return b.ConnectionString;
    }

    private static void Reset(TcpClient client)
    {
        // A link whose pumps already ended has disposed its TcpClient (Client is null then); read it once,
        // since the link's own dispose may race this reset.
        var socket = client.Client;
        if (socket is null)
        {
            return;
        }

        try
        {
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(() => LinkAsync(client));
        }
    }

    private async Task LinkAsync(TcpClient client)
    {
        if (_swallowNewLinks)
        {
            await SwallowAsync(client);
            return;
        }

        var server = new TcpClient();
        try
        {
            await server.ConnectAsync(_target, _stop.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            Reset(client);
            server.Dispose();
            return;
        }

        var id = Interlocked.Increment(ref _nextId);
        _links[id] = (client, server);
        var linkDelayMs = _newLinkDelayMs;
        using var linkStop = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var cut = _freezeAtFirstStatement ? new FirstStatementCut() : null;
        var up = PumpAsync(client, server, toClient: false, linkDelayMs, linkStop.Token, cut);
        var down = PumpAsync(server, client, toClient: true, linkDelayMs, linkStop.Token);
        await Task.WhenAny(up, down);
        await linkStop.CancelAsync();
        if (_links.TryRemove(id, out _))
        {
            client.Dispose();
            server.Dispose();
        }
    }

    private async Task SwallowAsync(TcpClient client)
    {
        using (client)
        {
            var buffer = new byte[1024];
            try
            {
                var input = client.GetStream();
                while (await input.ReadAsync(buffer, _stop.Token) > 0)
                {
                }
            }
            catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
            {
                // The sender gave up, or the proxy stopped.
            }
        }
    }

    private async Task PumpAsync(TcpClient from, TcpClient to, bool toClient, int linkDelayMs, CancellationToken ct, FirstStatementCut? cut = null)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            var input = from.GetStream();
            var output = to.GetStream();
            while (!ct.IsCancellationRequested)
            {
                var n = await input.ReadAsync(buffer, ct);
                if (n == 0)
                {
                    return;
                }

                // A black hole swallows what it reads: the sender sees its writes succeed and no answer.
                while (_blackHole && !ct.IsCancellationRequested)
                {
                    await Task.Delay(20, ct);
                    n = 0;
                }

                if (_delayMs + linkDelayMs > 0)
                {
                    await Task.Delay(_delayMs + linkDelayMs, ct);
                }

                if (toClient && _dropReplies)
                {
                    n = 0;
                }

                if (cut is not null)
                {
                    n = cut.Forwardable(buffer.AsSpan(0, n));
                }

                if (n > 0)
                {
                    await output.WriteAsync(buffer.AsMemory(0, n), ct);
                }

                if (cut is { Reached: true })
                {
                    await HoldAsync(input, ct);
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            // A reset or a stop ends the pump; the other side sees it as the network would.
        }
    }

    /// <summary>
    /// A frozen link's client side: what it still sends is dropped, and its leaving (a close or a reset) leaves the
    /// server's end open until the server ends the link (a terminated backend closes it) or the proxy stops.
    /// </summary>
    private async Task HoldAsync(Stream input, CancellationToken ct)
    {
        Interlocked.Increment(ref _frozenLinks);
        var sink = new byte[1024];
        try
        {
            while (await input.ReadAsync(sink, ct) > 0)
            {
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
        }

        await Task.Delay(Timeout.Infinite, ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        ResetAll();
        try
        {
            await _acceptLoop;
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
    }
}
