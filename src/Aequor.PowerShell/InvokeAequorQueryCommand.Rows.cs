using System.Collections;
using System.Management.Automation;

namespace Aequor.PowerShell;

/// <summary>
/// Rows piped into a statement (Import-Csv users.csv | Invoke-AequorQuery 'UPDATE users SET email = @email WHERE id = @id'):
/// one statement per row, in order, on the one session, each row bound as -Parameters binds a row; a command per row
/// (ForEach-Object { Invoke-AequorQuery … -Parameters $_ }) costs a command's set-up each time.
/// </summary>
public sealed partial class InvokeAequorQueryCommand
{
    // 1-based, as Write-AequorTableData counts them; 0 while no row is piped.
    private long _rowNumber;
    private bool _rowTextRead;
    private string? _rowText;
    private IDictionary? _rowDictionary;
    private long? _abortedAtRow;
    private bool _transactionLost;
    private long _rowsNotSent;

    /// <summary>Whether the input is rows for the statement: -Query given with input piped, or -File with input piped.</summary>
    private bool IsPerRow =>
        ParameterSetName == RowsSet
        || (ParameterSetName == FileSet && (MyInvocation.ExpectingInput || MyInvocation.BoundParameters.ContainsKey(nameof(InputObject))));

    private void ProcessRow()
    {
        _rowNumber++;
        if (MyInvocation.BoundParameters.ContainsKey(nameof(Parameters)))
        {
            ThrowInvalidParameter(
                "-Parameters was given, and rows are piped in: each piped row gives the values of the statement's @name placeholders. " +
                "Give the values one way, not both: pipe the rows without -Parameters, or give -Parameters without piping. Nothing was sent.");
        }

        if (_abortedAtRow is not null)
        {
            // PostgreSQL refuses every statement of an aborted transaction (25P02): sending them would only repeat that.
            _rowsNotSent++;
            return;
        }

        var text = RowStatementText();
        if (text is null)
        {
            return;
        }

        ThrowIfStreamingHere(_session);
        var input = InputObject is PSObject wrapped ? wrapped.BaseObject : InputObject;
        _row = QueryParameters.RowOf(InputObject);
        _rowDictionary = _row is null ? input as IDictionary : null;
        if (_row is null && _rowDictionary is null)
        {
            ThrowInvalidParameter(NotARow(input), input is string ? input : input?.GetType().FullName);
        }

        try
        {
            _named = _row is not null ? QueryParameters.FromRow(_row, text, QueryParameters.RowSubject) : QueryParameters.From(_rowDictionary, QueryParameters.RowSubject).Named;
        }
        catch (ParameterValueException ex)
        {
            // The row's own problem: nothing of it was sent, and the rows after it are still run.
            WriteError(Errors.Create(ErrorIds.InvalidParameter, ErrorCategory.InvalidData,
                $"Row {_rowNumber} of the input was refused (nothing was sent for it): {ex.Message}", $"row {_rowNumber}"));
            return;
        }

        Run(text);
    }

    /// <summary>The statement, read (a file) and checked once for all the rows; null when it cannot run, its error written once.</summary>
    private string? RowStatementText()
    {
        if (!_rowTextRead)
        {
            _rowTextRead = true;
            var file = ParameterSetName == FileSet ? File : null;
            _sourceFile = file;
            var text = file is null ? Query : ReadFile(file, refuseWildcard: true);
            _rowText = text is not null && IsSendable(text, file) ? text : null;
        }

        return _rowText;
    }

    private string NotARow(object? input)
    {
        var what = input switch
        {
            null => "$null",
            string => "a string",
            _ => $"of type {input.GetType().Name}",
        };
        var advice = input is string
            ? "To run piped SQL text, leave -Query out ('SELECT 1' | Invoke-AequorQuery); to bind piped values, make each a row (... | ForEach-Object { @{ id = $_ } } | Invoke-AequorQuery ...)."
            : "Make it a row of the values the statement needs: ... | Select-Object Name, Length | Invoke-AequorQuery ....";
        var statement = ParameterSetName == FileSet ? "-File is given" : "-Query is given";
        return $"Row {_rowNumber} of the input is {what}, not a row: {statement}, so each piped object is a row (a PSCustomObject, a hashtable or a DataRow) " +
            $"whose properties bind the statement's @name placeholders. Nothing was sent for it. {advice}";
    }

    /// <summary>The names a piped row has, for the error of a placeholder it lacks; never its values.</summary>
    private string RowNames() =>
        _row is not null ? QueryParameters.PropertyNames(_row)
        : _rowDictionary is not null ? string.Join(", ", _rowDictionary.Keys.Cast<object?>().Select(k => Convert.ToString(k, System.Globalization.CultureInfo.InvariantCulture)))
        : string.Empty;

    /// <summary>
    /// A failed row inside a transaction: the server has aborted it (what the engine refuses unsent, it has not), or
    /// the connection was lost with it, so the rows after it are not sent; EndProcessing says how many.
    /// </summary>
    private void NoteRowFailure(Exception ex)
    {
        if (ex is not Aequor.Engine.AequorConfigurationException && _session.InTransaction)
        {
            _abortedAtRow = _rowNumber;
            // Lost, not aborted: an outcome-unknown loss (a batch that may have committed) keeps the general words.
            _transactionLost = ex is Aequor.Engine.AequorTransactionLostException && _session.Client.TransactionLost;
        }
    }

    protected override void EndProcessing()
    {
        if (_rowsNotSent > 0 && _abortedAtRow is { } failed)
        {
            var range = _rowsNotSent == 1 ? $"Row {failed + 1} of the input was" : $"Rows {failed + 1} to {failed + _rowsNotSent} of the input ({_rowsNotSent}) were";
            if (_transactionLost)
            {
                // Not the row's fault, and no row to fix: the engine would refuse each of them with the same loss.
                WriteError(Errors.Create(ErrorIds.TransactionLost, ErrorCategory.OperationStopped,
                    $"{range} not sent: the connection was lost at row {failed} inside the transaction on session '{_session.Name}', which the server rolled back: nothing of it was committed. " +
                    "End it (Undo-AequorTransaction, or ROLLBACK for a transaction begun in SQL), then run all the rows again.", $"row {failed + 1}"));
                return;
            }

            WriteError(Errors.Create(ErrorIds.QueryFailed, ErrorCategory.OperationStopped,
                $"{range} not sent: row {failed} failed inside the transaction on session '{_session.Name}', and PostgreSQL refuses every statement after an error until the transaction ends. " +
                "Undo-AequorTransaction ends it; nothing of it can be committed. Fix that row and run them all again.", $"row {failed + 1}"));
        }
    }
}
