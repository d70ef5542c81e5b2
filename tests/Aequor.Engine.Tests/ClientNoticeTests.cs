using System.Collections.Concurrent;

namespace Aequor.Engine.Tests;

/// <summary>The server's notices reach the caller, in order, with their untranslated severity.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientNoticeTests(PostgresFixture db)
{
    [Fact]
    public async Task Notices_and_warnings_a_statement_raises_are_events_with_severity_state_and_text()
    {
        await using var client = new AequorClient(new AequorClientOptions
        {
            ConnectionString = db.AppConnectionString,
            CoordinationSecret = ClientTestKit.Secret,
            ServiceName = "notices",
            Reaper = false,
        });
        var notices = new ConcurrentQueue<AequorNoticeEvent>();
        client.OnNotice += (_, e) => notices.Enqueue(e);

        await client.ExecuteNonQueryAsync(new AequorStatement(
            "DO $$ BEGIN RAISE NOTICE 'migrated % rows', 42; RAISE WARNING 'index missing' USING HINT = 'create it'; END $$"), CancellationToken.None);
        await client.ExecuteNonQueryAsync(new AequorStatement("SELECT 1"), CancellationToken.None);

        Assert.Collection(
            notices,
            n =>
            {
                Assert.Equal(("NOTICE", "00000", "migrated 42 rows"), (n.Severity, n.SqlState, n.MessageText));
                Assert.Null(n.Hint);
            },
            n =>
            {
                Assert.Equal(("WARNING", "01000", "index missing"), (n.Severity, n.SqlState, n.MessageText));
                Assert.Equal("create it", n.Hint);
            });
    }
}
