using System.Globalization;
using System.Management.Automation;
using System.Runtime.InteropServices;

namespace Aequor.PowerShell;

/// <summary>
/// The stat of the file an export replaces (Unix only; .NET reads none of it): its type, and what a rename over it
/// would lose: its owner and group (the new file is the exporting user's, root's when run as root) and its other hard
/// links (they would keep the old content).
/// </summary>
internal sealed class ReplacedFile
{
    private ReplacedFile(string? itemType, uint? userId, uint? groupId, long hardLinks)
    {
        ItemType = itemType;
        UserId = userId;
        GroupId = groupId;
        HardLinks = hardLinks;
    }

    /// <summary>PowerShell's UnixStat.ItemType: File, Directory, CharacterDevice, BlockDevice, NamedPipe, Socket, SymbolicLink.</summary>
    public string? ItemType { get; }

    public uint? UserId { get; }

    public uint? GroupId { get; }

    public long HardLinks { get; }

    /// <summary>The stat of an existing path; null on Windows or when it cannot be read.</summary>
    public static ReplacedFile? Of(PSCmdlet cmdlet, string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return null;
        }

        try
        {
            // PowerShell's file system items carry the stat (UnixStat), which .NET's own types do not.
            var items = cmdlet.InvokeProvider.Item.Get([path], force: true, literalPath: true);
            if (items.Count != 1 || items[0].Properties["UnixStat"]?.Value is not { } value)
            {
                return null;
            }

            var stat = PSObject.AsPSObject(value);
            return new ReplacedFile(
                stat.Properties["ItemType"]?.Value?.ToString(),
                Id(stat.Properties["UserId"]?.Value),
                Id(stat.Properties["GroupId"]?.Value),
                stat.Properties["HardlinkCount"]?.Value is { } links ? Convert.ToInt64(links, CultureInfo.InvariantCulture) : 1);
        }
        catch (Exception ex) when (ex is ProviderInvocationException or ItemNotFoundException or IOException or UnauthorizedAccessException or PSNotSupportedException or InvalidCastException or FormatException or OverflowException)
        {
            return null;
        }
    }

    /// <summary>
    /// Gives <paramref name="path"/> this file's owner and group; false when not allowed (only root may give a file
    /// away; a user may still set a group of theirs, tried next). The mode is set after: chown may clear set-id bits.
    /// </summary>
    public bool GiveOwnerTo(string path)
    {
        if (UserId is not { } user || GroupId is not { } group || OperatingSystem.IsWindows())
        {
            return false;
        }

        return Chown(path, user, group) == 0 || Chown(path, uint.MaxValue, group) == 0;
    }

    private static uint? Id(object? value) =>
        value is null ? null : Convert.ToUInt32(value, CultureInfo.InvariantCulture);

    // (uid_t)-1 leaves that id unchanged.
    [DllImport("libc", EntryPoint = "chown")]
    private static extern int Chown([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint owner, uint group);
}
