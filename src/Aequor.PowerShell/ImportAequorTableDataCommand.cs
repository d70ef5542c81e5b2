using System.Management.Automation;
using Aequor.Engine;

namespace Aequor.PowerShell;

/// <summary>
/// Loads a CSV file into a table with one COPY … FROM STDIN (FORMAT csv), the file streamed: the inverse of
/// Export-AequorTableData, reading NULL (an empty field) and an empty string ("") back apart. All rows or none.
/// </summary>
[Cmdlet(VerbsData.Import, "AequorTableData", SupportsShouldProcess = true)]
[OutputType(typeof(long))]
public sealed class ImportAequorTableDataCommand : AequorCmdlet
{
    /// <summary>The CSV file to read; relative to the current location.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = string.Empty;

    /// <summary>table, schema.table, or with double-quoted parts ("My Table").</summary>
    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string Table { get; set; } = string.Empty;

    /// <summary>The columns the fields fill, in the file's order; with a header they must agree with it.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? Column { get; set; }

    /// <summary>A session, or its name.</summary>
    [Parameter]
    [SessionTransformation]
    [ArgumentCompleter(typeof(SessionNameCompleter))]
    public AequorSession? Session { get; set; }

    /// <summary>The first line is a row, not the column names.</summary>
    [Parameter]
    public SwitchParameter NoHeader { get; set; }

    /// <summary>The character between fields; a comma by default.</summary>
    [Parameter]
    public char Delimiter { get; set; } = ',';

    /// <summary>Writes the number of rows imported.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Seconds for each round trip of the COPY, 1 to <see cref="LoadTimeout.MaxSeconds"/>; by default the session's.</summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? CommandTimeout { get; set; }

    protected override void ProcessRecord()
    {
        LoadTimeout.Check(this, CommandTimeout, "Nothing was imported.");
        var session = ResolveSession(Session);
        var import = new AequorCsvImport
        {
            Table = Table,
            Columns = Column,
            Header = !NoHeader,
            Delimiter = Delimiter,
            CommandTimeout = CommandTimeout,
        };
        try
        {
            import.Validate();
        }
        catch (AequorConfigurationException refused)
        {
            ThrowInvalidParameter(refused.Message, Table);
        }

        var file = FileSystemPaths.Resolve(this, Path, "imported");
        if (!File.Exists(file))
        {
            ThrowTerminatingError(Errors.Create(ErrorIds.FileNotFound, ErrorCategory.ObjectNotFound,
                $"The file {file} of -Path '{Path}' does not exist: nothing was imported.", Path));
        }

        if (!ShouldProcess(Table, $"Import the rows of {file}"))
        {
            return;
        }

        var source = Open(file);
        AequorImportResult result;
        OperationCanceledException? stopped = null;
        try
        {
            using (session.Listen(this))
            {
                session.CountQuery();
                result = Blocking(
                    (_, token) =>
                    {
                        try
                        {
                            return session.Client.ImportCsv(import, source, token);
                        }
                        catch (OperationCanceledException ex) when (token.IsCancellationRequested)
                        {
                            stopped = ex;
                            throw;
                        }
                    },
                    0);
            }
        }
        catch (PipelineStoppedException) when (stopped is not null)
        {
            // What the engine did about the stop (nothing imported; the connection kept or cut; a transaction aborted)
            // is the host's to hear: a stopped command's output is dropped.
            WarnHostStopped(session, stopped is AequorCopyCancelledException
                ? stopped.Message
                : $"The import into {Table} was cancelled, and nothing was imported.");
            throw;
        }
        catch (Exception ex) when (IsEngineFailure(ex))
        {
            ThrowTerminatingError(Errors.FromException(ex, ErrorIds.TableImportFailed, ErrorCategory.WriteError,
                $"Importing {file} into {Table.Replace("\0", "\\0", StringComparison.Ordinal)} on session '{session.Name}' failed", file, session.Redactor));
            return;
        }
        finally
        {
            source.Dispose();
        }

        WriteVerbose(session.Redactor.Redact(
            $"Session '{session.Name}': {result.Rows} rows of {file} imported into {Table} ({string.Join(", ", result.Columns)}) in {result.Elapsed.TotalSeconds:0.###} s."));
        if (PassThru)
        {
            WriteObject(result.Rows);
        }
    }

    private FileStream Open(string file)
    {
        try
        {
            return new FileStream(file, new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Read, Share = FileShare.Read, BufferSize = 64 * 1024, Options = FileOptions.SequentialScan });
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(Errors.Create(ErrorIds.TableImportFailed, ErrorCategory.ReadError,
                $"The file {file} could not be opened ({ex.Message.TrimEnd('.')}): nothing was imported.", file, ex));
            throw; // not reached
        }
    }
}
