using System.Collections;
using System.Data;
using System.Diagnostics;
using System.Management.Automation;
using Aequor.Engine;

namespace Aequor.PowerShell;

/// <summary>
/// Loads the rows piped in into a table with one COPY … FROM STDIN: begun at the first row, each row sent as it
/// comes (never buffered), finished at the end of the pipeline. All rows are written or none. -WhatIf sends nothing
/// and says, once, how many rows would be written where; -Confirm asks once, at the first row, before the COPY.
/// </summary>
[Cmdlet(VerbsCommunications.Write, "AequorTableData", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(long))]
public sealed class WriteAequorTableDataCommand : AequorCmdlet
{
    private AequorSession _session = null!;
    private AequorTableWriter? _writer;
    private IDisposable? _listening;
    private long _inputRows;

    // Decided at the first row, before anything is sent: false under -WhatIf (told at the end, with the count) or when
    // -Confirm was answered no; the rows are then only counted.
    private bool? _approved;
    private long _startedAt;

    // Without -Column: the table's columns left out of the COPY, so that a later row holding one is refused, not emptied.
    private HashSet<string>? _columnsLeftOut;

    /// <summary>table, schema.table, or with double-quoted parts ("My Table").</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Table { get; set; } = string.Empty;

    /// <summary>A row: a PSCustomObject, a hashtable or dictionary, a DataRow; or rows: a DataTable, an array or list of rows.</summary>
    [Parameter(Mandatory = true, ValueFromPipeline = true)]
    [AllowNull]
    public object? InputObject { get; set; }

    /// <summary>The columns to fill, by name (any case); by default the table's columns the first row has.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? Column { get; set; }

    /// <summary>A session, or its name.</summary>
    [Parameter]
    [SessionTransformation]
    [ArgumentCompleter(typeof(SessionNameCompleter))]
    public AequorSession? Session { get; set; }

    /// <summary>Writes the number of rows written.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Seconds for each round trip of the COPY, 1 to <see cref="LoadTimeout.MaxSeconds"/>; by default the session's.</summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? CommandTimeout { get; set; }

    protected override void BeginProcessing()
    {
        LoadTimeout.Check(this, CommandTimeout, "Nothing was sent.");
        _session = ResolveSession(Session);
    }

    protected override void ProcessRecord() => Take(InputObject);

    /// <summary>
    /// One input: a row, or rows. -InputObject $rows binds the whole array as one object (only the pipeline unrolls
    /// it), so a collection given there is written element by element, as piped; a row is never a collection.
    /// </summary>
    private void Take(object? input)
    {
        switch (input is PSObject wrapped ? wrapped.BaseObject : input)
        {
            case null:
                return;
            case DataTable table:
                foreach (DataRow row in table.Rows)
                {
                    Take(row);
                }

                return;
            // Deleted from its DataTable (still in Rows until AcceptChanges): no row any more, and its values cannot be read.
            case DataRow { RowState: DataRowState.Deleted }:
                return;
            // A collection, not any IEnumerable: an XmlElement (a row of $xml.rows.row) enumerates its child nodes.
            case ICollection items and not (IDictionary or byte[]):
                foreach (var item in items)
                {
                    Take(item);
                }

                return;
            default:
                WriteOne(input!);
                return;
        }
    }

    private void WriteOne(object row)
    {
        _inputRows++;
        var bag = RowBag.Of(row);
        if (bag is null)
        {
            Fail(new AequorConfigurationException($"Row {_inputRows} is a {TypeName(row)}, not a row: pipe objects with properties (Import-Csv, [pscustomobject]), hashtables or DataRows. Nothing was written."));
            return;
        }

        _approved ??= !WhatIfOnly && ShouldProcess(Target, "Write the rows piped in, in one COPY (all of them or none)");
        if (_approved is false)
        {
            return;
        }

        if (_writer is null)
        {
            Open(bag);
        }

        var writer = _writer!;
        if (_columnsLeftOut is { Count: > 0 } leftOut && _inputRows > 1)
        {
            foreach (var name in bag.Names)
            {
                if (leftOut.Contains(name))
                {
                    Fail(new AequorConfigurationException(
                        $"Row {_inputRows} has the property '{name}', a column of the table {Table} that the first row did not have: the COPY fills only the first row's columns ({string.Join(", ", writer.Columns)}), and its value would be lost. Name the columns with -Column, or give every row the same properties. Nothing was written."));
                    return;
                }
            }
        }

        var values = new object?[writer.Columns.Count];
        for (var i = 0; i < values.Length; i++)
        {
            try
            {
                values[i] = bag.TryGet(writer.Columns[i], out var value) ? Plain(value) : null;
            }
            catch (GetValueException ex)
            {
                // A script property's getter threw: its bare error named neither the row nor that the load was undone.
                Fail(new AequorConfigurationException($"Row {_inputRows}, column '{writer.Columns[i]}': the property could not be read ({ex.Message}). Nothing was written."));
                return;
            }
        }

        try
        {
            // Ctrl+C while the row is sent to a server that reads no more (a lock, a slow trigger) stops the COPY on the server.
            writer.WriteRow(values, StopToken);
        }
        catch (AequorCopyCancelledException ex) when (StopToken.IsCancellationRequested)
        {
            // The writer has ended the COPY.
            _writer = null;
            EndCall();
            throw Stopped(ex);
        }
        catch (Exception ex) when (IsEngineFailure(ex))
        {
            Fail(ex);
        }
    }

