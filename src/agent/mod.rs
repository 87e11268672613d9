//! Coding agents driven headless. Every adapter reports the same [`AgentOutcome`], so the
//! loop has no agent-specific branches.

pub mod claude;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::process::CancelToken;

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
    /// Wall-clock time.
    #[serde(serialize_with = "crate::events::ser_millis", rename = "duration_ms")]
    pub duration: Duration,
    /// The last lines of its standard error, for diagnosis.
    pub stderr_tail: String,
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
    /// The instruction file this agent reads from the project (`CLAUDE.md`).
    fn instruction_file(&self) -> &'static str;
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

/// Keeps the last `lines` lines of `text`.
pub fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}
