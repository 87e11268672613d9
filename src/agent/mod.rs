//! Coding agents driven headless. Every adapter reports the same [`AgentOutcome`], so the
//! loop has no agent-specific branches.

pub mod claude;
pub mod codex;
pub mod command;
pub mod gemini;
pub mod mcp_config;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::process::{self, CancelToken, ProcessOutput, ProcessSpec, SpawnError, tail_lines};

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
    #[serde(serialize_with = "crate::process::ser_millis", rename = "duration_ms")]
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

/// An agent CLI as configured: the command, how to install it, and the config key that names
/// it, so every "not found" says how to fix it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Binary<'a> {
    /// `claude`, or a path.
    pub command: &'a str,
    /// How to install it.
    pub install: &'static str,
    /// The config key that names the binary.
    pub setting: &'static str,
}

impl Binary<'_> {
    /// Finds the binary on PATH (or as a path), or says how to install it.
    pub(crate) fn find(&self) -> Result<PathBuf, AgentError> {
        process::find_program(self.command).ok_or_else(|| AgentError::NotFound {
            program: self.command.to_string(),
            install: self.install,
            setting: self.setting,
        })
    }

    /// Runs the agent headless in `project_dir` (own process group, null stdin, killed at
    /// `timeout` or on Ctrl-C) with `args` and `env` added to the inherited environment.
    pub(crate) fn run(
        &self,
        args: Vec<OsString>,
        env: &[(String, String)],
        project_dir: &Path,
        timeout: Duration,
        cancel: &CancelToken,
    ) -> Result<ProcessOutput, AgentError> {
        let program = self.find()?;
        let mut spec = ProcessSpec::new(program.as_os_str(), project_dir, timeout);
        spec.args = args;
        for (key, value) in env {
            spec = spec.env(key, value);
        }
        process::run(&spec, cancel).map_err(|e| match e {
            SpawnError::NotFound { program } => AgentError::NotFound {
                program,
                install: self.install,
                setting: self.setting,
            },
            SpawnError::Other { program, source } => AgentError::Spawn { program, source },
        })
    }
}

/// `": <last lines of stderr>"`, or nothing when stderr is empty: the tail of a failure reason.
pub(crate) fn stderr_suffix(stderr: &str, lines: usize) -> String {
    match tail_lines(stderr.trim(), lines) {
        s if s.is_empty() => String::new(),
        s => format!(": {s}"),
    }
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
