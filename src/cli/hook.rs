//! `promptloop hook claude` (Claude Code's hook protocol: JSON on stdin, a decision on
//! stdout) and `promptloop hook install` (adds the hooks to `.claude/settings.json`).
//!
//! On `Stop` the project's tests run; when they fail the failures are captured and either
//! learned from, or kept and handed back to the agent with `{"decision": "block"}` so it goes
//! on and fixes them (`hooks.stop: learn | block | off`). A session already continued by a
//! block is never blocked twice in a row: its failures are learned from instead, so a task the
//! agent cannot finish does not loop. `PostToolUseFailure` events are kept for the session and
//! given to the teacher as context; `SessionEnd` removes them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::capture::{Captured, failure_context, learn_one, settings_for};
use super::{EXIT_FAILED, EXIT_USAGE, Failure, finish, framework};
use crate::process::CancelToken;
use crate::record::{self, Record};
use crate::settings::{Overrides, StopAction};
use crate::store::{FailureStatus, StoredFailure};
use crate::testing::{self, TestOutcome, TestSpec};

/// The part of a hook command that marks it as ours (for idempotent installs).
const MARKER: &str = "hook claude";
/// Hook input larger than this is refused (a transcript is passed by path, not inline).
const MAX_INPUT: u64 = 4 << 20;
/// Tool failures kept per session.
const MAX_TOOL_FAILURES: usize = 20;

pub(crate) const AFTER_HELP: &str = "\
Examples:
  promptloop hook install               # add the hooks to ./.claude/settings.json
  promptloop hook install --dry-run     # print the settings it would write
  echo '{\"hook_event_name\":\"Stop\",\"cwd\":\".\"}' | promptloop hook claude

On Stop the project's tests (tests.command) run. hooks.stop decides what a failure does:
learn (capture it and learn a rule; the default), block (capture it, keep it pending for
`promptloop learn`, and make Claude go on and fix it; a second Stop in a row learns instead of
blocking again) or off.";

/// `promptloop hook …`
#[derive(Debug, Subcommand)]
pub(crate) enum HookCommand {
    /// Handle one Claude Code hook event (JSON on stdin); Claude Code runs this.
    Claude(ClaudeHookArgs),
    /// Add promptloop's hooks to the project's .claude/settings.json (idempotent).
    Install(InstallArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ClaudeHookArgs {
    /// The config file (default: promptloop.yaml in the session's directory, then the user's).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// What a failing Stop does: learn, block or off (overrides hooks.stop).
    #[arg(long, value_name = "ACTION")]
    on_stop: Option<String>,
    /// The teacher: auto, anthropic (alias local), offline (overrides teacher.mode).
    #[arg(short, long, value_name = "MODE")]
    teacher: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct InstallArgs {
    /// The project whose .claude/settings.json gets the hooks.
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// The command Claude Code runs (default: this promptloop binary, `hook claude`).
    #[arg(long, value_name = "CMD")]
    command: Option<String>,
    /// A config file the hook passes on with --config.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the resulting settings instead of writing them.
    #[arg(long)]
    dry_run: bool,
}

/// Runs `promptloop hook …`.
pub(crate) fn hook(command: HookCommand) -> ExitCode {
    match command {
        HookCommand::Claude(args) => claude_hook(args),
        HookCommand::Install(args) => finish(install(args)),
    }
}

/// What Claude Code sends on stdin (the fields promptloop uses).
#[derive(Debug, Default)]
struct HookInput {
    event: String,
    session_id: String,
    transcript_path: Option<PathBuf>,
    cwd: Option<PathBuf>,
    stop_hook_active: bool,
    last_assistant_message: Option<String>,
    raw: Value,
}

fn read_input() -> Result<HookInput, String> {
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_INPUT)
        .read_to_string(&mut text)
        .map_err(|e| format!("read the hook input: {e}"))?;
    let raw: Value =
        serde_json::from_str(&text).map_err(|e| format!("read the hook input: not JSON ({e})"))?;
    let s = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(HookInput {
        event: s("hook_event_name").unwrap_or_default(),
        session_id: s("session_id").unwrap_or_else(|| "unknown".into()),
        transcript_path: s("transcript_path").map(PathBuf::from),
        cwd: s("cwd").map(PathBuf::from),
        stop_hook_active: raw
            .get("stop_hook_active")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        last_assistant_message: s("last_assistant_message"),
        raw,
    })
}

/// A hook must never break the agent's session: errors go to stderr with a non-blocking
/// exit code (1), and only a deliberate decision is printed on stdout.
fn claude_hook(args: ClaudeHookArgs) -> ExitCode {
    match claude_hook_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("promptloop hook: {}", f.message);
            // Exit 2 would block the agent with our error; anything else is shown only.
            ExitCode::from(if f.code == EXIT_USAGE { 1 } else { f.code })
        }
    }
}

