namespace Aequor.Engine;

/// <summary>What an import loaded: its rows (the server's count: a row a BEFORE INSERT trigger kept out is not one) and the columns they filled, and how long it took.</summary>
public sealed record AequorImportResult(long Rows, IReadOnlyList<string> Columns, TimeSpan Elapsed);
