using System;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Host;
using System.Security;
namespace AequorTest {
public sealed class RecordingHost : PSHost {
    private readonly RecordingUI _ui = new RecordingUI();
    public List<string> Warnings => _ui.Warnings;
    public List<string> Lines => _ui.Lines;
    public List<string> Prompts => _ui.Prompts;
    public int Answer { get => _ui.Answer; set => _ui.Answer = value; }
    public Queue<int> Answers => _ui.Answers;
    public override string Name => "RecordingHost";
    public override Version Version => new Version(1, 0);
    public override Guid InstanceId { get; } = Guid.NewGuid();
    public override PSHostUserInterface UI => _ui;
    public override CultureInfo CurrentCulture => CultureInfo.InvariantCulture;
    public override CultureInfo CurrentUICulture => CultureInfo.InvariantCulture;
    public override void EnterNestedPrompt() { }
    public override void ExitNestedPrompt() { }
    public override void NotifyBeginApplication() { }
    public override void NotifyEndApplication() { }
    public override void SetShouldExit(int exitCode) { }
}
public sealed class RecordingUI : PSHostUserInterface {
    public readonly List<string> Warnings = new List<string>();
    public readonly List<string> Lines = new List<string>();
    public override PSHostRawUserInterface RawUI => null;
    public int Answer = -1;
    public readonly Queue<int> Answers = new Queue<int>();
    public readonly List<string> Prompts = new List<string>();
    public override int PromptForChoice(string caption, string message, Collection<ChoiceDescription> choices, int defaultChoice) {
        Prompts.Add(message);
        return Answers.Count > 0 ? Answers.Dequeue() : Answer >= 0 ? Answer : defaultChoice;
    }
    public override Dictionary<string, PSObject> Prompt(string caption, string message, Collection<FieldDescription> descriptions) => throw new NotSupportedException();
    public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName) => throw new NotSupportedException();
    public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName, PSCredentialTypes allowedCredentialTypes, PSCredentialUIOptions options) => throw new NotSupportedException();
    public override string ReadLine() => string.Empty;
    public override SecureString ReadLineAsSecureString() => new SecureString();
    public override void Write(string value) { }
    public override void Write(ConsoleColor foregroundColor, ConsoleColor backgroundColor, string value) { }
    public override void WriteLine(string value) { lock (Lines) { Lines.Add(value); } }
    public override void WriteErrorLine(string value) { }
    public override void WriteDebugLine(string message) { }
    public override void WriteProgress(long sourceId, ProgressRecord record) { }
    public override void WriteVerboseLine(string message) { }
    public override void WriteWarningLine(string message) { lock (Warnings) { Warnings.Add(message); } }
}
}
