using System.Diagnostics;
using System.Management.Automation;
using System.Text;
using Aequor.Engine;
using Microsoft.PowerShell.Commands;

namespace Aequor.PowerShell;

/// <summary>
/// Writes a table or a query to a CSV file with one COPY … TO STDOUT, streamed: the server formats and quotes the
/// values, nothing is kept in memory. The rows go to a temporary file beside the destination, moved over it only
/// when the COPY ended: a failure, Ctrl+C or a lost connection leaves the destination as it was.
/// </summary>
[Cmdlet(VerbsData.Export, "AequorTableData", SupportsShouldProcess = true, DefaultParameterSetName = TableSet)]
[OutputType(typeof(long))]
public sealed class ExportAequorTableDataCommand : AequorCmdlet
{
    private const string TableSet = "Table";
    private const string QuerySet = "Query";

    /// <summary>The CSV file to write; relative to the current location.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = string.Empty;

    /// <summary>table, schema.table, or with double-quoted parts ("My Table").</summary>
    [Parameter(Mandatory = true, ParameterSetName = TableSet)]
    [ValidateNotNullOrEmpty]
    public string Table { get; set; } = string.Empty;

    /// <summary>The table's columns to export, by name (any case), in this order; by default all.</summary>
    [Parameter(ParameterSetName = TableSet)]
    [ValidateNotNullOrEmpty]
    public string[]? Column { get; set; }

    /// <summary>One SELECT, VALUES, WITH or TABLE statement, without placeholders.</summary>
    [Parameter(Mandatory = true, ParameterSetName = QuerySet)]
    [ValidateNotNullOrEmpty]
    public string Query { get; set; } = string.Empty;

    /// <summary>A session, or its name.</summary>
    [Parameter]
    [SessionTransformation]
    [ArgumentCompleter(typeof(SessionNameCompleter))]
    public AequorSession? Session { get; set; }

    /// <summary>No first line with the column names.</summary>
    [Parameter]
    public SwitchParameter NoHeader { get; set; }

    /// <summary>Refuses to replace an existing file.</summary>
    [Parameter]
    public SwitchParameter NoClobber { get; set; }

    /// <summary>The character between fields; a comma by default.</summary>
    [Parameter]
    public char Delimiter { get; set; } = ',';

    /// <summary>Writes the number of rows exported.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Seconds for each round trip of the COPY; 0 waits forever.</summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? CommandTimeout { get; set; }