fn claude_hook_inner(args: ClaudeHookArgs) -> Result<(), Failure> {
    let input = read_input().map_err(Failure::usage)?;
    let project_dir = input
        .cwd
        .clone()
        .or_else(|| std::env::var_os("CLAUDE_PROJECT_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."));
    let project_dir = super::project_dir(&project_dir)?;
    let mut loaded = settings_for(args.config.as_deref(), &project_dir)?;
    loaded.settings.apply(&Overrides {
        teacher_mode: args.teacher.clone(),
        ..Overrides::default()
    })?;
    let action = match &args.on_stop {
        Some(a) => StopAction::parse(a).map_err(|m| Failure::usage(format!("--on-stop: {m}")))?,
        None => loaded.settings.hooks.stop,
    };
    match input.event.as_str() {
        "Stop" | "SubagentStop" if action != StopAction::Off => {
            on_stop(&input, action, &loaded, &project_dir)
        }
        "PostToolUseFailure" => keep_tool_failure(&input, &project_dir),
        "SessionEnd" => {
            let _ = std::fs::remove_file(session_log(&project_dir, &input.session_id));
            Ok(())
        }
        _ => Ok(()),
    }
}

fn on_stop(
    input: &HookInput,
    action: StopAction,
    loaded: &crate::settings::Loaded,
    project_dir: &Path,
) -> Result<(), Failure> {
    let settings = &loaded.settings;
    let cancel = CancelToken::new();
    let command = settings.tests.command.clone();
    let spec = TestSpec {
        framework: framework(settings, &command, project_dir),
        command,
        timeout: settings.tests.timeout,
        junit_report: settings.tests.report.clone(),
    };
    let run = testing::run_tests(&spec, project_dir, &cancel).map_err(|e| Failure {
        message: format!("{e:#}"),
        code: EXIT_FAILED,
    })?;
    if matches!(run.outcome, TestOutcome::Passed | TestOutcome::NoTests) {
        return Ok(());
    }
    let captured = Captured::from_run(run);
    let task = input.transcript_path.as_deref().and_then(first_user_prompt);
    let agent_message = input.last_assistant_message.clone().or_else(|| {
        input
            .transcript_path
            .as_deref()
            .and_then(last_assistant_text)
    });
    let id = format!("{}-hook", record::new_id());
    let mut failure = failure_context(&captured, task.as_deref(), project_dir, agent_message, &id);
    failure.source = format!("claude-hook:{}", failure.source);
    failure.context = session_tool_failures(project_dir, &input.session_id);
    let block = action == StopAction::Block && !input.stop_hook_active;
    if block {
        // Kept for `promptloop learn`; the agent gets the failures now.
        let record = Record::open_with(project_dir, &loaded.settings.store)
            .map_err(|e| Failure::usage(e.to_string()))?;
        let fingerprints = crate::fingerprint::of_context(&failure);
        record
            .save_failure(&StoredFailure {
                status: FailureStatus::Pending,
                context: failure,
                last_error: Some("kept by the Stop hook, which asked the agent to fix it".into()),
                tries: 0,
                rule: None,
                rules_file: None,
                teacher: None,
                teacher_answer: None,
                fingerprints,
                recurrences: 0,
                last_recurrence: None,
                recurrence_of: None,
            })
            .map_err(|e| Failure::usage(e.to_string()))?;
        let decision = json!({
            "decision": "block",
            "reason": block_reason(&captured),
        });
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{decision}");
        return Ok(());
    }
    // Events are collected, not printed: Claude Code reads stdout as the hook's answer.
    let mut events: Vec<crate::events::Event> = Vec::new();
    let learned = learn_one(loaded, project_dir, failure, &mut events, &cancel)?;
    let rule = events.iter().find_map(|e| match e {
        crate::events::Event::RuleLearned { rule, .. } => Some(rule.rule.clone()),
        _ => None,
    });
    let message = if let (true, Some(rule)) = (learned, rule) {
        format!(
            "promptloop: {} failing test(s) captured; rule learned: {rule}",
            captured.failing.len().max(1)
        )
    } else {
        format!(
            "promptloop: {} failing test(s) captured; kept pending for `promptloop learn`",
            captured.failing.len().max(1)
        )
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", json!({ "systemMessage": message }));
    Ok(())
}

fn block_reason(run: &Captured) -> String {
    let mut reason = format!("The project's tests fail (`{}`). ", run.command);
    match &run.report {
        Some(report) if !report.failures.is_empty() => {
            reason.push_str("Fix these before finishing:\n");
            for f in report.failures.iter().take(10) {
                let place = match (&f.file, f.line) {
                    (Some(file), Some(line)) => format!(" ({file}:{line})"),
                    _ => String::new(),
                };
                reason.push_str(&format!(
                    "- {}{place}: {}\n",
                    f.id,
                    f.message.lines().next().unwrap_or("")
                ));
            }
            if report.failures.len() > 10 {
                reason.push_str(&format!("… and {} more\n", report.failures.len() - 10));
            }
        }
        _ => {
            reason.push_str("Run them, read the output and fix the failures before finishing:\n");
            reason.push_str(&crate::failure::clip_tail(&run.summary, 2000));
        }
    }
    reason
}

fn session_log(project_dir: &Path, session_id: &str) -> PathBuf {
    let safe: String = session_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    project_dir
        .join(crate::store::DIR_NAME)
        .join("sessions")
        .join(format!("{safe}.jsonl"))
}

fn keep_tool_failure(input: &HookInput, project_dir: &Path) -> Result<(), Failure> {
    let path = session_log(project_dir, &input.session_id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::usage(format!("create {}: {e}", dir.display())))?;
    }
    let entry = json!({
        "tool_name": input.raw.get("tool_name"),
        "tool_input": input.raw.get("tool_input"),
        "error": input.raw.get("error"),
    });
    let line = format!("{entry}\n");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| Failure::usage(format!("append to {}: {e}", path.display())))
}

