using System.Globalization;
using Aequor.Bench;

// Benchmarks on demand (never tests). Each prints a human table and BENCH| lines (BenchLine.cs) that
// build.ps1 Bench collects into one table of ratios.
//   dotnet run -c Release --project bench/Aequor.Bench -- overhead [rounds]   statement overhead vs raw Npgsql (default)
//   dotnet run -c Release --project bench/Aequor.Bench -- storm [--pwsh-dll P --module M --script bench/StormRunspaces.ps1]
//                                                                            zombie storm: 50 frozen leases, 30 new clients (tasks; with the
//                                                                            options also 30 runspaces of the staged module,
//                                                                            and those again with no storm as a control)
//   dotnet run -c Release --project bench/Aequor.Bench -- reaper [passes]     one reaper pass at 100 and 1,000 idle leases
//   dotnet run -c Release --project bench/Aequor.Bench -- connect [rounds]    a new connection + first statement vs raw Npgsql
//   (holder: internal, the frozen process of the storm; see StormHolder.cs)
var mode = args.Length > 0 && !char.IsAsciiDigit(args[0][0]) ? args[0] : "overhead";
var rest = args.Length > 0 && mode == args[0] ? args[1..] : args;
int? Number(int index) => rest.Length > index ? int.Parse(rest[index], CultureInfo.InvariantCulture) : null;

return mode switch
{
    "overhead" => await StatementOverheadBench.RunAsync(Number(0) ?? 300),
    "storm" => await StormBench.RunAsync(rest),
    "reaper" => await ReaperScalingBench.RunAsync(Number(0) ?? 5),
    "connect" => await ConnectOverheadBench.RunAsync(Number(0) ?? 15),
    StormHolder.Mode => await StormHolder.RunAsync(),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Aequor.Bench [overhead [rounds] | storm | reaper [passes] | connect [rounds]]");
    return 2;
}