    protected override void ProcessRecord()
    {
        var session = ResolveSession(Session);
        var export = new AequorCsvExport
        {
            Table = ParameterSetName == TableSet ? Table : null,
            Columns = Column,
            Query = ParameterSetName == QuerySet ? Query : null,
            Header = !NoHeader,
            Delimiter = Delimiter,
            CommandTimeout = CommandTimeout,
        };
        try
        {
            export.Validate();
        }
        catch (AequorConfigurationException refused)
        {
            ThrowInvalidParameter(refused.Message, ParameterSetName == TableSet ? Table : Query);
        }

        var destination = Destination();
        var source = ParameterSetName == TableSet ? $"the table {Table}" : "the query";
        if (!ShouldProcess(destination, $"Export {source} as CSV"))
        {
            return;
        }

        var folder = System.IO.Path.GetDirectoryName(destination)!;
        var temporary = System.IO.Path.Combine(folder, $".{System.IO.Path.GetFileName(destination)}.{Guid.NewGuid():N}.tmp");
        var moved = false;
        IDisposable? listening = null;
        try
        {
            AequorExportResult result;
            long bytes;
            var file = OpenTemporary(temporary, destination);
            var text = new FileText(file);
            try
            {
                listening = session.Listen(this);
                session.CountQuery();
                result = Blocking((_, token) => session.Client.ExportCsv(export, text, token), 0);
                text.FlushToDisk();
                bytes = file.Length;
                text.Dispose();
            }
            catch (Exception ex) when (IsEngineFailure(ex))
            {
                // Closed quietly first: on a full disk, closing would try the buffered bytes again and its IOException
                // would replace this error with a bare one.
                text.Abandon();
                if (text.Failure is { } written)
                {
                    ThrowTerminatingError(Errors.Create(ErrorIds.TableExportFailed, ErrorCategory.WriteError,
                        $"Exporting {source} to {destination} on session '{session.Name}' failed: the file could not be written ({session.Redactor.Redact(written.Message)}); the export was stopped. {Unchanged(destination)}",
                        destination, written));
                }

                ThrowTerminatingError(Errors.FromException(ex, ErrorIds.TableExportFailed, ErrorCategory.ReadError,
                    $"Exporting {source} to {destination} on session '{session.Name}' failed", destination, session.Redactor, Unchanged(destination)));
                return;
            }
            finally
            {
                text.Abandon();
            }

            try
            {
                if (_replaced is { HardLinks: > 1 } linked)
                {
                    WriteThrough(temporary, destination, linked, source);
                }
                else
                {
                    File.Move(temporary, destination, overwrite: !NoClobber);
                    moved = true;
                }
            }
            catch (IOException) when (NoClobber && File.Exists(destination))
            {
                ThrowTerminatingError(Exists(destination));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                ThrowTerminatingError(Errors.Create(ErrorIds.TableExportFailed, ErrorCategory.WriteError,
                    $"The rows of {source} could not replace {destination}: {ex.Message} {Unchanged(destination)}", destination, ex));
            }

            WriteVerbose(session.Redactor.Redact(
                $"Session '{session.Name}': {result.Rows} rows ({bytes} bytes) of {source} exported to {destination} in {result.Elapsed.TotalSeconds:0.###} s."));
            if (PassThru)
            {
                WriteObject(result.Rows);
            }
        }
        finally
        {
            listening?.Dispose();
            if (!moved)
            {
                TryDelete(temporary);
            }
        }
    }

    // The existing file's stat, read once the destination is known: null for a new file (or on Windows).
    private ReplacedFile? _replaced;

    /// <summary>
    /// A file with more than one hard link is rewritten in place once the COPY has ended: moved over, its other names
    /// would keep the old rows. Not atomic as a rename is: a failure now (a full disk) leaves it part-written, and says so.
    /// </summary>
    private void WriteThrough(string temporary, string destination, ReplacedFile linked, string source)
    {
        try
        {
            using var rows = new FileStream(temporary, FileMode.Open, FileAccess.Read, FileShare.None, 64 * 1024);
            using var file = new FileStream(destination, FileMode.Open, FileAccess.Write, FileShare.None, 64 * 1024);
            file.SetLength(0);
            rows.CopyTo(file);
            file.Flush(flushToDisk: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(Errors.Create(ErrorIds.TableExportFailed, ErrorCategory.WriteError,
                $"The rows of {source} could not be written into {destination}, which has {linked.HardLinks} hard links and so is written through, not replaced: {ex.Message} It may now hold a part of them only.", destination, ex));
        }
    }

    /// <summary>The file system path of -Path, its folder checked: a terminating error before anything is sent.</summary>
    private string Destination()
    {
        var resolved = FileSystemPaths.Resolve(this, Path, "exported");

        // The rows are moved over the destination: over a link that would replace the link, leaving the file it points
        // to as it was. Written through it instead, as Export-Csv does: the file at the end of the links is replaced.
        resolved = FollowLinks(resolved);

        var folder = System.IO.Path.GetDirectoryName(resolved);
        if (string.IsNullOrEmpty(folder) || !Directory.Exists(folder))
        {
            ThrowTerminatingError(Errors.Create(ErrorIds.FileNotFound, ErrorCategory.ObjectNotFound,
                $"The folder {folder} of -Path '{Path}' does not exist: nothing was exported.", Path));
        }

        if (NoClobber && File.Exists(resolved))
        {
            ThrowTerminatingError(Exists(resolved));
        }

        _replaced = File.Exists(resolved) ? ReplacedFile.Of(this, resolved) : null;
        if (NotRegularFile(_replaced) is { } kind)
        {
            // Moved over, a device would be replaced by a plain file: run as root, an export to /dev/null deleted it.
            ThrowInvalidParameter(
                $"-Path '{Path}' is {kind}, not a regular file: the export writes its rows to a new file beside the destination and moves it over it, which would replace {resolved}. Give the path of a file. Nothing was exported.", Path);
        }

        return resolved;
    }

    private string FollowLinks(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget is null ? path : File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? path;
        }
        catch (IOException ex)
        {
            // A loop of links, or too many of them.
            ThrowInvalidParameter($"-Path '{Path}' is a symbolic link that cannot be followed ({ex.Message.TrimEnd('.')}): nothing was exported.", Path);
            return path;
        }
    }

