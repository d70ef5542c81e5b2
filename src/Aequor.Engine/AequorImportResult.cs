namespace Aequor.Engine;

/// <summary>What an import loaded: its rows (the header line not counted) and the columns they filled, and how long it took.</summary>
public sealed record AequorImportResult(long Rows, IReadOnlyList<string> Columns, TimeSpan Elapsed);
