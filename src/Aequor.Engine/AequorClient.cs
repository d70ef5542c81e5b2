using System.Data;
using Npgsql;

namespace Aequor.Engine;

/// <summary>
/// One client, one physical connection (Npgsql with pooling off) carrying a signed lease in its
/// application_name. The connection is opened on first use or by <see cref="ConnectAsync"/>.
/// </summary>
public sealed class AequorClient : IAsyncDisposable
{
    private readonly AequorClientOptions _options;
    private readonly LeaseSigner? _signer;
    private readonly NpgsqlConnectionStringBuilder _baseBuilder;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private NpgsqlConnection? _connection;
    private NpgsqlTransaction? _transaction;
    private long _generation;
    private bool _disposed;

    public AequorClient(AequorClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        if (!string.IsNullOrEmpty(options.CoordinationSecret))
        {
            _signer = new LeaseSigner(options.CoordinationSecret);
        }

        try
        {
            _baseBuilder = new NpgsqlConnectionStringBuilder(options.ConnectionString) { Pooling = false };
        }
        catch (ArgumentException ex)
        {
            throw new AequorConfigurationException($"The connection string is not valid: {ex.Message}", ex);
        }

        if (options.CommandTimeout is { } timeout)
        {
            _baseBuilder.CommandTimeout = timeout;
        }

        ServiceName = options.ResolveServiceName();
        InstanceId = InstanceIds.Generate();
    }

    public AequorClientOptions Options => _options;

    /// <summary>The normalised service name that goes into leases.</summary>
    public string ServiceName { get; }

    public string InstanceId { get; }

    /// <summary>False when LeaseMode is Optional and no secret was given: a plain connection.</summary>
    public bool IsLeased => _signer is not null;

    public string? Host => _baseBuilder.Host;

    public int Port => _baseBuilder.Port;

    public string? Database => _baseBuilder.Database;

    public string? UserName => _baseBuilder.Username;

    public int? BackendPid { get; private set; }

    public DateTimeOffset? LeaseExpiresAt { get; private set; }

    public string? ApplicationName { get; private set; }

    public bool InTransaction => _transaction is not null;

    public AequorClientState State =>
        _disposed ? AequorClientState.Disposed
        : _connection is null ? AequorClientState.Disconnected
        : _connection.FullState.HasFlag(ConnectionState.Broken) ? AequorClientState.Broken
        : AequorClientState.Connected;

    /// <summary>Increases with every physical connection: a signal from an older one never discards a newer one.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Runs a statement and streams its rows. The client is busy until the reader is disposed.</summary>
    public async Task<AequorReader> ExecuteReaderAsync(AequorStatement statement, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(statement);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var connection = await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);
            var command = CreateCommand(connection, statement);
            await using var _ = command.ConfigureAwait(false);
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            return new AequorReader(reader, () =>
            {
                _gate.Release();
                return ValueTask.CompletedTask;
            });
        }
        catch
        {
            _gate.Release();
            throw;
        }
    }

    public async Task<int> ExecuteNonQueryAsync(AequorStatement statement, CancellationToken cancellationToken)
    {
        var reader = await ExecuteReaderAsync(statement, cancellationToken).ConfigureAwait(false);
        await using var _ = reader.ConfigureAwait(false);
        while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false))
        {
        }

        return reader.RecordsAffected;
    }

    public async Task<object?> ExecuteScalarAsync(AequorStatement statement, CancellationToken cancellationToken)
    {
        var reader = await ExecuteReaderAsync(statement, cancellationToken).ConfigureAwait(false);
        await using var _ = reader.ConfigureAwait(false);
        return reader.FieldCount > 0 && await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? reader.GetValue(0) : null;
    }

    public async Task BeginTransactionAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_transaction is not null)
            {
                throw new InvalidOperationException("A transaction is already open on this session; complete or undo it first.");
            }

            var connection = await EnsureConnectedAsync(cancellationToken).ConfigureAwait(false);
            _transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    public Task CommitAsync(CancellationToken cancellationToken) => EndTransactionAsync(commit: true, cancellationToken);

    public Task RollbackAsync(CancellationToken cancellationToken) => EndTransactionAsync(commit: false, cancellationToken);

    private async Task EndTransactionAsync(bool commit, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var transaction = _transaction ?? throw new InvalidOperationException("No transaction is open on this session.");
            _transaction = null;
            await using (transaction.ConfigureAwait(false))
            {
                if (commit)
                {
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private NpgsqlCommand CreateCommand(NpgsqlConnection connection, AequorStatement statement)
    {
        var command = new NpgsqlCommand(statement.CommandText, connection, _transaction);
        if (statement.CommandTimeout is { } timeout)
        {
            command.CommandTimeout = timeout;
        }

        if (statement.PositionalParameters is { } positional)
        {
            foreach (var value in positional)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
            }
        }
        else if (statement.NamedParameters is { } named)
        {
            foreach (var (name, value) in named)
            {
                command.Parameters.AddWithValue(name.TrimStart('@'), value ?? DBNull.Value);
            }
        }

        return command;
    }

    private async Task<NpgsqlConnection> EnsureConnectedAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_connection is { FullState: ConnectionState.Open })
        {
            return _connection;
        }

        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
            _connection = null;
            _transaction = null;
        }

        var builder = new NpgsqlConnectionStringBuilder(_baseBuilder.ConnectionString);
        if (_signer is not null)
        {
            // The lease rides in the startup packet: no extra round trip.
            var expiresAtMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + _options.LeaseTtlMs;
            builder.ApplicationName = _signer.Sign(ServiceName, InstanceId, expiresAtMs);
            LeaseExpiresAt = DateTimeOffset.FromUnixTimeMilliseconds(expiresAtMs);
        }

        var connection = new NpgsqlConnection(builder.ConnectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        _connection = connection;
        ApplicationName = builder.ApplicationName;
        BackendPid = connection.ProcessID;
        Interlocked.Increment(ref _generation);
        return connection;
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
            _connection = null;
        }

        _gate.Dispose();
    }

    /// <summary>Never shows the secret or the password.</summary>
    public override string ToString() => $"AequorClient({ServiceName}/{InstanceId} → {Host}:{Port}/{Database}, {State})";
}