/// The session's failed tool calls, as context for the teacher.
fn session_tool_failures(project_dir: &Path, session_id: &str) -> Option<String> {
    let text = std::fs::read_to_string(session_log(project_dir, session_id)).ok()?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return None;
    }
    let start = lines.len().saturating_sub(MAX_TOOL_FAILURES);
    let mut out = format!(
        "Tool calls that failed during the session ({} in all):\n",
        lines.len()
    );
    for line in &lines[start..] {
        let v: Value = serde_json::from_str(line).unwrap_or_default();
        let tool = v.get("tool_name").and_then(Value::as_str).unwrap_or("?");
        let error = v.get("error").map(|e| match e {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        out.push_str(&format!(
            "- {tool}: {}\n",
            crate::failure::clip(error.as_deref().unwrap_or(""), 300)
        ));
    }
    Some(out)
}

/// The first prompt the user typed, from a Claude Code transcript (JSON lines).
fn first_user_prompt(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("type").and_then(Value::as_str) == Some("user"))
        .find_map(|v| message_text(v.get("message")?))
}

/// The agent's last text, from a Claude Code transcript.
fn last_assistant_text(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("type").and_then(Value::as_str) == Some("assistant"))
        .filter_map(|v| message_text(v.get("message")?))
        .next_back()
}