    /// <summary>What the existing file is when it is no regular file (a device, a named pipe, a socket); null for a file or when unknown.</summary>
    private static string? NotRegularFile(ReplacedFile? stat) =>
        stat?.ItemType switch
        {
            null or "File" => null,
            "CharacterDevice" => "a character device",
            "BlockDevice" => "a block device",
            "NamedPipe" => "a named pipe (FIFO)",
            "Socket" => "a socket",
            var other => $"a {other}",
        };

    private FileStream OpenTemporary(string temporary, string destination)
    {
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 64 * 1024 };
            UnixFileMode? replacedMode = null;
            if (!OperatingSystem.IsWindows() && File.Exists(destination))
            {
                // The file replaced keeps its permissions (an export of sensitive rows over a 0600 file stays 0600; a
                // rename would otherwise leave the umask's 0644), and the rows are never in a file more open than that.
                replacedMode = File.GetUnixFileMode(destination);
                options.UnixCreateMode = replacedMode;
            }

            var stream = new FileStream(temporary, options);
            // Else a rename leaves the exporting user's (root's, for a job run as root) in place of the file's own.
            _replaced?.GiveOwnerTo(temporary);
            if (!OperatingSystem.IsWindows() && replacedMode is { } exact)
            {
                // Created under the umask: set exactly (a group-writable 0664 stays 0664).
                File.SetUnixFileMode(temporary, exact);
            }

            return stream;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(Errors.Create(ErrorIds.TableExportFailed, ErrorCategory.WriteError,
                $"A file could not be created beside {destination} ({ex.Message}): nothing was exported. {Unchanged(destination)}", destination, ex));
            throw; // not reached
        }
    }

    private static ErrorRecord Exists(string destination) =>
        Errors.Create(ErrorIds.FileExists, ErrorCategory.ResourceExists,
            $"The file {destination} exists and -NoClobber was given: nothing was exported, the file is unchanged.", destination);

    private static string Unchanged(string destination) =>
        File.Exists(destination) ? $"Nothing was written to {destination}; it is unchanged." : $"No file {destination} was created.";

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
#pragma warning disable CA1031 // The export's own outcome matters more than a temporary file left behind.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    /// <summary>The temporary file's text: remembers why a write failed (a full disk) and closes without throwing once abandoned.</summary>
    private sealed class FileText(FileStream file) : StreamWriter(file, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), 64 * 1024)
    {
        private bool _abandoned;

        public Exception? Failure { get; private set; }

        public override void Write(char[] buffer, int index, int count)
        {
            try
            {
                base.Write(buffer, index, count);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                Failure ??= ex;
                throw;
            }
        }

        public override void Flush()
        {
            try
            {
                base.Flush();
            }
            catch (Exception ex) when (ex is not OutOfMemoryException && !_abandoned)
            {
                Failure ??= ex;
                throw;
            }
        }

        /// <summary>On disk before it replaces the destination: a crash then leaves the old file or the whole new one.</summary>
        public void FlushToDisk()
        {
            Flush();
            try
            {
                file.Flush(flushToDisk: true);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                Failure ??= ex;
                throw;
            }
        }

        public void Abandon()
        {
            _abandoned = true;
            try
            {
                Dispose();
            }
#pragma warning disable CA1031 // The bytes are thrown away with the temporary file; the export's own error is the one to show.
            catch (Exception)
            {
                try
                {
                    // Closes the handle even when its own last write fails again.
                    file.Dispose();
                }
                catch (Exception)
                {
                }
            }
#pragma warning restore CA1031
        }
    }
}
