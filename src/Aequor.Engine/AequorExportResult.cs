namespace Aequor.Engine;

/// <summary>What an export wrote: its rows (the header line not counted) and characters, and how long it took.</summary>
public sealed record AequorExportResult(long Rows, long Characters, TimeSpan Elapsed);
