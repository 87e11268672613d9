//! Teachers: LLMs (or an offline heuristic) that turn a failure into a rule.

pub mod anthropic;
pub mod claude_cli;
pub mod http;
pub mod offline;
pub mod openai;
pub mod prompt;
pub mod webhook;

use serde::Serialize;

use crate::failure::FailureContext;
use crate::process::CancelToken;
use crate::rules::format::{self, Rule};
pub use prompt::Lesson;

/// What a teacher answered.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TeacherReply {
    /// The answer text (analysis and rule).
    pub text: String,
    /// The model that answered, where known.
    pub model: Option<String>,
    /// Input tokens, where known.
    pub input_tokens: Option<u64>,
    /// Output tokens, where known.
    pub output_tokens: Option<u64>,
}

/// A teacher that could not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum TeacherError {
    /// The teacher is not set up (no API key, no URL).
    #[error("use the teacher: {0}")]
    NotConfigured(String),
    /// The server refused our credentials or the model; retrying cannot help.
    #[error("get an answer from {url}: HTTP {status}: {message}")]
    Rejected {
        /// Where we asked.
        url: String,
        /// The status.
        status: u16,
        /// The server's message, with a hint.
        message: String,
    },
    /// Retryable errors went on until the deadline or the retry limit.
    #[error("get an answer from {url} after {attempts} tries: {last}")]
    GaveUp {
        /// Where we asked.
        url: String,
        /// Tries made.
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// The answer was not the protocol's shape.
    #[error("read the teacher's answer: {0}")]
    BadResponse(String),
    /// The user pressed Ctrl-C.
    #[error("ask the teacher: interrupted")]
    Cancelled,
}

/// Something that answers a [`Lesson`].
pub trait Teacher {
    /// Name for messages and records: `anthropic (claude-sonnet-4-5)`.
    fn name(&self) -> String;
    /// Sends the lesson (and, on a retry, the follow-up) and returns the answer.
    fn ask(
        &self,
        lesson: &Lesson,
        failure: &FailureContext,
        follow_up: Option<(&str, &str)>,
        cancel: &CancelToken,
    ) -> Result<TeacherReply, TeacherError>;
}

/// Why no rule came out of a failure.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// The teacher failed.
    #[error(transparent)]
    Teacher(#[from] TeacherError),
    /// The teacher answered twice without a usable rule.
    #[error("read a rule from the teacher's answer (asked twice): {0}")]
    NoRule(String),
}

/// A rule and the answer it came from.
#[derive(Clone, Debug)]
pub struct Learned {
    /// The rule.
    pub rule: Rule,
    /// The final answer.
    pub reply: TeacherReply,
}

/// Asks `teacher` for a rule; an answer without one is asked again once.
pub fn learn(
    teacher: &dyn Teacher,
    lesson: &Lesson,
    failure: &FailureContext,
    cancel: &CancelToken,
) -> Result<Learned, LearnError> {
    let reply = teacher.ask(lesson, failure, None, cancel)?;
    let problem = match format::parse_answer(&reply.text) {
        Ok(rule) => return Ok(Learned { rule, reply }),
        Err(e) => e.to_string(),
    };
    let correction = prompt::correction(&problem);
    let second = teacher.ask(lesson, failure, Some((&reply.text, &correction)), cancel)?;
    match format::parse_answer(&second.text) {
        Ok(rule) => Ok(Learned {
            rule,
            reply: second,
        }),
        Err(e) => Err(LearnError::NoRule(e.to_string())),
    }
}
