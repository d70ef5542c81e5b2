using System.Management.Automation;

namespace Aequor.PowerShell;

/// <summary>
/// A $null that came through the pipeline into a -Session: a variable that holds no session ($sessions['typo']). Taken
/// as "no session given", it would send the command to the default session, maybe another database; it is refused,
/// for that input only. A -Session $null given by name still means the default, as for every command.
/// </summary>
internal static class PipedNullSession
{
    public static bool Is(PSCmdlet cmdlet, AequorSession? bound) => bound is null && cmdlet.MyInvocation.ExpectingInput;

    public static ErrorRecord Error() => Errors.Create(ErrorIds.InvalidParameter, ErrorCategory.InvalidArgument,
        "A $null came through the pipeline where a session was expected (a variable that holds no session?): nothing was done for it. The default session is used only when no session is given: run the command without piping to use it.",
        null);
}