fn message_text(message: &Value) -> Option<String> {
    let content = message.get("content")?;
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => return None,
    };
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn install(args: InstallArgs) -> Result<u8, Failure> {
    let project_dir = super::project_dir(&args.project_dir)?;
    let command = match args.command {
        Some(c) => c,
        None => {
            let exe = std::env::current_exe()
                .map_err(|e| Failure::usage(format!("find the promptloop binary: {e}")))?;
            let mut c = format!("{} hook claude", shell_word(&exe.display().to_string()));
            if let Some(config) = &args.config {
                let config = super::capture::absolute(config);
                c.push_str(&format!(
                    " --config {}",
                    shell_word(&config.display().to_string())
                ));
            }
            c
        }
    };
    let path = project_dir.join(".claude").join("settings.json");
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => json!({}),
        Ok(text) => serde_json::from_str::<Value>(&text).map_err(|e| {
            Failure::usage(format!(
                "{} is not valid JSON ({e}); fix it first, nothing was changed",
                path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(Failure::usage(format!("read {}: {e}", path.display()))),
    };
    let (updated, added) = with_hooks(existing, &command)?;
    let text = serde_json::to_string_pretty(&updated).unwrap_or_default() + "\n";
    if args.dry_run {
        print!("{text}");
        return Ok(0);
    }
    if added.is_empty() {
        println!("promptloop's hooks are already in {}", path.display());
        return Ok(0);
    }
    write_atomic(&path, &text)?;
    println!(
        "added promptloop's {} hook{} to {}",
        added.join(", "),
        if added.len() == 1 { "" } else { "s" },
        path.display()
    );
    Ok(0)
}

/// The settings with our hook under each event that lacks it, and the events it was added to.
fn with_hooks(mut settings: Value, command: &str) -> Result<(Value, Vec<&'static str>), Failure> {
    let not_object = |what: &str| {
        Failure::usage(format!(
            ".claude/settings.json: `{what}` is not a JSON object; nothing was changed"
        ))
    };
    let root = settings
        .as_object_mut()
        .ok_or_else(|| not_object("(top level)"))?;
    let hooks = root.entry("hooks").or_insert_with(|| json!({}));
    let hooks = hooks.as_object_mut().ok_or_else(|| not_object("hooks"))?;
    let mut added = Vec::new();
    for event in ["Stop", "PostToolUseFailure", "SessionEnd"] {
        let list = hooks.entry(event).or_insert_with(|| json!([]));
        let list = list.as_array_mut().ok_or_else(|| not_object(event))?;
        let present = list.iter().any(|group| {
            group
                .get("hooks")
                .and_then(Value::as_array)
                .is_some_and(|hs| {
                    hs.iter().any(|h| {
                        h.get("command")
                            .and_then(Value::as_str)
                            .is_some_and(|c| c.contains(MARKER) && c.contains("promptloop"))
                    })
                })
        });
        if present {
            continue;
        }
        let mut entry = json!({"type": "command", "command": command});
        if event == "Stop" {
            // The tests run inside the hook: give them time (Claude Code's default is 60 s).
            entry["timeout"] = json!(600);
        }
        list.push(json!({"hooks": [entry]}));
        added.push(event);
    }
    Ok((settings, added))
}

fn write_atomic(path: &Path, text: &str) -> Result<(), Failure> {
    let dir = path
        .parent()
        .ok_or_else(|| Failure::usage(format!("{} has no parent folder", path.display())))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::usage(format!("create {}: {e}", dir.display())))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".settings.json.")
        .tempfile_in(dir)
        .map_err(|e| Failure::usage(format!("write in {}: {e}", dir.display())))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Failure::usage(format!("write {}: {e}", path.display())))?;
    // Keep the file's permissions when replacing it.
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(path)
        .map_err(|e| Failure::usage(format!("replace {}: {e}", path.display())))?;
    Ok(())
}

fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_keeps_other_settings_and_is_idempotent() {
        let before = json!({
            "permissions": {"allow": ["Bash(npm test)"]},
            "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]},
            "model": "opus"
        });
        let Ok((after, added)) = with_hooks(before.clone(), "/bin/promptloop hook claude") else {
            panic!("with_hooks failed");
        };
        assert_eq!(added, ["Stop", "PostToolUseFailure", "SessionEnd"]);
        assert_eq!(after["permissions"], before["permissions"]);
        assert_eq!(after["model"], "opus");
        let stop = after["hooks"]["Stop"].as_array().unwrap();
        assert_eq!(stop.len(), 2);
        assert_eq!(stop[0]["hooks"][0]["command"], "notify-send done");
        assert_eq!(stop[1]["hooks"][0]["timeout"], 600);
        // Key order is kept: the user's keys first, as they were.
        let keys: Vec<&String> = after.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["permissions", "hooks", "model"]);
        let Ok((again, added)) = with_hooks(after.clone(), "/other/promptloop hook claude") else {
            panic!("with_hooks failed");
        };
        assert!(added.is_empty());
        assert_eq!(again, after);
        assert!(with_hooks(json!([1]), "x").is_err());
        assert!(with_hooks(json!({"hooks": {"Stop": {}}}), "x").is_err());
    }

    #[test]
    fn transcript_gives_task_and_last_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(
            &path,
            concat!(
                "{\"type\":\"summary\"}\n",
                "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"Fix the calculator\"}}\n",
                "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"name\":\"Read\"}]}}\n",
                "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"Done.\"}]}}\n",
            ),
        )
        .unwrap();
        assert_eq!(
            first_user_prompt(&path).as_deref(),
            Some("Fix the calculator")
        );
        assert_eq!(last_assistant_text(&path).as_deref(), Some("Done."));
    }
}
