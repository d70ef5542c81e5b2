using Aequor.Engine.Reaper;

namespace Aequor.Engine.Tests.Reaper;

/// <summary>The schedule on a hand-driven clock and random source: no database, no sleeping.</summary>
public sealed class ReaperScheduleTests
{
    private sealed class ManualClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => Now;

        public void Advance(TimeSpan by) => Now += by;
    }

    /// <summary>Returns the given values in turn, then the last one forever.</summary>
    private sealed class ScriptedRandom(params double[] values) : Random
    {
        private int _next;

        public override double NextDouble() => values[Math.Min(_next++, values.Length - 1)];
    }

    private static ReaperOptions Options(double probability = 1, int cooldownMs = 30_000) => new()
    {
        ServiceName = "svc",
        CoordinationSecret = "schedule-test-secret-00000",
        ReaperRunProbability = probability,
        ReaperCooldownMs = cooldownMs,
    };

    private static ReapResult Pass(bool locked, bool nearLimit = false, int? used = 10) => new()
    {
        LockAcquired = locked,
        DatabaseNowMs = 1,
        ConnectionsUsed = used,
        ConnectionsAvailable = 97,
        NearLimit = nearLimit,
    };

    [Fact]
    public void Probability_zero_never_runs_over_many_connects()
    {
        var clock = new ManualClock();
        var schedule = new ReaperSchedule(Options(probability: 0), clock, new ScriptedRandom(0.0));

        for (var i = 0; i < 1000; i++)
        {
            Assert.False(schedule.ShouldRunAfterConnect());
            clock.Advance(TimeSpan.FromMinutes(1));
        }

        Assert.Equal(0, schedule.PassesStarted);
    }

    [Fact]
    public void Probability_one_runs_at_once_then_not_within_the_cooldown_then_again_after_it()
    {
        var clock = new ManualClock();
        var schedule = new ReaperSchedule(Options(probability: 1), clock, new ScriptedRandom(0.5));

        Assert.True(schedule.ShouldRunAfterConnect());
        schedule.RecordPass(Pass(locked: true));

        // Cooldown 30 s + jitter 0.5 × 20 % × 30 s = 33 s.
        clock.Advance(TimeSpan.FromSeconds(32.9));
        Assert.False(schedule.ShouldRunAfterConnect());
        clock.Advance(TimeSpan.FromSeconds(0.2));
        Assert.True(schedule.ShouldRunAfterConnect());
        Assert.Equal(2, schedule.PassesStarted);
    }

    [Fact]
    public void Probability_is_applied_per_connect_outside_the_cooldown()
    {
        var clock = new ManualClock();
        // 0.15 and 0.9 are above 0.1: no pass; 0.05 is below: a pass.
        var schedule = new ReaperSchedule(Options(probability: 0.1), clock, new ScriptedRandom(0.15, 0.9, 0.05, 0.0));

        Assert.False(schedule.ShouldRunAfterConnect());
        Assert.False(schedule.ShouldRunAfterConnect());
        Assert.True(schedule.ShouldRunAfterConnect());
        Assert.False(schedule.ShouldRunAfterConnect()); // within the cooldown the roll is not even taken
    }

    [Fact]
    public void Probability_over_many_connects_is_about_the_configured_share()
    {
        var clock = new ManualClock();
        var schedule = new ReaperSchedule(Options(probability: 0.1, cooldownMs: 0), clock, new Random(42));

        var runs = Enumerable.Range(0, 10_000).Count(_ => schedule.ShouldRunAfterConnect());

        Assert.InRange(runs, 800, 1200);
    }

    [Fact]
    public void A_reservation_keeps_concurrent_connects_from_all_starting_a_pass()
    {
        var schedule = new ReaperSchedule(Options(probability: 1), new ManualClock(), new ScriptedRandom(0.0));

        var started = 0;
        Parallel.For(0, 64, _ =>
        {
            if (schedule.ShouldRunAfterConnect())
            {
                Interlocked.Increment(ref started);
            }
        });

        Assert.Equal(1, started);
    }

    [Fact]
    public void Busy_lock_grows_the_interval_by_half_up_to_ten_minutes_and_a_held_lock_resets_it()
    {
        var clock = new ManualClock();
        var schedule = new ReaperSchedule(Options(), clock, new ScriptedRandom(0.0));

        schedule.RecordPass(Pass(locked: false));
        Assert.Equal(TimeSpan.FromSeconds(45), schedule.Interval);
        schedule.RecordPass(Pass(locked: false));
        Assert.Equal(TimeSpan.FromSeconds(67.5), schedule.Interval);
        Assert.Equal(clock.Now + TimeSpan.FromSeconds(67.5), schedule.NextEligibleAt);

        for (var i = 0; i < 20; i++)
        {
            schedule.RecordPass(Pass(locked: false));
        }

        Assert.Equal(TimeSpan.FromMinutes(10), schedule.Interval);

        schedule.RecordPass(Pass(locked: true));
        Assert.Equal(TimeSpan.FromSeconds(30), schedule.Interval);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void Busy_lock_grows_the_interval_from_at_least_a_second_even_with_a_zero_or_tiny_cooldown(int cooldownMs)
    {
        var schedule = new ReaperSchedule(Options(cooldownMs: cooldownMs), new ManualClock(), new ScriptedRandom(0.0));

        schedule.RecordPass(Pass(locked: false));
        Assert.Equal(TimeSpan.FromSeconds(1), schedule.Interval);
        schedule.RecordPass(Pass(locked: false));
        Assert.Equal(TimeSpan.FromSeconds(1.5), schedule.Interval);
        for (var i = 0; i < 30; i++)
        {
            schedule.RecordPass(Pass(locked: false));
        }

        Assert.Equal(TimeSpan.FromMinutes(10), schedule.Interval);
        schedule.RecordPass(Pass(locked: true));
        Assert.Equal(TimeSpan.FromMilliseconds(cooldownMs), schedule.Interval);
    }

    [Fact]
    public void Jitter_adds_up_to_a_fifth_of_the_interval()
    {
        var clock = new ManualClock();
        var schedule = new ReaperSchedule(Options(), clock, new ScriptedRandom(0.999999));

        schedule.RecordPass(Pass(locked: true));

        Assert.InRange(schedule.NextEligibleAt - clock.Now, TimeSpan.FromSeconds(35.99), TimeSpan.FromSeconds(36));
    }

    [Fact]
    public void Storm_mode_from_a_53300_runs_regardless_of_probability_and_cooldown_until_a_pass_is_below_the_limit()
    {
        var clock = new ManualClock();
        var schedule = new ReaperSchedule(Options(probability: 0), clock, new ScriptedRandom(0.0));
        Assert.False(schedule.ShouldRunAfterConnect());

        schedule.ReportNearLimit();

        Assert.True(schedule.InStormMode);
        Assert.True(schedule.ShouldRunAfterConnect());
        schedule.RecordPass(Pass(locked: false, nearLimit: true));
        Assert.True(schedule.ShouldRunAfterConnect()); // busy lock and cooldown do not hold a storm back
        schedule.RecordPass(Pass(locked: true, nearLimit: true));
        Assert.True(schedule.ShouldRunAfterConnect());
        Assert.Equal(3, schedule.StormPasses);

        schedule.RecordPass(Pass(locked: true, nearLimit: false));

        Assert.False(schedule.InStormMode);
        Assert.False(schedule.ShouldRunAfterConnect());
        Assert.Equal(3, schedule.PassesStarted);
    }

    [Fact]
    public void Storm_mode_engages_from_a_pass_that_measured_near_limit_and_a_failed_pass_does_not_end_it()
    {
        var schedule = new ReaperSchedule(Options(probability: 0), new ManualClock(), new ScriptedRandom(0.0));

        schedule.RecordPass(Pass(locked: true, nearLimit: true));
        Assert.True(schedule.InStormMode);

        // A pass that failed before measuring says nothing about the limit.
        schedule.RecordPass(new ReapResult { Error = new TimeoutException() });
        Assert.True(schedule.InStormMode);
    }

    [Fact]
    public void Reapers_of_one_scope_share_storm_mode_and_other_scopes_do_not()
    {
        var scope = "host|5432|db|svc-" + Guid.NewGuid().ToString("N");
        ReaperOptions Scoped(string s) => new()
        {
            ServiceName = "svc",
            CoordinationSecret = "schedule-test-secret-00000",
            ReaperRunProbability = 0,
            StormScope = s,
        };
        var refused = new ReaperSchedule(Scoped(scope), new ManualClock(), new ScriptedRandom(0.0));
        var gotIn = new ReaperSchedule(Scoped(scope), new ManualClock(), new ScriptedRandom(0.0));
        var elsewhere = new ReaperSchedule(Scoped(scope + "-other"), new ManualClock(), new ScriptedRandom(0.0));
        var unscoped = new ReaperSchedule(Options(probability: 0), new ManualClock(), new ScriptedRandom(0.0));

        refused.ReportNearLimit();

        // The neighbour that got a slot reaps on its connect though it never saw a 53300 and rolls 0.
        Assert.True(gotIn.InStormMode);
        Assert.True(gotIn.ShouldRunAfterConnect());
        Assert.False(elsewhere.ShouldRunAfterConnect());
        Assert.False(unscoped.ShouldRunAfterConnect());

        // Its pass measured the database below the limit: storm mode ends for the whole scope, the
        // refused client's next connect included.
        gotIn.RecordPass(Pass(locked: true, nearLimit: false));
        Assert.False(refused.InStormMode);
        Assert.False(refused.ShouldRunAfterConnect());
        Assert.False(gotIn.InStormMode);
    }

    [Fact]
    public void In_a_storm_only_one_pass_of_the_scope_runs_at_a_time_in_the_process_and_the_others_go_on_to_their_statements()
    {
        var scope = "host|5432|db|svc-" + Guid.NewGuid().ToString("N");
        ReaperOptions Scoped() => new() { ServiceName = "svc", CoordinationSecret = "schedule-test-secret-00000", StormScope = scope };
        var schedules = Enumerable.Range(0, 8).Select(_ => new ReaperSchedule(Scoped(), new ManualClock(), new ScriptedRandom(0.99))).ToList();
        schedules[0].ReportNearLimit();

        // Eight clients get their slots at the same instant: exactly one of them starts a pass.
        using var go = new ManualResetEventSlim();
        var started = schedules.Select(s => Task.Run(() => { go.Wait(); return s.TryStartAfterConnect(); })).ToList();
        go.Set();
        Assert.Equal(1, started.Count(t => t.Result));
        var runner = schedules[started.FindIndex(t => t.Result)];
        Assert.Equal(1, runner.StormPasses);
        Assert.Equal(0, schedules.Where(s => s != runner).Sum(s => s.PassesStarted));

        // The plain question still says a storm pass is due: only starting it is refused.
        Assert.All(schedules, s => Assert.True(s.ShouldRunAfterConnect()));

        // The pass ends still near the limit: the next connect runs one again; below it, none.
        runner.RecordPass(Pass(locked: true, nearLimit: true, used: 97));
        runner.PassFinished(freed: false);
        Assert.True(schedules[3].TryStartAfterConnect());
        Assert.False(schedules[4].TryStartAfterConnect());
        schedules[3].RecordPass(Pass(locked: true, nearLimit: false));
        schedules[3].PassFinished(freed: true);
        Assert.All(schedules, s => Assert.False(s.TryStartAfterConnect()));
    }

    [Fact]
    public void A_pass_that_held_the_lock_starts_the_cooldown_for_every_client_of_the_scope_but_not_storm_mode()
    {
        var scope = "host|5432|db|svc-" + Guid.NewGuid().ToString("N");
        ReaperOptions Scoped() => new() { ServiceName = "svc", CoordinationSecret = "schedule-test-secret-00000", ReaperRunProbability = 1, ReaperCooldownMs = 30_000, StormScope = scope };
        var clock = new ManualClock();
        var reaped = new ReaperSchedule(Scoped(), clock, new ScriptedRandom(0.0));
        var neighbour = new ReaperSchedule(Scoped(), clock, new ScriptedRandom(0.0));
        var elsewhere = new ReaperSchedule(Options(probability: 1), clock, new ScriptedRandom(0.0));

        // A busy lock reaped nothing here: the neighbour still rolls.
        reaped.RecordPass(Pass(locked: false));
        Assert.True(neighbour.ShouldRunAfterConnect());
        neighbour = new ReaperSchedule(Scoped(), clock, new ScriptedRandom(0.0));

        reaped.RecordPass(Pass(locked: true));
        Assert.False(neighbour.ShouldRunAfterConnect());
        Assert.True(elsewhere.ShouldRunAfterConnect());
        clock.Advance(TimeSpan.FromSeconds(29));
        Assert.False(neighbour.ShouldRunAfterConnect());

        // Storm mode does not wait for the cooldown.
        neighbour.ReportNearLimit();
        Assert.True(neighbour.ShouldRunAfterConnect());
        neighbour.RecordPass(Pass(locked: false, nearLimit: false));

        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.True(new ReaperSchedule(Scoped(), clock, new ScriptedRandom(0.0)).ShouldRunAfterConnect());
    }

    [Fact]
    public void A_manual_pass_runs_beside_one_under_way_and_a_probability_roll_waits_for_it()
    {
        var schedule = new ReaperSchedule(Options(probability: 1, cooldownMs: 0), new ManualClock(), new ScriptedRandom(0.0));
        Assert.True(schedule.TryStartAfterConnect());

        // A manual pass (Invoke-AequorReap) is asked for: it is counted under way, never refused.
        schedule.PassStarting();
        Assert.False(schedule.TryStartAfterConnect());
        schedule.PassFinished(freed: false);
        Assert.False(schedule.TryStartAfterConnect());
        schedule.PassFinished(freed: false);
        Assert.True(schedule.TryStartAfterConnect());
    }

    [Fact]
    public void A_pass_whose_kills_exited_below_the_limit_ends_storm_mode_and_one_still_above_keeps_it()
    {
        var schedule = new ReaperSchedule(Options(probability: 0), new ManualClock(), new ScriptedRandom(0.0));
        schedule.ReportNearLimit();

        // 90 of 97 slots used at scan time, 40 killed: only the 5 that exited count free (85 ≥ 0.8 × 97).
        schedule.RecordPass(new ReapResult
        {
            LockAcquired = true, DatabaseNowMs = 1, ConnectionsUsed = 90, ConnectionsAvailable = 97, NearLimit = true,
            KilledPids = Enumerable.Range(1, 40).ToList(), ExitedPids = Enumerable.Range(1, 5).ToList(), StillNearLimit = true,
        });
        Assert.True(schedule.InStormMode);

        schedule.RecordPass(new ReapResult
        {
            LockAcquired = true, DatabaseNowMs = 1, ConnectionsUsed = 90, ConnectionsAvailable = 97, NearLimit = true,
            KilledPids = Enumerable.Range(1, 40).ToList(), ExitedPids = Enumerable.Range(1, 40).ToList(), StillNearLimit = false,
        });
        Assert.False(schedule.InStormMode);
    }

    [Fact]
    public async Task A_refused_client_of_the_scope_waits_for_a_neighbours_pass_and_is_woken_when_it_frees_slots()
    {
        var scope = "host|5432|db|svc-" + Guid.NewGuid().ToString("N");
        ReaperOptions Scoped() => new() { ServiceName = "svc", CoordinationSecret = "schedule-test-secret-00000", StormScope = scope };
        var refused = new ReaperSchedule(Scoped());
        var gotIn = new ReaperSchedule(Scoped());
        var before = refused.SlotsFreedCount;

        // No pass under way: the delay as drawn, not the longest wait.
        await refused.WaitForRetryAsync(TimeSpan.FromMilliseconds(20), before, TimeSpan.FromMinutes(5), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));

        // Two passes under way: the short delay is stretched (the server is full until one frees slots) ...
        gotIn.PassStarting();
        gotIn.PassStarting();
        var waiting = refused.WaitForRetryAsync(TimeSpan.FromMilliseconds(20), before, TimeSpan.FromMinutes(5), CancellationToken.None);
        await Task.Delay(200);
        Assert.False(waiting.IsCompleted);

        // ... until the last one ends. Passes that freed nothing wake the waiters only then, and count nothing freed.
        gotIn.PassFinished(freed: false);
        await Task.Delay(200);
        Assert.False(waiting.IsCompleted);
        gotIn.PassFinished(freed: false);
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(before, refused.SlotsFreedCount);

        // A client whose own delay is longer goes back to it when the passes end without freeing slots.
        gotIn.PassStarting();
        waiting = refused.WaitForRetryAsync(TimeSpan.FromMinutes(5), before, TimeSpan.FromMinutes(5), CancellationToken.None);
        gotIn.PassFinished(freed: false);
        await Task.Delay(200);
        Assert.False(waiting.IsCompleted);

        // A pass that freed slots wakes it at once.
        gotIn.PassStarting();
        gotIn.PassFinished(freed: true);
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));

        // Slots freed after the attempt began but before it was refused: no sleep at all.
        Assert.True(refused.WaitForRetryAsync(TimeSpan.FromMinutes(5), before, TimeSpan.FromMinutes(5), CancellationToken.None).IsCompleted);

        // Cancelling the call ends the wait.
        using var cts = new CancellationTokenSource();
        var cancelled = refused.WaitForRetryAsync(TimeSpan.FromMinutes(5), refused.SlotsFreedCount, TimeSpan.FromMinutes(5), cts.Token);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_refused_client_waits_for_a_neighbours_connect_that_may_run_the_pass_not_only_for_a_pass()
    {
        var scope = "host|5432|db|svc-" + Guid.NewGuid().ToString("N");
        ReaperOptions Scoped() => new() { ServiceName = "svc", CoordinationSecret = "schedule-test-secret-00000", StormScope = scope };
        var refused = new ReaperSchedule(Scoped());
        var gotIn = new ReaperSchedule(Scoped());
        var before = refused.SlotsFreedCount;

        // A neighbour's connect under way (a cold process's, seconds before it can run the pass): the short delay
        // is stretched, so the retry is not spent on a server that is still full.
        gotIn.ConnectStarting();
        var waiting = refused.WaitForRetryAsync(TimeSpan.FromMilliseconds(20), before, TimeSpan.FromMinutes(5), CancellationToken.None);
        await Task.Delay(300);
        Assert.False(waiting.IsCompleted);

        // Its pass starts and frees slots before the connect returns: the waiter is woken at once.
        gotIn.PassStarting();
        gotIn.PassFinished(freed: true);
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        gotIn.ConnectEnded();

        // A connect that ends with no pass (it was refused too, or rolled none): the waiter goes back to its own delay.
        before = refused.SlotsFreedCount;
        gotIn.ConnectStarting();
        waiting = refused.WaitForRetryAsync(TimeSpan.FromMilliseconds(20), before, TimeSpan.FromMinutes(5), CancellationToken.None);
        await Task.Delay(300);
        Assert.False(waiting.IsCompleted);
        gotIn.ConnectEnded();
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(before, refused.SlotsFreedCount);

        // Never longer than the longest wait given (MaxBackoff, or what is left of the connect budget).
        gotIn.ConnectStarting();
        await refused.WaitForRetryAsync(TimeSpan.FromMilliseconds(20), before, TimeSpan.FromMilliseconds(200), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        gotIn.ConnectEnded();

        // A client's own attempts, ended before its wait, never stretch it.
        refused.ConnectStarting();
        refused.ConnectEnded();
        await refused.WaitForRetryAsync(TimeSpan.FromMilliseconds(20), before, TimeSpan.FromMinutes(5), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void A_client_reaper_gets_its_storm_scope_from_server_database_and_service()
    {
        ReaperOptions For(string cs, string service) => ReaperOptions.ForClient(new AequorClientOptions
        {
            ConnectionString = cs,
            CoordinationSecret = "schedule-test-secret-00000",
            ServiceName = service,
        })!;

        var a = For("Host=h1;Port=5432;Database=d;Username=u", "svc");
        Assert.Equal(a.StormScope, For("Host=h1;Port=5432;Database=d;Username=other", "svc").StormScope);
        Assert.NotEqual(a.StormScope, For("Host=h2;Port=5432;Database=d;Username=u", "svc").StormScope);
        Assert.NotEqual(a.StormScope, For("Host=h1;Port=5432;Database=e;Username=u", "svc").StormScope);
        Assert.NotEqual(a.StormScope, For("Host=h1;Port=5432;Database=d;Username=u", "svc2").StormScope);
        Assert.DoesNotContain("Password", a.StormScope!, StringComparison.OrdinalIgnoreCase);
    }
}
