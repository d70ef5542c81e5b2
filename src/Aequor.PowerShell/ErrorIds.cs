namespace Aequor.PowerShell;

/// <summary>The stable ErrorIds of the module's ErrorRecords: scripts match on them, so they never change.</summary>
public static class ErrorIds
{
    public const string NoSession = "AequorNoSession";
    public const string SessionNotFound = "AequorSessionNotFound";
    public const string SessionClosed = "AequorSessionClosed";
    public const string SessionBusy = "AequorSessionBusy";
    public const string SecretTooShort = "AequorSecretTooShort";
    public const string SecretMissing = "AequorSecretMissing";
    public const string ConnectFailed = "AequorConnectFailed";
    public const string InvalidParameter = "AequorInvalidParameter";
    public const string FileNotFound = "AequorFileNotFound";
    public const string QueryFailed = "AequorQueryFailed";
    public const string QueryOutcomeUnknown = "AequorQueryOutcomeUnknown";
    public const string TransactionOpen = "AequorTransactionOpen";
    public const string NoTransaction = "AequorNoTransaction";
    public const string TransactionFailed = "AequorTransactionFailed";
    public const string TransactionLost = "AequorTransactionLost";
    public const string SessionStateLost = "AequorSessionStateLost";
    public const string HeartbeatFailed = "AequorHeartbeatFailed";
    public const string LeaseScanFailed = "AequorLeaseScanFailed";
    public const string NotLeased = "AequorNotLeased";
    public const string ReapFailed = "AequorReapFailed";
    public const string ReapLockBusy = "AequorReapLockBusy";
    public const string DisconnectFailed = "AequorDisconnectFailed";
    public const string TableWriteFailed = "AequorTableWriteFailed";
    public const string TableExportFailed = "AequorTableExportFailed";
    public const string TableImportFailed = "AequorTableImportFailed";
    public const string FileExists = "AequorFileExists";
}
