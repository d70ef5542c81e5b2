using Aequor.Engine.Reaper;
using Npgsql;

namespace Aequor.Engine.Tests.Reaper;

/// <summary>
/// A pass against a real PostgreSQL, run as the non-superuser app role. Every survivor test also
/// holds a real zombie that must die in the same pass, so a pass that kills nothing cannot pass it.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ReaperPassTests(PostgresFixture db)
{
    [Fact]
    public async Task Expired_idle_own_signed_lease_is_killed_and_gone_in_two_round_trips()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var reaper = await kit.ReaperConnectionAsync();

        var result = await ReaperPass.RunAsync(reaper, kit.Options());

        Assert.Null(result.Error);
        Assert.True(result.LockAcquired);
        Assert.Equal(1, result.Scanned);
        var candidate = Assert.Single(result.Candidates);
        Assert.Equal(zombie.ProcessID, candidate.Pid);
        Assert.Equal(kit.Service, candidate.ServiceName);
        Assert.Equal("idle", candidate.State);
        Assert.Equal(kit.AppUser, candidate.UserName);
        Assert.Equal([zombie.ProcessID], result.KilledPids);
        Assert.Equal(2, result.RoundTrips);
        Assert.True(await kit.IsGoneAsync(zombie.ProcessID));

        // The reaper's own connection is fine and outside any transaction afterwards.
        Assert.Equal(1, await ReaperKit.ScalarAsync(reaper, "SELECT 1"));
        await using var tx = await reaper.BeginTransactionAsync();
        await tx.RollbackAsync();
    }

    [Fact]
    public async Task Unexpired_lease_survives()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var live = await kit.ZombieAsync(ReaperKit.NowMs + 600_000);

        var result = await ReaperPass.RunAsync(await kit.ReaperConnectionAsync(), kit.Options());

        Assert.Equal([zombie.ProcessID], result.KilledPids);
        Assert.Equal(1, result.Skipped[ReapReasons.NotExpired]);
        Assert.True(await kit.IsAliveAsync(live.ProcessID));
        Assert.True(await kit.IsGoneAsync(zombie.ProcessID));
    }

    [Fact]
    public async Task Idle_below_threshold_survives_and_is_killed_once_past_it()
    {
        await using var kit = new ReaperKit(db);
        var old = await kit.ZombieAsync();
        await Task.Delay(2200);
        var young = await kit.ZombieAsync();
        var reaper = await kit.ReaperConnectionAsync();

        var result = await ReaperPass.RunAsync(reaper, kit.Options(minIdleSec: 2));

        Assert.Equal([old.ProcessID], result.KilledPids);
        Assert.Equal(1, result.Skipped[ReapReasons.TooYoung]);
        Assert.True(result.Candidates[0].IdleSeconds >= 2);
        Assert.True(await kit.IsAliveAsync(young.ProcessID));

        await Task.Delay(2200);
        var later = await ReaperPass.RunAsync(reaper, kit.Options(minIdleSec: 2));
        Assert.Equal([young.ProcessID], later.KilledPids);
    }

    [Fact]
    public async Task Other_service_survives()
    {
        // Our service has a '_', which LIKE would take as a wildcard: 's=rp_x;%' matches 's=rp-x;…'.
        var suffix = Guid.NewGuid().ToString("N")[..10];
        await using var kit = new ReaperKit(db) { Service = "rp_" + suffix };
        var zombie = await kit.ZombieAsync();
        var lookalike = await kit.ZombieAsync(service: "rp-" + suffix);
        var longer = await kit.ZombieAsync(service: kit.Service + "x");

        var result = await ReaperPass.RunAsync(await kit.ReaperConnectionAsync(), kit.Options());

        Assert.Equal([zombie.ProcessID], result.KilledPids);
        Assert.Equal(1, result.Scanned);
        Assert.True(await kit.IsAliveAsync(longer.ProcessID));
        Assert.True(await kit.IsAliveAsync(lookalike.ProcessID));
    }

    [Fact]
    public async Task Lease_written_by_pg_aequor_is_reaped_and_its_neighbour_is_not()
    {
        // application_name strings produced by the real npm package (TestData/lease-vectors.json),
        // expired in 2023; the service needed pg-aequor's normalisation ("my service/with spaces").
        await using var kit = new ReaperKit(db) { Service = "my service/with spaces" };
        const string secret = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
        var node = await kit.OpenAsync("s=my_service_-31b6940a;i=abcdefgh;e=1700000000000;g=_3zQ2BviPaE");
        var neighbour = await kit.OpenAsync("s=svc;i=abcdefgh;e=1700000000000;g=2lcnadn3BBU");

        var result = await ReaperPass.RunAsync(await kit.ReaperConnectionAsync(), kit.Options(secret: secret));

        Assert.Equal("my_service_-31b6940a", result.ServiceName);
        Assert.Equal([node.ProcessID], result.KilledPids);
        Assert.Equal("abcdefgh", Assert.Single(result.Candidates).InstanceId);
        Assert.True(await kit.IsAliveAsync(neighbour.ProcessID));
    }

    [Fact]
    public async Task Lease_of_another_secret_survives()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var foreign = await kit.ZombieAsync(secret: ReaperKit.OtherSecret);

        var result = await ReaperPass.RunAsync(await kit.ReaperConnectionAsync(), kit.Options());

        Assert.Equal([zombie.ProcessID], result.KilledPids);
        Assert.Equal(1, result.Skipped[ReapReasons.BadSignature]);
        Assert.True(await kit.IsAliveAsync(foreign.ProcessID));
    }

    [Fact]
    public async Task Unsigned_application_names_survive()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var plain = await kit.OpenAsync("orders-worker");
        var prefixOnly = await kit.OpenAsync($"s={kit.Service};legacy-worker");
        var unsigned = await kit.OpenAsync($"s={kit.Service};i=abcdefgh;e=1000;g=");

        var result = await ReaperPass.RunAsync(await kit.ReaperConnectionAsync(), kit.Options());

        Assert.Equal([zombie.ProcessID], result.KilledPids);
        Assert.Equal(2, result.Skipped[ReapReasons.NotALease]);
        foreach (var conn in new[] { plain, prefixOnly, unsigned })
        {
            Assert.True(await kit.IsAliveAsync(conn.ProcessID));
        }
    }

    [Fact]
    public async Task Tampered_signature_survives()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var lease = kit.Lease(ReaperKit.NowMs - 60_000);
        var flipped = lease[^1] == 'A' ? 'B' : 'A';
        var tampered = await kit.OpenAsync(lease[..^1] + flipped);

        var result = await ReaperPass.RunAsync(await kit.ReaperConnectionAsync(), kit.Options());

        Assert.Equal([zombie.ProcessID], result.KilledPids);
        Assert.Equal(1, result.Skipped[ReapReasons.BadSignature]);
        Assert.True(await kit.IsAliveAsync(tampered.ProcessID));
    }

    [Fact]
    public async Task Tampered_expiry_survives()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        // A live lease whose expiry someone moved into the past: the MAC no longer matches.
        var live = kit.Lease(ReaperKit.NowMs + 600_000);
        Assert.True(Lease.TryParse(live, out var parsed));
        var tampered = await kit.OpenAsync(live.Replace(";e=" + parsed.ExpiresAtMs, ";e=" + (parsed.ExpiresAtMs - 1_000_000), StringComparison.Ordinal));

        var result = await ReaperPass.RunAsync(await kit.ReaperConnectionAsync(), kit.Options());

        Assert.Equal([zombie.ProcessID], result.KilledPids);
        Assert.Equal(1, result.Skipped[ReapReasons.BadSignature]);
        Assert.True(await kit.IsAliveAsync(tampered.ProcessID));
    }

    [Fact]
    public async Task Lease_renewed_between_scan_and_kill_survives()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var renewing = await kit.ZombieAsync();
        var renewed = kit.Lease(ReaperKit.NowMs + 600_000);

        var result = await ReaperPass.ExecuteAsync(await kit.ReaperConnectionAsync(), kit.Options(), null, async (candidates, ct) =>
        {
            Assert.Contains(candidates, c => c.Pid == renewing.ProcessID);
            // What the heartbeat does: a new lease in application_name.
            await ReaperKit.ScalarAsync(renewing, "SELECT set_config('application_name', $1, false)", renewed);
        }, CancellationToken.None);

        Assert.Null(result.Error);
        Assert.Equal(2, result.Candidates.Count);
        Assert.Equal([zombie.ProcessID], result.KilledPids);
        var spared = Assert.Single(result.NotKilled);
        Assert.Equal((renewing.ProcessID, ReapReasons.Renewed), (spared.Pid, spared.Reason));
        Assert.True(await kit.IsAliveAsync(renewing.ProcessID));
        Assert.Equal(renewed, await ReaperKit.ScalarAsync(renewing, "SELECT current_setting('application_name')"));
    }

    [Fact]
    public async Task A_short_statement_timeout_on_the_reaping_session_does_not_cut_the_kill_short()
    {
        // Found by use: with SET statement_timeout below the kill's wait for the exits, the server cancelled the kill
        // after it had signalled the zombies: they were dead, and the pass reported only "57014", killed nothing.
        await using var kit = new ReaperKit(db);
        var zombies = new[] { await kit.ZombieAsync(), await kit.ZombieAsync(), await kit.ZombieAsync() };
        var reaper = await kit.ReaperConnectionAsync();

        var result = await ReaperPass.ExecuteAsync(reaper, kit.Options(), null, async (_, _) =>
            await ReaperKit.ScalarAsync(reaper, "SET statement_timeout = '5ms'"), CancellationToken.None);

        Assert.Null(result.Error);
        Assert.Equal(zombies.Select(z => z.ProcessID).Order(), result.KilledPids.Order());
        await kit.AssertExitedAsync(result);

        // Only the pass's own transaction was spared the timeout: the session keeps the setting it was given.
        Assert.Equal("5ms", await ReaperKit.ScalarAsync(reaper, "SELECT current_setting('statement_timeout')"));
    }

    [Fact]
    public async Task Backend_that_ran_a_statement_between_scan_and_kill_survives()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var waking = await kit.ZombieAsync();

        var result = await ReaperPass.ExecuteAsync(await kit.ReaperConnectionAsync(), kit.Options(), null, async (_, _) =>
            await ReaperKit.ScalarAsync(waking, "SELECT 1"), CancellationToken.None);

        Assert.Equal([zombie.ProcessID], result.KilledPids);
        Assert.Equal(ReapReasons.WokeUp, Assert.Single(result.NotKilled).Reason);
        Assert.True(await kit.IsAliveAsync(waking.ProcessID));
    }

    [Fact]
    public async Task Superuser_leased_backend_is_reported_not_killed_and_the_pass_succeeds()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var admin = await kit.OpenAsync(kit.Lease(ReaperKit.NowMs - 60_000), db.AdminConnectionString);

        var result = await ReaperPass.RunAsync(await kit.ReaperConnectionAsync(), kit.Options(errorMode: ReaperErrorMode.Throw));

        Assert.Null(result.Error);
        Assert.Equal([zombie.ProcessID], result.KilledPids);
        var reported = Assert.Single(result.NotKilled);
        Assert.Equal((admin.ProcessID, ReapReasons.NotPermitted), (reported.Pid, reported.Reason));
        Assert.Equal(1, await ReaperKit.ScalarAsync(admin, "SELECT 1"));
    }

    [Fact]
    public async Task Superuser_backend_that_became_a_candidate_is_not_signalled_at_kill_time()
    {
        // The reaper runs as a superuser here, so it can see and signal everything; the kill
        // statement's own permission check is what the app role relies on. Drive it directly:
        // a superuser-owned candidate given to the app role's kill statement must be refused, not raise 42501.
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var admin = await kit.OpenAsync(kit.Lease(ReaperKit.NowMs - 60_000), db.AdminConnectionString);
        var reaper = await kit.ReaperConnectionAsync();

        await using var observer = await kit.OpenObserverAsync();
        var since = new List<DateTime>();
        foreach (var pid in new[] { admin.ProcessID, zombie.ProcessID })
        {
            since.Add((DateTime)(await ReaperKit.ScalarAsync(observer, "SELECT state_change FROM pg_stat_activity WHERE pid = $1", pid))!);
        }

        ReapCandidate Candidate(NpgsqlConnection c, DateTime stateChange) =>
            new(c.ProcessID, kit.Service, "i", 0, 60, "idle", AppName(c), null, false) { StateChange = stateChange };
        await using var cmd = new NpgsqlCommand(ReaperSql.Kill, reaper);
        cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = KillJson.Candidates([Candidate(admin, since[0]), Candidate(zombie, since[1])]) });
        cmd.Parameters.Add(new NpgsqlParameter<string> { TypedValue = KillJson.States(["idle"]) });
        var terminated = new Dictionary<int, bool?>();
        var exited = new Dictionary<int, bool?>();
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                terminated[reader.GetInt32(0)] = reader.IsDBNull(6) ? null : reader.GetBoolean(6);
                exited[reader.GetInt32(0)] = reader.IsDBNull(7) ? null : reader.GetBoolean(7);
            }
        }

        Assert.Null(terminated[admin.ProcessID]);
        Assert.True(terminated[zombie.ProcessID]);
        // The statement waited for the one it killed, and only for it.
        Assert.Null(exited[admin.ProcessID]);
        Assert.True(exited[zombie.ProcessID]);
        Assert.True(await kit.IsAliveAsync(admin.ProcessID));
    }

    [Fact]
    public async Task Max_kills_is_honoured_oldest_expiry_first()
    {
        await using var kit = new ReaperKit(db);
        var now = ReaperKit.NowMs;
        var newest = await kit.ZombieAsync(now - 1_000);
        var oldest = await kit.ZombieAsync(now - 4_000);
        var second = await kit.ZombieAsync(now - 3_000);
        var third = await kit.ZombieAsync(now - 2_000);

        var result = await ReaperPass.RunAsync(await kit.ReaperConnectionAsync(), kit.Options(maxKills: 2));

        Assert.Equal([oldest.ProcessID, second.ProcessID], result.Candidates.Select(c => c.Pid));
        Assert.Equal(new[] { oldest.ProcessID, second.ProcessID }.Order(), result.KilledPids.Order());
        Assert.Equal(2, result.Skipped[ReapReasons.OverLimit]);
        Assert.True(await kit.IsAliveAsync(third.ProcessID));
        Assert.True(await kit.IsAliveAsync(newest.ProcessID));

        var overridden = await ReaperPass.RunAsync(await kit.ReaperConnectionAsync(), kit.Options(maxKills: 2), new ReapRequest { MaxIdleConnectionsToKill = 1 });
        Assert.Equal([third.ProcessID], overridden.KilledPids);
    }

    [Fact]
    public async Task Two_concurrent_passes_exactly_one_holds_the_lock()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var first = await kit.ReaperConnectionAsync();
        var second = await kit.ReaperConnectionAsync();
        using var bothStarted = new Barrier(2);

        // Each pass that gets the lock holds it two seconds before killing, so the other one's try falls inside.
        Task<ReapResult> Pass(NpgsqlConnection c) => Task.Run(() =>
        {
            bothStarted.SignalAndWait(TimeSpan.FromSeconds(10));
            return ReaperPass.ExecuteAsync(c, kit.Options(), null, (_, ct) => Task.Delay(2000, ct), CancellationToken.None);
        });

        var results = await Task.WhenAll(Pass(first), Pass(second));

        Assert.All(results, r => Assert.Null(r.Error));
        Assert.Single(results, r => r.LockAcquired);
        Assert.Equal([zombie.ProcessID], results.SelectMany(r => r.KilledPids));
        var loser = results.Single(r => !r.LockAcquired);
        Assert.Equal(0, loser.Scanned);
        Assert.Empty(loser.Candidates);
    }

    [Fact]
    public async Task Lock_held_by_a_pg_aequor_instance_means_no_pass_and_is_released_after_ours()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var node = await kit.OpenAsync("pg-aequor-instance");
        var key = LeaseFormat.NormalizeServiceName(kit.Service);
        Assert.True((bool)(await ReaperKit.ScalarAsync(node, "SELECT pg_try_advisory_lock(1346847057, hashtext($1))", key))!);

        var reaper = await kit.ReaperConnectionAsync();
        var blocked = await ReaperPass.RunAsync(reaper, kit.Options());
        Assert.False(blocked.LockAcquired);
        Assert.Empty(blocked.KilledPids);
        Assert.True(await kit.IsAliveAsync(zombie.ProcessID));

        Assert.True((bool)(await ReaperKit.ScalarAsync(node, "SELECT pg_advisory_unlock(1346847057, hashtext($1))", key))!);
        var done = await ReaperPass.RunAsync(reaper, kit.Options());
        Assert.Equal([zombie.ProcessID], done.KilledPids);

        // Our pass let the lock go: pg-aequor can take it right away.
        Assert.True((bool)(await ReaperKit.ScalarAsync(node, "SELECT pg_try_advisory_lock(1346847057, hashtext($1))", key))!);
    }

    [Fact]
    public async Task While_our_pass_holds_the_lock_a_pg_aequor_instance_cannot_take_it()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var node = await kit.OpenAsync("pg-aequor-instance");
        bool? nodeGotIt = null;

        var result = await ReaperPass.ExecuteAsync(await kit.ReaperConnectionAsync(), kit.Options(), null, async (_, _) =>
            nodeGotIt = (bool)(await ReaperKit.ScalarAsync(node, "SELECT pg_try_advisory_lock(1346847057, hashtext($1))", kit.Service))!,
            CancellationToken.None);

        Assert.True(result.LockAcquired);
        Assert.False(nodeGotIt);
        Assert.Equal([zombie.ProcessID], result.KilledPids);
        Assert.True((bool)(await ReaperKit.ScalarAsync(node, "SELECT pg_try_advisory_lock(1346847057, hashtext($1))", kit.Service))!);
    }

    [Fact]
    public async Task Failure_inside_a_pass_is_reported_releases_the_lock_and_throws_only_in_throw_mode()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var reaper = await kit.ReaperConnectionAsync();
        var key = LeaseFormat.NormalizeServiceName(kit.Service);

        var swallowed = await ReaperPass.ExecuteAsync(reaper, kit.Options(), null, (_, _) => throw new TimeoutException("boom"), CancellationToken.None);

        Assert.IsType<TimeoutException>(swallowed.Error);
        Assert.True(swallowed.LockAcquired);
        Assert.Empty(swallowed.KilledPids);
        Assert.True(await kit.IsAliveAsync(zombie.ProcessID));
        var other = await kit.OpenAsync("lock-probe");
        Assert.True((bool)(await ReaperKit.ScalarAsync(other, "SELECT pg_try_advisory_lock(1346847057, hashtext($1))", key))!);
        await ReaperKit.ScalarAsync(other, "SELECT pg_advisory_unlock(1346847057, hashtext($1))", key);

        // The connection is usable and out of the failed transaction.
        Assert.Equal(1, await ReaperKit.ScalarAsync(reaper, "SELECT 1"));

        var throwing = kit.Options(errorMode: ReaperErrorMode.Throw);
        await reaper.CloseAsync();
        await Assert.ThrowsAsync<InvalidOperationException>(() => ReaperPass.RunAsync(reaper, throwing));
        var reported = await ReaperPass.RunAsync(reaper, kit.Options());
        Assert.IsType<InvalidOperationException>(reported.Error);
    }

    [Fact]
    public async Task Cancelled_pass_is_reported_kills_nothing_and_releases_the_lock()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var reaper = await kit.ReaperConnectionAsync();
        using var cts = new CancellationTokenSource();

        var result = await ReaperPass.ExecuteAsync(reaper, kit.Options(), null, (_, _) =>
        {
            cts.Cancel(); // Ctrl+C between scan and kill
            return Task.CompletedTask;
        }, cts.Token);

        Assert.IsAssignableFrom<OperationCanceledException>(result.Error);
        Assert.Empty(result.KilledPids);
        Assert.True(await kit.IsAliveAsync(zombie.ProcessID));
        var probe = await kit.OpenAsync("lock-probe");
        Assert.True((bool)(await ReaperKit.ScalarAsync(probe, "SELECT pg_try_advisory_lock(1346847057, hashtext($1))", kit.Service))!);
        Assert.Equal(1, await ReaperKit.ScalarAsync(reaper, "SELECT 1"));
    }

    [Fact]
    public async Task Pass_refuses_to_run_inside_a_user_transaction()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var reaper = await kit.ReaperConnectionAsync();

        await using (var tx = await reaper.BeginTransactionAsync())
        {
            await ReaperKit.ScalarAsync(reaper, "SELECT 1");
            var inside = await ReaperPass.RunAsync(reaper, kit.Options());
            Assert.IsType<InvalidOperationException>(inside.Error);
            Assert.False(inside.LockAcquired);
            await tx.RollbackAsync();
        }

        await using (var begin = new NpgsqlCommand("BEGIN", reaper))
        {
            await begin.ExecuteNonQueryAsync();
        }

        var raw = await ReaperPass.RunAsync(reaper, kit.Options());
        Assert.IsType<InvalidOperationException>(raw.Error);
        await using (var rollback = new NpgsqlCommand("ROLLBACK", reaper))
        {
            await rollback.ExecuteNonQueryAsync();
        }

        Assert.True(await kit.IsAliveAsync(zombie.ProcessID));
        Assert.Equal([zombie.ProcessID], (await ReaperPass.RunAsync(reaper, kit.Options())).KilledPids);
    }

    [Fact]
    public async Task Dry_run_lists_candidates_and_kills_nothing()
    {
        await using var kit = new ReaperKit(db);
        var zombie = await kit.ZombieAsync();
        var reaper = await kit.ReaperConnectionAsync();

        var dry = await ReaperPass.RunAsync(reaper, kit.Options(), new ReapRequest { DryRun = true });

        Assert.True(dry.DryRun);
        Assert.Equal(zombie.ProcessID, Assert.Single(dry.Candidates).Pid);
        Assert.Empty(dry.KilledPids);
        Assert.Equal(ReapReasons.DryRun, Assert.Single(dry.NotKilled).Reason);
        Assert.Equal(2, dry.RoundTrips);
        Assert.True(await kit.IsAliveAsync(zombie.ProcessID));

        Assert.Equal([zombie.ProcessID], (await ReaperPass.RunAsync(reaper, kit.Options())).KilledPids);
    }

    [Fact]
    public async Task Idle_in_transaction_zombie_holding_a_row_lock_survives_by_default_and_is_killed_when_included()
    {
        await using var kit = new ReaperKit(db);
        var table = "reaper_rows_" + Guid.NewGuid().ToString("N")[..8];
        var setup = await kit.OpenAsync("setup");
        await ReaperKit.ScalarAsync(setup, $"CREATE TABLE {table} (id int PRIMARY KEY, v int); INSERT INTO {table} VALUES (1, 0)");
        try
        {
            var frozen = await kit.ZombieAsync();
            await ReaperKit.ScalarAsync(frozen, "BEGIN");
            await ReaperKit.ScalarAsync(frozen, $"UPDATE {table} SET v = 1 WHERE id = 1");
            await Task.Delay(1200);
            var reaper = await kit.ReaperConnectionAsync();

            var byDefault = await ReaperPass.RunAsync(reaper, kit.Options(minIdleSec: 1));
            Assert.Empty(byDefault.KilledPids);
            Assert.Equal(1, byDefault.Skipped[ReapReasons.InTransaction]);
            Assert.True(await kit.IsAliveAsync(frozen.ProcessID));

            var belowThreshold = await ReaperPass.RunAsync(reaper, kit.Options(includeIdleInTransaction: true, minIdleInTransactionSec: 60));
            Assert.Empty(belowThreshold.KilledPids);
            Assert.Equal(1, belowThreshold.Skipped[ReapReasons.TooYoung]);

            // The row is still locked by the frozen transaction.
            var writer = await kit.OpenAsync("writer");
            await ReaperKit.ScalarAsync(writer, "SET lock_timeout = '300ms'");
            var blocked = await Assert.ThrowsAsync<PostgresException>(() => ReaperKit.ScalarAsync(writer, $"UPDATE {table} SET v = 2 WHERE id = 1"));
            Assert.Equal(PostgresErrorCodes.LockNotAvailable, blocked.SqlState);

            var included = await ReaperPass.RunAsync(reaper, kit.Options(minIdleSec: 600, includeIdleInTransaction: true, minIdleInTransactionSec: 1));
            Assert.Equal([frozen.ProcessID], included.KilledPids);
            Assert.Equal("idle in transaction", Assert.Single(included.Candidates).State);
            Assert.True(await kit.IsGoneAsync(frozen.ProcessID));

            await ReaperKit.ScalarAsync(writer, "SET lock_timeout = '5s'");
            await ReaperKit.ScalarAsync(writer, $"UPDATE {table} SET v = 2 WHERE id = 1");
            Assert.Equal(2, await ReaperKit.ScalarAsync(writer, $"SELECT v FROM {table} WHERE id = 1"));
        }
        finally
        {
            await ReaperKit.ScalarAsync(setup, $"DROP TABLE IF EXISTS {table}");
        }
    }

    [Fact]
    public async Task Rotation_lease_of_the_previous_secret_is_reaped_only_when_it_is_given()
    {
        await using var kit = new ReaperKit(db);
        const string newSecret = "the-rotated-secret-000000001";
        var oldLease = await kit.ZombieAsync(secret: ReaperKit.Secret);
        var reaper = await kit.ReaperConnectionAsync();

        var withoutPrevious = await ReaperPass.RunAsync(reaper, kit.Options(secret: newSecret));
        Assert.Empty(withoutPrevious.KilledPids);
        Assert.Equal(1, withoutPrevious.Skipped[ReapReasons.BadSignature]);
        Assert.True(await kit.IsAliveAsync(oldLease.ProcessID));

        var withPrevious = await ReaperPass.RunAsync(reaper, kit.Options(secret: newSecret, previousSecret: ReaperKit.Secret));
        Assert.Equal([oldLease.ProcessID], withPrevious.KilledPids);
        Assert.True(Assert.Single(withPrevious.Candidates).SignedWithPreviousSecret);
        Assert.True(await kit.IsGoneAsync(oldLease.ProcessID));
    }

    [Fact]
    public async Task Expiry_is_judged_on_the_database_clock()
    {
        await using var kit = new ReaperKit(db);
        var reaper = await kit.ReaperConnectionAsync();
        var dbNowMs = (long)(await ReaperKit.ScalarAsync(reaper, "SELECT (extract(epoch FROM now()) * 1000)::bigint"))!;

        var result = await ReaperPass.RunAsync(reaper, kit.Options(), new ReapRequest { DryRun = true });

        Assert.NotNull(result.DatabaseNowMs);
        Assert.InRange(result.DatabaseNowMs!.Value, dbNowMs, dbNowMs + 10_000);
    }

    private static string AppName(NpgsqlConnection c) => new NpgsqlConnectionStringBuilder(c.ConnectionString).ApplicationName!;
}
