namespace Aequor.Engine.Tests;

/// <summary>
/// RESET ALL, DISCARD ALL and RESET application_name return application_name to the connection's startup value: the
/// shared data source's lease, signed at connect time for another instance id, which expires. The client puts its
/// own fresh lease back before the call returns; a statement that would set application_name is refused.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientLeaseResetTests(PostgresFixture db)
{
    // A short TTL, so that the startup lease has expired by the time the reset brings it back.
    private AequorClient NewClient(string? secret = ClientTestKit.Secret) => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = secret,
        LeaseMode = secret is null ? LeaseMode.Optional : LeaseMode.Required,
        ServiceName = "client-lease-reset",
        Reaper = false,
        LeaseTtlMs = 3_000,
        HeartbeatSoftRemainingMs = 1_000,
        HeartbeatHardWaitRemainingMs = 300,
    });

    private Task<long> DatabaseNowMsAsync() =>
        ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8");

    [Theory]
    [InlineData("RESET ALL", false)]
    [InlineData("DISCARD ALL", false)]
    [InlineData("RESET application_name", false)]
    [InlineData("SELECT 1; RESET ALL", false)]
    [InlineData("RESET ALL", true)]
    public async Task After_a_reset_pg_stat_activity_shows_this_clients_fresh_lease(string reset, bool asReader)
    {
        await using var client = NewClient();
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        // Past the startup lease's expiry; the statement renews this client's own lease.
        await Task.Delay(3_300);
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));

        if (asReader)
        {
            await using var reader = await client.ExecuteReaderAsync(new AequorStatement(reset), default);
            while (await reader.ReadAsync(default))
            {
            }
        }
        else
        {
            await client.ExecuteNonQueryAsync(new AequorStatement(reset), default);
        }

        var name = await ClientTestKit.ApplicationNameOfAsync(db.AdminConnectionString, client.BackendPid!.Value);
        Assert.True(Lease.TryParse(name, out var lease), $"not a lease: {name}");
        Assert.True(new LeaseSigner(ClientTestKit.Secret).IsSignatureValid(lease), $"does not verify: {name}");
        Assert.Equal(client.InstanceId, lease.InstanceId);
        Assert.False(lease.IsExpiredAt(await DatabaseNowMsAsync()), $"expired: {name}");
        Assert.Equal(name, client.ApplicationName);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task After_a_transaction_that_reset_application_name_ends_pg_stat_activity_shows_a_fresh_lease(bool commit)
    {
        // RESET ALL inside a block: the lease cannot be put back before the block ends (a rollback would undo it), but
        // the session must not then idle under the startup lease, expired, until its next statement.
        await using var client = NewClient();
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
        await Task.Delay(3_300);
        await client.BeginTransactionAsync(default);
        await client.ExecuteNonQueryAsync(new AequorStatement("RESET ALL"), default);
        await (commit ? client.CommitAsync(default) : client.RollbackAsync(default));

        var name = await ClientTestKit.ApplicationNameOfAsync(db.AdminConnectionString, client.BackendPid!.Value);
        Assert.True(Lease.TryParse(name, out var lease), $"not a lease: {name}");
        Assert.Equal(client.InstanceId, lease.InstanceId);
        Assert.False(lease.IsExpiredAt(await DatabaseNowMsAsync()), $"expired: {name}");
    }

    [Theory]
    [InlineData("SET application_name = 'nightly-job'")]
    [InlineData("SET LOCAL application_name TO 'x'")]
    [InlineData("SELECT set_config('application_name', 'x', false)")]
    [InlineData("CREATE TEMP TABLE t (a int); SET application_name = 'x'")]
    public async Task A_statement_that_sets_application_name_is_refused_in_a_leased_session_and_nothing_is_sent(string sql)
    {
        await using var client = NewClient();
        await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default);
        var before = await ClientTestKit.ApplicationNameOfAsync(db.AdminConnectionString, client.BackendPid!.Value);

        var refused = await Assert.ThrowsAsync<AequorConfigurationException>(() => client.ExecuteNonQueryAsync(new AequorStatement(sql), default));
        Assert.Contains("application_name", refused.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was sent", refused.Message, StringComparison.Ordinal);
        Assert.Equal(before, await ClientTestKit.ApplicationNameOfAsync(db.AdminConnectionString, client.BackendPid!.Value));
        Assert.Equal(SessionStateKinds.None, client.SessionState);
    }

    [Fact]
    public async Task A_session_without_a_lease_sets_application_name_as_it_likes()
    {
        await using var client = NewClient(secret: null);
        await client.ExecuteNonQueryAsync(new AequorStatement("SET application_name = 'nightly-job'"), default);
        Assert.Equal("nightly-job", await ClientTestKit.ApplicationNameOfAsync(db.AdminConnectionString, client.BackendPid!.Value));
    }
}