    // How a stopped load ended, as the engine said it: Blocking turns its exception into PipelineStoppedException.
    private AequorCopyCancelledException? _stopCause;

    private T KeepingStopCause<T>(Func<T> call)
    {
        try
        {
            return call();
        }
        catch (AequorCopyCancelledException ex)
        {
            _stopCause = ex;
            throw;
        }
    }

    /// <summary>
    /// Stopped (Ctrl+C) while the server held the load up: the engine ended the COPY, and says how (nothing written,
    /// the connection kept or closed, an open transaction aborted or lost). PowerShell takes no output from a stopped
    /// command, so that is told to the host directly, as a warning, unless warnings are silenced; then the stop goes on.
    /// </summary>
    private PipelineStoppedException Stopped(AequorCopyCancelledException ex)
    {
        WarnStopped(ex.Message);
        return new PipelineStoppedException();
    }

    private void WarnStopped(string what) => WarnHostStopped(_session, what);

    private void Open(RowBag first)
    {
        ThrowIfStreamingHere(_session);
        _startedAt = Stopwatch.GetTimestamp();
        _listening = _session.Listen(this);
        _session.CountQuery();
        IReadOnlyList<string> Choose(IReadOnlyList<string> tableColumns)
        {
            if (Column is { } asked)
            {
                return ChooseAsked(tableColumns, asked);
            }

            var chosen = new List<string>();
            var ignored = new List<string>();
            foreach (var name in first.Names)
            {
                var match = MatchColumn(tableColumns, name);
                if (match is null)
                {
                    ignored.Add(name);
                }
                else if (!chosen.Contains(match))
                {
                    chosen.Add(match);
                }
            }

            if (chosen.Count == 0)
            {
                throw new AequorConfigurationException(
                    $"None of the first row's properties ({string.Join(", ", first.Names)}) is a column of the table {Table}; its columns: {string.Join(", ", tableColumns)}. Nothing was written.");
            }

            _columnsLeftOut = new HashSet<string>(tableColumns, StringComparer.OrdinalIgnoreCase);
            _columnsLeftOut.ExceptWith(chosen);
            if (ignored.Count > 0)
            {
                PostVerbose($"Properties that are no column of {Table} that rows can fill (generated columns are computed), ignored: {string.Join(", ", ignored)}.");
            }

            return chosen;
        }

        try
        {
            _writer = Blocking((_, token) => KeepingStopCause(() => _session.Client.OpenTableWriter(Table, Choose, CommandTimeout, token)), 0);
        }
        catch (PipelineStoppedException) when (_stopCause is { } stopped)
        {
            throw Stopped(stopped);
        }
        catch (Exception ex) when (IsEngineFailure(ex))
        {
            FailOpening(ex);
        }

        // Until the COPY ends the session is busy: a query on it further up or down this pipeline would wait for ever.
        _session.BeginStreaming($"loading rows into {_writer!.Table} (Write-AequorTableData)");
        WriteVerbose(_session.Redactor.Redact($"Session '{_session.Name}': COPY into {_writer!.Table} ({string.Join(", ", _writer.Columns)}) begun."));
    }

    /// <summary>
    /// No rows came: the table and -Column are checked all the same, so a misspelt name fails the run that has it,
    /// not the first one that brings rows. Nothing is written (no COPY: one of no rows would fire statement triggers).
    /// </summary>
    private void CheckTableWithoutRows()
    {
        ThrowIfStreamingHere(_session);
        IReadOnlyList<string> tableColumns;
        using (_session.Listen(this))
        {
            try
            {
                tableColumns = Blocking((_, token) => _session.Client.ReadTableColumns(Table, token), 0);
            }
            catch (Exception ex) when (IsEngineFailure(ex))
            {
                Fail(ex);
                return;
            }
        }

        if (Column is { } asked)
        {
            try
            {
                _ = ChooseAsked(tableColumns, asked);
            }
            catch (AequorConfigurationException ex)
            {
                FailOpening(ex);
            }
        }
    }

