namespace Aequor.Engine;

/// <summary>The fields of a server error (an ErrorResponse) beyond SQLSTATE and message, as plain values.</summary>
public sealed record ServerErrorFacts
{
    public string? Detail { get; init; }

    public string? Hint { get; init; }

    /// <summary>1-based character position in the statement text, when the server named one.</summary>
    public int? Position { get; init; }

    /// <summary>The call stack context (PL/pgSQL function and line), when the server gave one.</summary>
    public string? Where { get; init; }

    public string? SchemaName { get; init; }

    public string? TableName { get; init; }

    public string? ColumnName { get; init; }

    public string? ConstraintName { get; init; }
}
