//! Claude Code, headless: `claude -p TASK --output-format json --max-turns N …`.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{
    Agent, AgentError, AgentOutcome, AgentStatus, Binary, Usage, api_error_hint, stderr_suffix,
};
use crate::process::{CancelToken, Stop, tail_lines};

/// How to install Claude Code.
const INSTALL: &str = "npm install -g @anthropic-ai/claude-code";

/// What Claude Code prints when `--dangerously-skip-permissions` meets a root user.
const ROOT_REFUSAL: &str = "cannot be used with root/sudo privileges";

/// How to run Claude Code.
#[derive(Clone, Debug)]
pub struct ClaudeConfig {
    /// The binary: `claude`, or a path.
    pub command: String,
    /// `--max-turns`.
    pub max_turns: u32,
    /// `bypassPermissions` means `--dangerously-skip-permissions`; others go to
    /// `--permission-mode`.
    pub permission_mode: String,
    /// `--allowedTools`, e.g. `Bash(pytest:*)`.
    pub allowed_tools: Vec<String>,
    /// `--model`, where set.
    pub model: Option<String>,
    /// `json` or `stream-json`.
    pub output_format: String,
    /// Passed last, as they are.
    pub extra_args: Vec<String>,
    /// Wall-clock limit for one run.
    pub timeout: Duration,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
}

/// The Claude Code adapter.
pub struct ClaudeCode {
    config: ClaudeConfig,
}

impl ClaudeCode {
    /// An adapter with this configuration.
    pub fn new(config: ClaudeConfig) -> Self {
        Self { config }
    }

    /// The arguments for one run on `task`.
    pub fn args(&self, task: &str) -> Vec<OsString> {
        let c = &self.config;
        // A task that starts with '-' would be read as an option.
        let task = if task.starts_with('-') {
            format!(" {task}")
        } else {
            task.to_string()
        };
        let mut args: Vec<OsString> = vec!["-p".into(), task.into()];
        if !c.allowed_tools.is_empty() {
            // Before the other options: `--allowedTools` takes several values, and the
            // next option ends the list.
            args.push("--allowedTools".into());
            args.push(c.allowed_tools.join(",").into());
        }
        args.push("--output-format".into());
        args.push(c.output_format.clone().into());
        if c.output_format == "stream-json" {
            args.push("--verbose".into());
        }
        args.push("--max-turns".into());
        args.push(c.max_turns.to_string().into());
        if c.permission_mode == "bypassPermissions" {
            args.push("--dangerously-skip-permissions".into());
        } else {
            args.push("--permission-mode".into());
            args.push(c.permission_mode.clone().into());
        }
        if let Some(model) = &c.model {
            args.push("--model".into());
            args.push(model.clone().into());
        }
        args.extend(c.extra_args.iter().map(OsString::from));
        args
    }

    fn binary(&self) -> Binary<'_> {
        Binary {
            command: &self.config.command,
            install: INSTALL,
            setting: "claude.command",
        }
    }
}

impl Agent for ClaudeCode {
    fn name(&self) -> &'static str {
        "claude"
    }

    fn instruction_file(&self) -> &Path {
        Path::new("CLAUDE.md")
    }

    fn check(&self) -> Result<(), AgentError> {
        self.binary().find().map(|_| ())
    }

    fn run(
        &self,
        task: &str,
        project_dir: &Path,
        cancel: &CancelToken,
    ) -> Result<AgentOutcome, AgentError> {
        let output = self.binary().run(
            self.args(task),
            &self.config.env,
            project_dir,
            self.config.timeout,
            cancel,
        )?;
        let result = find_result(&output.stdout);
        let mut outcome = AgentOutcome::new(AgentStatus::Finished, output.duration, &output.stderr);
        if let Some(result) = &result {
            fill_from_result(&mut outcome, result);
        }
        outcome.status = match (output.stop, &result) {
            (Stop::Cancelled, _) => AgentStatus::Interrupted,
            (Stop::TimedOut, _) => AgentStatus::TimedOut,
            (Stop::Exited, Some(result)) => status_of(result),
            (Stop::Exited, None) if output.stderr.contains(ROOT_REFUSAL) => {
                AgentStatus::PermissionRefused {
                    message: format!(
                        "Claude Code refuses --dangerously-skip-permissions (claude.permission_mode: \
                         bypassPermissions) as root. Set `claude.permission_mode: acceptEdits` and list \
                         the shell commands it may run in `claude.allowed_tools` (e.g. \
                         [\"Bash(pytest:*)\"]), run promptloop as a non-root user, or set IS_SANDBOX=1 \
                         if this machine is a disposable sandbox. Claude Code said: {}",
                        tail_lines(&output.stderr, 3).trim()
                    ),
                }
            }
            (Stop::Exited, None) => AgentStatus::Failed {
                reason: format!(
                    "{} without a result object{}",
                    output.exit,
                    stderr_suffix(&output.stderr, 5)
                ),
            },
        };
        Ok(outcome)
    }
}