    // The -Column name that is no column of the table, for its error's target; set by ChooseAsked as it refuses it.
    private string? _unknownColumn;

    /// <summary>
    /// -Column matched to the table's columns, in its order; refused, nothing sent, when a name is none of them or a
    /// column is named twice (COPY would refuse it with 42701, aborting an open transaction over a repeated name).
    /// </summary>
    private List<string> ChooseAsked(IReadOnlyList<string> tableColumns, string[] asked)
    {
        var chosen = new List<string>();
        foreach (var name in asked)
        {
            var match = MatchColumn(tableColumns, name);
            if (match is null)
            {
                _unknownColumn = name;
                throw new AequorConfigurationException(
                    $"-Column '{name}' is no column of the table {Table} that rows can fill (a generated column is computed by the server); its columns: {string.Join(", ", tableColumns)}. Nothing was written.");
            }

            if (chosen.Contains(match))
            {
                throw new AequorConfigurationException($"-Column names the column '{match}' twice ('{name}'): name each column once. Nothing was written.");
            }

            chosen.Add(match);
        }

        return chosen;
    }

    /// <summary>A table's column by name: the same case first, then any case.</summary>
    private static string? MatchColumn(IReadOnlyList<string> tableColumns, string name) =>
        tableColumns.FirstOrDefault(c => string.Equals(c, name, StringComparison.Ordinal))
        ?? tableColumns.FirstOrDefault(c => string.Equals(c, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>A COPY that could not begin: an unknown -Column is the parameter's error, anything else the load's.</summary>
    private void FailOpening(Exception ex)
    {
        if (_unknownColumn is { } unknown)
        {
            ThrowInvalidParameter(ex.Message, unknown);
        }

        Fail(ex);
    }

    /// <summary>
    /// -WhatIf given, or $WhatIfPreference set: rows are streamed, so the question cannot wait for the count, and the
    /// one what-if message (naming the table and the count, as PowerShell's own commands say what they would do) is
    /// written at the end. Nothing reaches the server: not the rows, nor the check of the table and -Column.
    /// </summary>
    private bool WhatIfOnly =>
        MyInvocation.BoundParameters.TryGetValue("WhatIf", out var given)
            ? LanguagePrimitives.IsTrue(given)
            : LanguagePrimitives.IsTrue(GetVariableValue("WhatIfPreference"));

    private string Target => $"table {Table} on session '{_session.Name}'";

    protected override void EndProcessing()
    {
        if (WhatIfOnly)
        {
            _ = ShouldProcess(Target, _inputRows == 1 ? "Write 1 row" : $"Write {_inputRows} rows");
            return;
        }

        if (_approved is false)
        {
            return;
        }

        if (_writer is not { } writer)
        {
            if (_inputRows == 0)
            {
                CheckTableWithoutRows();
            }

            if (PassThru)
            {
                WriteObject(0L);
            }

            return;
        }

        long rows;
        try
        {
            // Ctrl+C while the server is still inserting the rows (a slow trigger, a big index) sends it a cancel request.
            rows = Blocking((w, token) => KeepingStopCause(() => w.Complete(token)), writer);
        }
        catch (PipelineStoppedException) when (_stopCause is { } stopped)
        {
            _writer = null;
            EndCall();
            throw Stopped(stopped);
        }
        catch (Exception ex) when (IsEngineFailure(ex))
        {
            _writer = null;
            EndCall();
            Fail(ex);
            return;
        }
        finally
        {
            if (_writer is not null)
            {
                // Stopped: the writer has ended either way.
                _writer = null;
                EndCall();
            }
        }

        WriteVerbose($"Session '{_session.Name}': {rows} rows written into {writer.Table} in {Stopwatch.GetElapsedTime(_startedAt).TotalSeconds:0.###} s.");
        if (PassThru)
        {
            WriteObject(rows);
        }
    }

    private void EndCall()
    {
        _session.EndStreaming();
        _listening?.Dispose();
        _listening = null;
    }

    /// <summary>Cancels the COPY (nothing written) and stops the command with the error.</summary>
    private void Fail(Exception ex)
    {
        if (_writer is { } writer)
        {
            _writer = null;
            writer.Dispose();
            EndCall();
        }

        ThrowTerminatingError(Errors.FromException(ex, ErrorIds.TableWriteFailed, ErrorCategory.WriteError,
            $"Writing rows into {Table.Replace("\0", "\\0", StringComparison.Ordinal)} on session '{_session.Name}' failed", Table, _session.Redactor));
    }

    /// <summary>A value as the engine takes it: no PSObject wrappers, also not inside arrays.</summary>
    private static object? Plain(object? value)
    {
        if (ReferenceEquals(value, System.Management.Automation.Internal.AutomationNull.Value))
        {
            // What a variable holds after a command that wrote nothing ($x = Get-Thing finding none): NULL, as in
            // -Parameters; unwrapped, it read as an empty PSCustomObject and the row was refused for it.
            return null;
        }

        value = value is PSObject pso ? pso.BaseObject : value;
        return value switch
        {
            string or byte[] or char[] or IDictionary => value,
            Array { Rank: > 1 } grid => PlainGrid(grid),
            IEnumerable items => items.Cast<object?>().Select(Plain).ToArray(),
            _ => value,
        };
    }

    /// <summary>An [int[,]] (any rank above 1) kept in its shape, which enumerating it would flatten.</summary>
    private static Array PlainGrid(Array grid)
    {
        var lengths = Enumerable.Range(0, grid.Rank).Select(grid.GetLength).ToArray();
        var plain = Array.CreateInstance(typeof(object), lengths);
        var index = new int[lengths.Length];
        foreach (var item in grid)
        {
            plain.SetValue(Plain(item), index);

            // Row-major, as an array enumerates: the last index turns fastest.
            for (var d = index.Length - 1; d >= 0 && ++index[d] == lengths[d]; d--)
            {
                index[d] = d > 0 ? 0 : index[d];
            }
        }

        return plain;
    }

    private static string TypeName(object row) => (row is PSObject pso ? pso.BaseObject : row).GetType().FullName ?? "value";

    /// <summary>
    /// Stopped (Ctrl+C), or a command up or down the pipeline threw: PowerShell disposes the command without
    /// EndProcessing, and the COPY is cancelled here, so nothing is written.
    /// </summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing && _writer is { } writer)
        {
            _writer = null;
            try
            {
                writer.Dispose();
            }
#pragma warning disable CA1031 // Disposing must not throw; the server rolls back an unfinished COPY regardless.
            catch (Exception)
#pragma warning restore CA1031
            {
            }

            EndCall();
            // Stopping, not only the token: the pipeline thread may dispose the command before the stopping thread
            // has called its StopProcessing.
            if (Stopping || StopToken.IsCancellationRequested)
            {
                // Stopped between two rows: the same words as a stop inside one, which the engine gives.
                var client = _session.Client;
                var transaction = client.TransactionLost ? " The transaction it ran in is lost: the server rolls it back."
                    : client.TransactionAborted ? " The transaction it ran in is aborted: roll it back."
                    : string.Empty;
                WarnStopped($"The COPY into {writer.Table} was cancelled ({writer.RowsWritten} rows sent), and nothing was written.{transaction}");
            }
        }

        base.Dispose(disposing);
    }

    /// <summary>A row's properties by name, any case.</summary>
    private sealed class RowBag
    {
        private readonly Func<string, (bool Found, object? Value)> _get;

        private RowBag(IReadOnlyList<string> names, Func<string, (bool, object?)> get)
        {
            Names = names;
            _get = get;
        }

        public IReadOnlyList<string> Names { get; }

        public bool TryGet(string name, out object? value)
        {
            (var found, value) = _get(name);
            return found;
        }

        public static RowBag? Of(object row)
        {
            var pso = row as PSObject;
            var baseObject = pso?.BaseObject ?? row;
            switch (baseObject)
            {
                case IDictionary dictionary:
                    var keys = dictionary.Keys.Cast<object>().Select(k => k.ToString() ?? string.Empty).ToList();
                    return new RowBag(keys, name =>
                    {
                        if (dictionary.Contains(name))
                        {
                            return (true, dictionary[name]);
                        }

                        var key = dictionary.Keys.Cast<object>().FirstOrDefault(k => string.Equals(k.ToString(), name, StringComparison.OrdinalIgnoreCase));
                        return key is null ? (false, null) : (true, dictionary[key]);
                    });
                case DataRow dataRow:
                    var columns = dataRow.Table.Columns.Cast<DataColumn>().Select(c => c.ColumnName).ToList();
                    return new RowBag(columns, name => dataRow.Table.Columns.Contains(name) ? (true, dataRow[name]) : (false, null));
                case string or ValueType:
                    return null;
            }

            var obj = pso ?? PSObject.AsPSObject(row);
            var names = obj.Properties.Where(p => p.IsGettable).Select(p => p.Name).ToList();
            return new RowBag(names, name => obj.Properties[name] is { IsGettable: true } p ? (true, p.Value) : (false, null));
        }
    }
}
