using System.Runtime.InteropServices;

namespace Aequor.Soak;

/// <summary>The signals a dying or frozen worker really gets.</summary>
internal static partial class Signals
{
    public const int SigKill = 9;
    public const int SigCont = 18;
    public const int SigStop = 19;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    public static bool Send(int pid, int signal) => Kill(pid, signal) == 0;
}
