//! Coding agents driven headless. Every adapter reports the same [`AgentOutcome`], so the
//! loop has no agent-specific branches.

pub mod claude;
pub mod codex;
pub mod command;
pub mod gemini;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::process::{self, CancelToken, SpawnError};

/// How an agent's run on a task ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AgentStatus {
    /// It says it finished the task.
    Finished,
    /// It ended with an error of its own (a crash, a non-zero exit, unreadable output).
    Failed {
        /// What went wrong, in words.
        reason: String,
    },
    /// It used up its turn limit.
    MaxTurns,
    /// We stopped it at its timeout.
    TimedOut,
    /// The model's API answered with an error (rate limit, auth, overload).
    ApiError {
        /// HTTP status where the agent said it.
        http_status: Option<u16>,
        /// The agent's message.
        message: String,
    },
    /// The agent refused to start with the permission settings it was given.
    PermissionRefused {
        /// The agent's message and what to do about it.
        message: String,
    },
    /// The agent stopped before working on the task: its login, configuration or
    /// arguments are not usable.
    StartFailed {
        /// The agent's message and what to do about it.
        message: String,
    },
    /// The user pressed Ctrl-C.
    Interrupted,
}

impl AgentStatus {
    /// Whether the agent did real work on the task, so the tests and the teacher have
    /// something to judge. Infrastructure errors are not the agent's mistakes.
    pub fn worked_on_task(&self) -> bool {
        matches!(
            self,
            AgentStatus::Finished
                | AgentStatus::Failed { .. }
                | AgentStatus::MaxTurns
                | AgentStatus::TimedOut
        )
    }

    /// A short phrase for humans: "finished", "hit max turns", …
    pub fn describe(&self) -> String {
        match self {
            AgentStatus::Finished => "finished".into(),
            AgentStatus::Failed { reason } => format!("failed: {reason}"),
            AgentStatus::MaxTurns => "hit its max turns".into(),
            AgentStatus::TimedOut => "timed out".into(),
            AgentStatus::ApiError {
                http_status: Some(s),
                message,
            } => format!("model API error {s}: {message}"),
            AgentStatus::ApiError {
                http_status: None,
                message,
            } => format!("model API error: {message}"),
            AgentStatus::PermissionRefused { message } => format!("refused to start: {message}"),
            AgentStatus::StartFailed { message } => format!("could not start: {message}"),
            AgentStatus::Interrupted => "interrupted".into(),
        }
    }
}

/// Token counts an agent reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Input tokens (cache reads and writes included where the agent splits them).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

/// What one agent run produced.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentOutcome {
    /// How it ended.
    #[serde(flatten)]
    pub status: AgentStatus,
    /// The agent's final message, where it gave one.
    pub final_message: Option<String>,
    /// Turns used, where the agent says.
    pub turns: Option<u32>,
    /// Cost in US dollars, where the agent says.
    pub cost_usd: Option<f64>,
    /// Tokens, where the agent says.
    pub usage: Option<Usage>,
    /// Tool uses the agent's permission settings denied.
    pub permission_denials: Vec<String>,
    /// The agent's session id, where it has one.
    pub session_id: Option<String>,
    /// What it did, where it says: files it changed, commands it ran and how they ended.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub actions: Vec<String>,
    /// Wall-clock time.
    #[serde(serialize_with = "crate::events::ser_millis", rename = "duration_ms")]
    pub duration: Duration,
    /// The last lines of its standard error, for diagnosis.
    pub stderr_tail: String,
}

impl AgentOutcome {
    /// An outcome with the given status and nothing else known yet.
    pub fn new(status: AgentStatus, duration: Duration, stderr: &str) -> Self {
        Self {
            status,
            final_message: None,
            turns: None,
            cost_usd: None,
            usage: None,
            permission_denials: Vec::new(),
            session_id: None,
            actions: Vec::new(),
            duration,
            stderr_tail: tail_lines(stderr, 20),
        }
    }
}

/// An agent that could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Its binary is missing.
    #[error(
        "find the agent `{program}`: not on PATH; install it with `{install}` or set `{setting}`"
    )]
    NotFound {
        /// The command that was looked for.
        program: String,
        /// How to install it.
        install: &'static str,
        /// The config key that names the binary.
        setting: &'static str,
    },
    /// The program an `agent.command` template starts is missing.
    #[error(
        "find `{program}`, the program `{setting}` starts: not on PATH; install it or fix `{setting}`"
    )]
    CommandNotFound {
        /// The program.
        program: String,
        /// The config key that holds the command.
        setting: &'static str,
    },
    /// It could not be started for another reason.
    #[error("start the agent `{program}`")]
    Spawn {
        /// The command.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A coding agent CLI that can work on a task headless.
pub trait Agent {
    /// Short name: `claude`.
    fn name(&self) -> &'static str;
    /// The instruction file this agent reads from the project (`CLAUDE.md`), relative to
    /// the project directory unless absolute.
    fn instruction_file(&self) -> &Path;
    /// Checks that the agent can be started (binary present), before any work begins.
    fn check(&self) -> Result<(), AgentError>;
    /// Runs the agent on `task` in `project_dir` until it ends, times out or is cancelled.
    fn run(
        &self,
        task: &str,
        project_dir: &Path,
        cancel: &CancelToken,
    ) -> Result<AgentOutcome, AgentError>;
}

/// What a user can do about an HTTP error status from the model's API.
pub fn api_error_hint(status: Option<u16>) -> &'static str {
    match status {
        Some(401) => {
            "the model server refused the credentials (401 Unauthorized); check the API key or login the agent uses"
        }
        Some(403) => {
            "the model server denied access (403 Forbidden); check the key's permissions and the model name"
        }
        Some(404) => {
            "the model server does not know the model or endpoint (404); check the model name and base URL"
        }
        Some(429) => {
            "rate limit or quota reached (429 Too Many Requests); wait and run again, or check the account's quota"
        }
        Some(400) => "the model server rejected the request (400 Bad Request)",
        Some(s) if s >= 500 => "the model server failed or is overloaded; try again later",
        Some(_) => "the model server answered with an error",
        None => "the model's API failed",
    }
}

/// The error for a program that could not be started, naming how to install it.
pub(crate) fn spawn_error(
    error: SpawnError,
    install: &'static str,
    setting: &'static str,
) -> AgentError {
    match error {
        SpawnError::NotFound { program } => AgentError::NotFound {
            program,
            install,
            setting,
        },
        SpawnError::Other { program, source } => AgentError::Spawn { program, source },
    }
}

/// Finds `command` on PATH (or as a path), or says how to install it.
pub(crate) fn find(
    command: &str,
    install: &'static str,
    setting: &'static str,
) -> Result<PathBuf, AgentError> {
    process::find_program(command).ok_or_else(|| AgentError::NotFound {
        program: command.to_string(),
        install,
        setting,
    })
}

/// The last complete JSON value in `text` that starts at the beginning of a line and
/// satisfies `wanted`: agents print their result objects (one line or pretty-printed) after
/// other output.
pub(crate) fn last_json_object(
    text: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    let starts = text
        .match_indices('{')
        .map(|(i, _)| i)
        .filter(|&i| i == 0 || text[..i].ends_with('\n') || text[..i].ends_with("] "));
    let mut found = None;
    for start in starts {
        let mut stream =
            serde_json::Deserializer::from_str(&text[start..]).into_iter::<serde_json::Value>();
        if let Some(Ok(value)) = stream.next()
            && wanted(&value)
        {
            found = Some(value);
        }
    }
    found
}

/// Keeps the last `lines` lines of `text`.
pub fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}