/// The last `{"type":"result",…}` object on stdout (json prints one; stream-json ends with it).
fn find_result(stdout: &str) -> Option<Value> {
    if let Ok(value) = serde_json::from_str::<Value>(stdout.trim())
        && value.get("type").and_then(Value::as_str) == Some("result")
    {
        return Some(value);
    }
    stdout
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
        .find(|v| v.get("type").and_then(Value::as_str) == Some("result"))
}

fn fill_from_result(outcome: &mut AgentOutcome, result: &Value) {
    outcome.final_message = result
        .get("result")
        .and_then(Value::as_str)
        .map(str::to_string);
    outcome.turns = result
        .get("num_turns")
        .and_then(Value::as_u64)
        .map(|n| n as u32);
    outcome.cost_usd = result.get("total_cost_usd").and_then(Value::as_f64);
    outcome.session_id = result
        .get("session_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(usage) = result.get("usage") {
        let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
        outcome.usage = Some(Usage {
            input_tokens: n("input_tokens")
                + n("cache_creation_input_tokens")
                + n("cache_read_input_tokens"),
            output_tokens: n("output_tokens"),
        });
    }
    if let Some(denials) = result.get("permission_denials").and_then(Value::as_array) {
        outcome.permission_denials = denials
            .iter()
            .map(|d| {
                match (
                    d.get("tool_name").and_then(Value::as_str),
                    d.get("tool_input"),
                ) {
                    (Some(name), Some(input)) => format!("{name} {input}"),
                    _ => d.to_string(),
                }
            })
            .collect();
    }
}

/// Judges a result object by `is_error`, never by `subtype` (API errors say "success").
fn status_of(result: &Value) -> AgentStatus {
    let is_error = result
        .get("is_error")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if !is_error {
        return AgentStatus::Finished;
    }
    let str_of = |k: &str| result.get(k).and_then(Value::as_str).unwrap_or("");
    let errors: Vec<String> = result
        .get("errors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if str_of("terminal_reason") == "max_turns" || str_of("subtype") == "error_max_turns" {
        return AgentStatus::MaxTurns;
    }
    let api_status = result
        .get("api_error_status")
        .and_then(Value::as_u64)
        .map(|s| s as u16);
    let message = if !str_of("result").is_empty() {
        str_of("result").to_string()
    } else if !errors.is_empty() {
        errors.join("; ")
    } else {
        str_of("subtype").to_string()
    };
    if api_status.is_some() || str_of("terminal_reason") == "api_error" {
        return AgentStatus::ApiError {
            http_status: api_status,
            message: format!(
                "{}; Claude Code said: {message}",
                api_error_hint(api_status)
            ),
        };
    }
    AgentStatus::Failed { reason: message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn success_is_judged_by_is_error() {
        let r = json!({"type":"result","subtype":"success","is_error":false,"result":"done",
            "num_turns":3,"total_cost_usd":0.0024,"usage":{"input_tokens":10,"output_tokens":5}});
        assert_eq!(status_of(&r), AgentStatus::Finished);
    }

    #[test]
    fn api_error_with_subtype_success_is_an_api_error() {
        let r = json!({"type":"result","subtype":"success","is_error":true,
            "terminal_reason":"api_error","api_error_status":429,"result":"API Error: 429 rate limited"});
        assert_eq!(
            status_of(&r),
            AgentStatus::ApiError {
                http_status: Some(429),
                message: "rate limit or quota reached (429 Too Many Requests); wait and run \
                          again, or check the account's quota; Claude Code said: API Error: 429 \
                          rate limited"
                    .into()
            }
        );
    }

    #[test]
    fn max_turns_is_recognised() {
        let r = json!({"type":"result","subtype":"error_max_turns","is_error":true,
            "terminal_reason":"max_turns","errors":["Reached maximum number of turns (1)"]});
        assert_eq!(status_of(&r), AgentStatus::MaxTurns);
    }

    #[test]
    fn result_is_found_at_the_end_of_stream_json() {
        let out = "{\"type\":\"system\",\"subtype\":\"init\"}\n{\"type\":\"assistant\"}\n{\"type\":\"result\",\"is_error\":false}\n";
        assert!(find_result(out).is_some());
        assert!(find_result("not json").is_none());
    }

    #[test]
    fn allowed_tools_come_before_other_options() {
        let agent = ClaudeCode::new(ClaudeConfig {
            command: "claude".into(),
            max_turns: 7,
            permission_mode: "acceptEdits".into(),
            allowed_tools: vec!["Bash(pytest:*)".into(), "Edit".into()],
            model: None,
            output_format: "json".into(),
            extra_args: vec!["--verbose".into()],
            timeout: Duration::from_secs(1),
            env: vec![],
        });
        let args: Vec<String> = agent
            .args("-weird task")
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-p",
                " -weird task",
                "--allowedTools",
                "Bash(pytest:*),Edit",
                "--output-format",
                "json",
                "--max-turns",
                "7",
                "--permission-mode",
                "acceptEdits",
                "--verbose"
            ]
        );
    }
}
