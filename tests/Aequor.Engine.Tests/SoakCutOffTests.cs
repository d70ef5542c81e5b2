using Aequor.Soak;

namespace Aequor.Engine.Tests;

/// <summary>
/// What the soak report says of a worker's statement cut off by 57P01, from lines as the workers print them
/// (SoakWorker: TIMELINE, ERROR, KILLED): the flake seen once in 7 runs left nothing to go on but its error.
/// </summary>
public sealed class SoakCutOffTests
{
    private static readonly LeaseSigner Signer = new("soak-coordination-secret-0123456789");

    private static string[] Fields(string line) => line.Split(' ');

    [Fact]
    public void A_kill_of_the_workers_own_backend_is_told_with_its_lease_expiry_state_and_the_time_line()
    {
        var lease = Signer.Sign("soak", "abcd1234", 10_000_002_500);
        var error = Fields("ERROR 7 3 AequorOutcomeUnknownException 57P01 live=True 900ms The connection was lost");
        var timeline = Fields("TIMELINE 7 3 10000000000:call-start(instance=abcd1234,pid=4242,leaseExpiresAtMs=10000002500) 10000000900:dead(pid=4242,statement,57P01) 10000000901:error(57P01)")[3..];
        var kills = new List<string[]>
        {
            Fields($"KILLED 4242 {lease} expiredMsAgo=300 idle=2.1 state=idle passNowMs=10000002800 expiresAtMs=10000002500 stateChangeMs=10000000700 by=2"),
            Fields($"KILLED 5151 {Signer.Sign("soak", "zzzz9999", 1)} expiredMsAgo=9 idle=9.0 state=idle passNowMs=10000000500 expiresAtMs=1 stateChangeMs=1 by=2"),
        };

        var said = SoakCutOff.Describe(error, timeline, kills, (_, _, rel) => $"{rel(10_000_000_100)} to {rel(10_000_000_600)}");

        Assert.StartsWith("worker 7 statement 3 (live=True, AequorOutcomeUnknownException 57P01 after 900ms); backend pids [4242]", said);
        Assert.Contains("time line: +0 ms call-start(instance=abcd1234,pid=4242,leaseExpiresAtMs=10000002500), +900 ms dead(pid=4242,statement,57P01), +901 ms error(57P01)", said);
        Assert.Contains("SIGSTOPs of the worker: +100 ms to +600 ms", said);
        Assert.Contains($"reaper decisions (its pid): pid 4242 killed by worker 2's pass at +2800 ms: this client's own lease {lease}, expiring at +2500 ms (300 ms before the pass's database clock), state idle since +700 ms (idle 2.1 s)", said);
        Assert.DoesNotContain("5151", said);
    }

    [Fact]
    public void A_kill_during_a_connect_the_client_never_finished_is_found_in_the_calls_window_and_named_another_instances_lease()
    {
        // The soak's flake: a fresh client's first statement, 13.9 s in one connect, then 57P01; the client never learnt its pid.
        var startup = Signer.Sign("soak", "dsLease1", 10_000_003_000);
        var error = Fields("ERROR 4 1 AequorConnectFailedException 57P01 live=True 13900ms Could not connect");
        var timeline = Fields("TIMELINE 4 1 10000000000:call-start(instance=abcd1234),connect-start(first) 10000013900:error(57P01)")[3..];
        var kills = new List<string[]>
        {
            Fields($"KILLED 777 {startup} expiredMsAgo=6000 idle=2.5 state=idle passNowMs=10000009000 expiresAtMs=10000003000 stateChangeMs=10000006500 by=5"),
            Fields($"KILLED 888 {startup} expiredMsAgo=1 idle=1 state=idle passNowMs=10000020000 expiresAtMs=1 stateChangeMs=1 by=5"),
        };

        var said = SoakCutOff.Describe(error, timeline, kills, null);

        Assert.Contains("backend pids []", said);
        Assert.Contains("reaper decisions (no kill of its pids; kills in the call's window): pid 777 killed by worker 5's pass at +9000 ms: another instance's lease (a data source's startup lease, or another client's)", said);
        Assert.Contains("expiring at +3000 ms (6000 ms before the pass's database clock), state idle since +6500 ms (idle 2.5 s)", said);
        Assert.DoesNotContain("pid 888", said);
    }

    [Fact]
    public void A_cut_off_without_a_time_line_says_so()
    {
        var said = SoakCutOff.Describe(Fields("ERROR 4 1 AequorConnectFailedException 57P01 live=True 13900ms x"), null, [], null);
        Assert.Equal("worker 4 statement 1 (live=True, AequorConnectFailedException 57P01 after 13900ms): no time line printed", said);
    }
}
