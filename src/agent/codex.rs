//! OpenAI Codex CLI, headless: `codex exec --json … -- TASK` with stdin closed.
//!
//! `--json` prints one event per line: `thread.started`, `turn.started`, `item.started` /
//! `item.completed` (items `file_change`, `command_execution`, `agent_message`, …),
//! `turn.completed` with `usage`, or `turn.failed` with `error.message` (exit 1). Codex has
//! no turn limit; the timeout bounds a run. `--disable unbounded_connection_retries` keeps an
//! unreachable model server from making it retry forever.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{Agent, AgentError, AgentOutcome, AgentStatus, Binary, Usage, api_error_hint};
use crate::process::{CancelToken, ProcessOutput, Stop, tail_lines};

/// How to install Codex CLI.
const INSTALL: &str = "npm install -g @openai/codex";

/// How to run Codex CLI.
#[derive(Clone, Debug)]
pub struct CodexConfig {
    /// The binary: `codex`, or a path.
    pub command: String,
    /// `-m`, where set.
    pub model: Option<String>,
    /// Passed before the task, as they are (`-c key=value`, `--profile …`).
    pub extra_args: Vec<String>,
    /// Wall-clock limit for one run.
    pub timeout: Duration,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// `CODEX_HOME`, used only when the environment has none.
    pub home: Option<PathBuf>,
}

/// The Codex CLI adapter.
pub struct Codex {
    config: CodexConfig,
}

impl Codex {
    /// An adapter with this configuration.
    pub fn new(config: CodexConfig) -> Self {
        Self { config }
    }

    /// The arguments for one run on `task`.
    pub fn args(&self, task: &str) -> Vec<OsString> {
        let c = &self.config;
        let mut args: Vec<OsString> = [
            "exec",
            "--json",
            // Headless: nobody can answer an approval prompt. Like Claude Code's
            // bypassPermissions, the project's git snapshots are the safety net.
            "--dangerously-bypass-approvals-and-sandbox",
            "--skip-git-repo-check",
            // No session files left behind for runs nobody resumes.
            "--ephemeral",
            "--disable",
            "plugins",
            // Otherwise an unreachable model server makes it retry forever.
            "--disable",
            "unbounded_connection_retries",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        if let Some(model) = &c.model {
            args.push("-m".into());
            args.push(model.into());
        }
        args.extend(c.extra_args.iter().map(OsString::from));
        // After `--` the task is the prompt even when it starts with '-' or names a
        // subcommand such as `review`.
        args.push("--".into());
        args.push(task.into());
        args
    }

    fn binary(&self) -> Binary<'_> {
        Binary {
            command: &self.config.command,
            install: INSTALL,
            setting: "codex.command",
        }
    }
}

impl Agent for Codex {
    fn name(&self) -> &'static str {
        "codex"
    }

    fn instruction_file(&self) -> &Path {
        Path::new("AGENTS.md")
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
        let mut env = Vec::new();
        if let Some(home) = &self.config.home
            && std::env::var_os("CODEX_HOME").is_none()
        {
            env.push(("CODEX_HOME".to_string(), home.display().to_string()));
        }
        env.extend(self.config.env.iter().cloned());
        let output = self.binary().run(
            self.args(task),
            &env,
            project_dir,
            self.config.timeout,
            cancel,
        )?;
        Ok(outcome_of(&output))
    }
}

/// What the JSON lines of one run say.
#[derive(Default)]
struct Events {
    thread_id: Option<String>,
    turn_started: bool,
    completed: bool,
    failed: Option<String>,
    last_error: Option<String>,
    final_message: Option<String>,
    usage: Option<Usage>,
    actions: Vec<String>,
}

