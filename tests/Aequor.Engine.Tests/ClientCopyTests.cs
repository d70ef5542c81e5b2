namespace Aequor.Engine.Tests;

/// <summary>OpenTableWriter: one COPY … FROM STDIN, all rows or none, the client usable afterwards.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientCopyTests(PostgresFixture db)
{
    private AequorClient NewClient() => new(new AequorClientOptions
    {
        ConnectionString = db.AppConnectionString,
        CoordinationSecret = ClientTestKit.Secret,
        ServiceName = "client-copy",
        Reaper = false,
        MinBackoff = 20,
        MaxBackoff = 200,
    });

    private Task<string> NewTableAsync() => ClientTestKit.NewKeyedTableAsync(db.AppConnectionString, "client_copy");

    private Task<long> CountAsync(string table) => ClientTestKit.AdminScalarAsync<long>(db.AdminConnectionString, $"SELECT count(*) FROM {table}");

    [Fact]
    public async Task Writes_all_rows_in_one_COPY()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        using (var writer = client.OpenTableWriter(table, columns => columns, null, default))
        {
            Assert.Equal(["id"], writer.Columns);
            for (var i = 1; i <= 1000; i++)
            {
                writer.WriteRow([i.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            }

            Assert.Equal(1000, writer.Complete());
        }

        Assert.Equal(1000, await CountAsync(table));
    }

    [Fact]
    public async Task A_refused_row_writes_nothing_names_the_row_and_the_client_goes_on()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        using var writer = client.OpenTableWriter(table, columns => columns, null, default);
        for (var i = 1; i <= 10; i++)
        {
            writer.WriteRow([i == 7 ? "seven" : i]);
        }

        var failed = Assert.Throws<AequorCopyFailedException>(() => writer.Complete());
        Assert.Equal(7, failed.Row);
        Assert.Equal("22P02", failed.SqlState);
        Assert.Equal(0, await CountAsync(table));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task Disposed_before_the_end_writes_nothing_and_inside_a_transaction_aborts_it()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        using (var writer = client.OpenTableWriter(table, columns => columns, null, default))
        {
            writer.WriteRow([1]);
        }

        Assert.Equal(0, await CountAsync(table));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));

        await client.BeginTransactionAsync(default);
        using (var writer = client.OpenTableWriter(table, columns => columns, null, default))
        {
            writer.WriteRow([2]);
            writer.Complete();
        }

        Assert.Equal(1L, await client.ExecuteScalarAsync(new AequorStatement($"SELECT count(*) FROM {table}"), default));
        await client.RollbackAsync(default);
        Assert.Equal(0, await CountAsync(table));
    }

    [Fact]
    public async Task A_connection_lost_while_rows_are_sent_writes_nothing_and_the_client_reconnects()
    {
        var table = await NewTableAsync();
        await using var client = NewClient();
        await client.ConnectAsync(default);
        var pid = client.BackendPid!.Value;
        using var writer = client.OpenTableWriter(table, columns => columns, null, default);
        writer.WriteRow([1]);
        Assert.True(await ClientTestKit.TerminateAsync(db.AdminConnectionString, pid));
        await ClientTestKit.WaitGoneAsync(db.AdminConnectionString, pid);
        var failed = Assert.Throws<AequorCopyFailedException>(() =>
        {
            for (var i = 2; i < 1_000_000; i++)
            {
                writer.WriteRow([i]);
            }
        });
        Assert.Contains("nothing was written", failed.Message, StringComparison.Ordinal);
        Assert.Equal(0, await CountAsync(table));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }

    [Fact]
    public async Task A_missing_table_or_a_refused_choice_sends_nothing_and_frees_the_client()
    {
        await using var client = NewClient();
        var missing = Assert.Throws<AequorConfigurationException>(() => client.OpenTableWriter("no_such_table_xyz", c => c, null, default));
        Assert.Contains("no_such_table_xyz", missing.Message, StringComparison.Ordinal);
        var table = await NewTableAsync();
        Assert.Throws<InvalidOperationException>(() => client.OpenTableWriter(table, _ => throw new InvalidOperationException("no"), null, default));
        Assert.Equal(1, await client.ExecuteScalarAsync(new AequorStatement("SELECT 1"), default));
    }
}
