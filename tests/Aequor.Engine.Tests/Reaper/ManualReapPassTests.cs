using Aequor.Engine.Reaper;

namespace Aequor.Engine.Tests.Reaper;

/// <summary>The two-step manual pass (Invoke-AequorReap -Confirm, -NoReaper sessions) kills as the automatic pass does.</summary>
[Collection(PostgresCollection.Name)]
public sealed class ManualReapPassTests(PostgresFixture db)
{
    private static AequorClient NewClient(ReaperKit kit) => new(new AequorClientOptions
    {
        ConnectionString = kit.AppConnectionString,
        CoordinationSecret = ReaperKit.Secret,
        ServiceName = kit.Service,
        Reaper = false,
        MinConnectionIdleTimeSec = 0,
    });

    [Fact]
    public async Task An_approved_kill_returns_once_the_backend_has_exited_and_the_unapproved_one_lives()
    {
        await using var kit = new ReaperKit(db);
        var older = await kit.ZombieAsync(ReaperKit.NowMs - 120_000);
        var younger = await kit.ZombieAsync();
        await using var client = NewClient(kit);

        await using (var pass = await ManualReapPass.BeginAsync(client, null, default))
        {
            Assert.Equal([older.ProcessID, younger.ProcessID], pass.Candidates.Select(c => c.Pid));
            var outcome = Assert.Single(await pass.KillAsync([pass.Candidates[0]], default));

            Assert.Equal((older.ProcessID, true, true, null), (outcome.Lease.Pid, outcome.Killed, outcome.Exited, outcome.Reason));
        }

        // No waiting here: the kill itself waited for the exit.
        Assert.False(await kit.IsAliveAsync(older.ProcessID));
        Assert.True(await kit.IsAliveAsync(younger.ProcessID));
    }

    [Fact]
    public async Task A_short_statement_timeout_set_on_the_session_does_not_cut_the_approved_kill_short()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        await using var client = NewClient(kit);

        await using (var pass = await ManualReapPass.BeginAsync(client, null, default))
        {
            // As a script's SET would stand on the session: in force for the kill.
            await client.ExecuteNonQueryAsync(new AequorStatement("SET statement_timeout = '5ms'"), default);
            var outcome = Assert.Single(await pass.KillAsync(pass.Candidates, default));

            Assert.Equal((zombie.ProcessID, true, true), (outcome.Lease.Pid, outcome.Killed, outcome.Exited));
        }

        Assert.False(await kit.IsAliveAsync(zombie.ProcessID));
    }

    [Fact]
    public async Task A_candidate_that_changed_since_the_scan_is_left_alive_with_the_automatic_pass_reasons()
    {
        await using var kit = new ReaperKit(db);
        var woke = await kit.ZombieAsync();
        var renewed = await kit.ZombieAsync();
        var gone = await kit.ZombieAsync();
        await using var client = NewClient(kit);

        await using var pass = await ManualReapPass.BeginAsync(client, null, default);
        Assert.Equal(3, pass.Candidates.Count);
        await ReaperKit.ScalarAsync(woke, "SELECT 1");
        await ReaperKit.ScalarAsync(renewed, "SELECT set_config('application_name', $1, false)", kit.Lease(ReaperKit.NowMs + 60_000));
        await ClientTestKit.TerminateAsync(kit.AdminConnectionString, gone.ProcessID);
        Assert.True(await kit.IsGoneAsync(gone.ProcessID));

        var outcomes = (await pass.KillAsync(pass.Candidates, default)).ToDictionary(o => o.Lease.Pid);

        Assert.Equal(ReapReasons.WokeUp, outcomes[woke.ProcessID].Reason);
        Assert.Equal(ReapReasons.Renewed, outcomes[renewed.ProcessID].Reason);
        Assert.Equal(ReapReasons.Gone, outcomes[gone.ProcessID].Reason);
        Assert.DoesNotContain(outcomes.Values, o => o.Killed || o.Exited);
        Assert.True(await kit.IsAliveAsync(woke.ProcessID));
        Assert.True(await kit.IsAliveAsync(renewed.ProcessID));
    }

    [Fact]
    public async Task A_pass_locks_scans_and_kills_the_service_the_client_resolved_even_after_the_environment_changed()
    {
        await using var kit = new ReaperKit(db);
        var other = "rp-" + Guid.NewGuid().ToString("N")[..10];
        var before = Environment.GetEnvironmentVariable(AequorClientOptions.ServiceNameVariable);
        try
        {
            Environment.SetEnvironmentVariable(AequorClientOptions.ServiceNameVariable, kit.Service);
            await using var client = new AequorClient(new AequorClientOptions
            {
                ConnectionString = kit.AppConnectionString,
                CoordinationSecret = ReaperKit.Secret,
                Reaper = false,
                MinConnectionIdleTimeSec = 0,
            });
            Assert.Equal(kit.Service, client.ServiceName);
            Environment.SetEnvironmentVariable(AequorClientOptions.ServiceNameVariable, other);

            var own = await kit.ZombieAsync();
            var others = await kit.ZombieAsync(service: other);

            await using var pass = await ManualReapPass.BeginAsync(client, null, default);
            Assert.True(pass.LockAcquired);
            Assert.Equal(kit.Service, pass.Scan!.ServiceName);
            var outcome = Assert.Single(await pass.KillAsync(pass.Candidates, default));

            Assert.Equal((own.ProcessID, true), (outcome.Lease.Pid, outcome.Killed));
            Assert.True(await kit.IsAliveAsync(others.ProcessID));
        }
        finally
        {
            Environment.SetEnvironmentVariable(AequorClientOptions.ServiceNameVariable, before);
        }
    }
}