fn read_events(stdout: &str) -> Events {
    let mut ev = Events::default();
    for line in stdout.lines() {
        let Ok(value) = serde_json::from_str::<Value>(line.trim()) else {
            continue;
        };
        let str_at =
            |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_str).map(str::to_string);
        match value.get("type").and_then(Value::as_str).unwrap_or("") {
            "thread.started" => ev.thread_id = str_at(&value, "/thread_id"),
            "turn.started" => ev.turn_started = true,
            "turn.completed" => {
                ev.completed = true;
                if let Some(u) = value.get("usage") {
                    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
                    let usage = ev.usage.get_or_insert_with(Usage::default);
                    // Cached input is part of input_tokens already.
                    usage.input_tokens += n("input_tokens");
                    usage.output_tokens += n("output_tokens");
                }
            }
            "turn.failed" => {
                ev.failed = Some(
                    str_at(&value, "/error/message").unwrap_or_else(|| "turn failed".to_string()),
                )
            }
            "error" => ev.last_error = str_at(&value, "/message"),
            "item.completed" => {
                let Some(item) = value.get("item") else {
                    continue;
                };
                match item.get("type").and_then(Value::as_str).unwrap_or("") {
                    "agent_message" => ev.final_message = str_at(item, "/text"),
                    "file_change" => {
                        for change in item
                            .get("changes")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            ev.actions.push(format!(
                                "{} {}",
                                str_at(change, "/kind").unwrap_or_else(|| "change".into()),
                                str_at(change, "/path").unwrap_or_default()
                            ));
                        }
                    }
                    "command_execution" => {
                        let command = str_at(item, "/command").unwrap_or_default();
                        let ended = match item.get("exit_code").and_then(Value::as_i64) {
                            Some(code) => format!("exit {code}"),
                            None => str_at(item, "/status").unwrap_or_default(),
                        };
                        ev.actions.push(format!("ran `{command}` ({ended})"));
                    }
                    "error" => ev.last_error = str_at(item, "/message"),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    ev
}

/// The outcome of one run, from its exit, its JSON lines and its standard error.
fn outcome_of(output: &ProcessOutput) -> AgentOutcome {
    let ev = read_events(&output.stdout);
    let mut outcome = AgentOutcome::new(AgentStatus::Finished, output.duration, &output.stderr);
    outcome.session_id = ev.thread_id.clone();
    outcome.final_message = ev.final_message.clone();
    outcome.usage = ev.usage.clone();
    outcome.actions = ev.actions.clone();
    outcome.status = match output.stop {
        Stop::Cancelled => AgentStatus::Interrupted,
        Stop::TimedOut => AgentStatus::TimedOut,
        Stop::Exited => match (&ev.failed, ev.completed) {
            (Some(message), _) => failure_status(message),
            (None, true) if output.exit.success() => AgentStatus::Finished,
            (None, _) if !ev.turn_started => AgentStatus::StartFailed {
                message: format!(
                    "Codex CLI ended ({}) before starting a turn; check codex.extra_args, \
                     codex.model and its config.toml{}",
                    output.exit,
                    said(ev.last_error.as_deref().unwrap_or(&output.stderr))
                ),
            },
            (None, _) => AgentStatus::Failed {
                reason: format!(
                    "Codex CLI ended ({}) without finishing its turn{}",
                    output.exit,
                    said(ev.last_error.as_deref().unwrap_or(&output.stderr))
                ),
            },
        },
    };
    outcome
}

/// ": it said …" with the last lines of `text`, or nothing.
fn said(text: &str) -> String {
    match tail_lines(text.trim(), 3) {
        s if s.is_empty() => String::new(),
        s => format!("; it said: {s}"),
    }
}

/// `turn.failed` means the model could not be used: a status error, a connection that
/// never came up, a missing key.
fn failure_status(message: &str) -> AgentStatus {
    let lower = message.to_ascii_lowercase();
    let status = http_status(message).or_else(|| {
        // A 4xx body is printed as it came: {"error": {"type": "invalid_request_error", …}}.
        serde_json::from_str::<Value>(message)
            .ok()
            .and_then(|v| {
                v.pointer("/error/type")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .and_then(|t| match t.as_str() {
                "invalid_request_error" => Some(400),
                "authentication_error" | "invalid_api_key" => Some(401),
                "rate_limit_exceeded" | "insufficient_quota" => Some(429),
                _ => None,
            })
    });
    let hint = if status.is_some() {
        api_error_hint(status)
    } else if lower.contains("connection failed")
        || lower.contains("error sending request")
        || lower.contains("stream disconnected")
    {
        "could not reach the model server; check the network and the provider's base_url"
    } else if lower.contains("missing environment variable") {
        "the API key is not set; export the variable the provider's env_key names"
    } else if lower.contains("usage limit") || lower.contains("quota") {
        api_error_hint(Some(429))
    } else {
        api_error_hint(None)
    };
    AgentStatus::ApiError {
        http_status: status,
        message: format!("{hint}; Codex CLI said: {}", message.trim()),
    }
}

/// The HTTP status in Codex's error texts: `last status: 429 Too Many Requests`,
/// `unexpected status 401 Unauthorized: …`.
fn http_status(message: &str) -> Option<u16> {
    let at = message.find("status")? + "status".len();
    let rest = message[at..].trim_start_matches([':', ' ']);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse::<u16>()
        .ok()
        .filter(|s| (100..=599).contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Exit;

    fn output(stdout: &str, stderr: &str, exit: i32, stop: Stop) -> ProcessOutput {
        ProcessOutput {
            exit: Exit::Code(exit),
            stop,
            stdout: stdout.into(),
            stderr: stderr.into(),
            duration: Duration::from_millis(500),
        }
    }

    // Recorded from codex-cli 0.169.0 against a Responses server on loopback.
    const SUCCESS: &str = r#"{"type":"thread.started","thread_id":"01a20f7e-60a8-7320-be85-f1fd4060aa52"}
{"type":"turn.started"}
{"type":"item.started","item":{"id":"item_0","type":"file_change","changes":[{"path":"/tmp/p/app.txt","kind":"update"}],"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_0","type":"file_change","changes":[{"path":"/tmp/p/app.txt","kind":"update"}],"status":"completed"}}
{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"python3 -m pytest -q","aggregated_output":"1 failed","exit_code":1,"status":"failed"}}
{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"Done editing."}}
{"type":"turn.completed","usage":{"input_tokens":200,"cached_input_tokens":20,"cache_write_input_tokens":0,"output_tokens":40,"reasoning_output_tokens":0}}
"#;

    #[test]
    fn a_completed_turn_is_finished_with_message_usage_and_actions() {
        let o = outcome_of(&output(
            SUCCESS,
            "Reading additional input from stdin...\n",
            0,
            Stop::Exited,
        ));
        assert_eq!(o.status, AgentStatus::Finished);
        assert_eq!(o.final_message.as_deref(), Some("Done editing."));
        assert_eq!(
            o.usage,
            Some(Usage {
                input_tokens: 200,
                output_tokens: 40
            })
        );
        assert_eq!(
            o.session_id.as_deref(),
            Some("01a20f7e-60a8-7320-be85-f1fd4060aa52")
        );
        assert_eq!(
            o.actions,
            [
                "update /tmp/p/app.txt",
                "ran `python3 -m pytest -q` (exit 1)"
            ]
        );
        assert_eq!(o.turns, None, "Codex does not report turns");
    }

    #[test]
    fn rate_limit_is_an_api_error_429() {
        let stdout = r#"{"type":"thread.started","thread_id":"t"}
{"type":"turn.started"}
{"type":"error","message":"exceeded retry limit, last status: 429 Too Many Requests"}
{"type":"turn.failed","error":{"message":"exceeded retry limit, last status: 429 Too Many Requests"}}
"#;
        let o = outcome_of(&output(stdout, "", 1, Stop::Exited));
        let AgentStatus::ApiError {
            http_status,
            message,
        } = &o.status
        else {
            panic!("{:?}", o.status)
        };
        assert_eq!(*http_status, Some(429));
        assert!(
            message.starts_with("rate limit or quota reached"),
            "{message}"
        );
        assert!(message.contains("last status: 429"), "{message}");
        assert!(!o.status.worked_on_task());
    }

    #[test]
    fn auth_error_is_an_api_error_401() {
        let stdout = r#"{"type":"thread.started","thread_id":"t"}
{"type":"turn.started"}
{"type":"error","message":"Reconnecting... 1/5 (unexpected status 401 Unauthorized: bad key, url: http://127.0.0.1:9/v1/responses)"}
{"type":"turn.failed","error":{"message":"unexpected status 401 Unauthorized: bad key, url: http://127.0.0.1:9/v1/responses"}}
"#;
        let o = outcome_of(&output(stdout, "", 1, Stop::Exited));
        assert!(
            matches!(&o.status, AgentStatus::ApiError { http_status: Some(401), message } if message.contains("refused the credentials")),
            "{:?}",
            o.status
        );
    }

    #[test]
    fn a_raw_error_body_and_connection_failures_are_api_errors() {
        let o = failure_status(
            r#"{"error": {"message": "fake error 400", "type": "invalid_request_error", "code": null}}"#,
        );
        assert!(
            matches!(
                o,
                AgentStatus::ApiError {
                    http_status: Some(400),
                    ..
                }
            ),
            "{o:?}"
        );
        let o = failure_status("Connection failed: error sending request");
        assert!(
            matches!(&o, AgentStatus::ApiError { http_status: None, message } if message.contains("could not reach")),
            "{o:?}"
        );
        let o = failure_status("Missing environment variable: `FAKE_KEY`.");
        assert!(
            matches!(&o, AgentStatus::ApiError { http_status: None, message } if message.contains("API key is not set")),
            "{o:?}"
        );
    }

    #[test]
    fn exits_without_a_turn_timeouts_and_interrupts() {
        let o = outcome_of(&output(
            "",
            "error: unexpected argument '--bogus' found\n",
            2,
            Stop::Exited,
        ));
        assert!(
            matches!(&o.status, AgentStatus::StartFailed { message } if message.contains("--bogus")),
            "{:?}",
            o.status
        );
        let started =
            "{\"type\":\"thread.started\",\"thread_id\":\"t\"}\n{\"type\":\"turn.started\"}\n";
        let o = outcome_of(&output(started, "", 101, Stop::Exited));
        assert!(
            matches!(o.status, AgentStatus::Failed { .. }),
            "{:?}",
            o.status
        );
        assert_eq!(
            outcome_of(&output(started, "", -1, Stop::TimedOut)).status,
            AgentStatus::TimedOut
        );
        assert_eq!(
            outcome_of(&output(started, "", -1, Stop::Cancelled)).status,
            AgentStatus::Interrupted
        );
    }

    #[test]
    fn args_put_the_task_after_a_double_dash() {
        let agent = Codex::new(CodexConfig {
            command: "codex".into(),
            model: Some("gpt-5.5".into()),
            extra_args: vec!["-c".into(), "model_provider=fake".into()],
            timeout: Duration::from_secs(1),
            env: vec![],
            home: None,
        });
        let args: Vec<String> = agent
            .args("--review this")
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args[..2], ["exec", "--json"]);
        assert!(args.contains(&"unbounded_connection_retries".to_string()));
        assert_eq!(
            args[args.len() - 6..],
            [
                "-m",
                "gpt-5.5",
                "-c",
                "model_provider=fake",
                "--",
                "--review this"
            ]
        );
    }
}
