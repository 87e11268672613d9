//! The user's installed Claude Code as teacher (`teacher.mode: claude-cli`): anyone who can
//! run the agent has a teacher, without an API key of their own.
//!
//! `claude -p --system-prompt <the prompt for the failure type> --tools "" --output-format
//! json --no-session-persistence`, the lesson on standard input (not on the command line,
//! where other users could read it and where its size is limited), in an empty temporary
//! folder so that no project's CLAUDE.md joins the question. No tools: the teacher only reads
//! and answers. Claude Code keeps its own authentication and its own retries on 429/5xx;
//! `teacher.timeout` bounds the whole call.

use std::ffi::OsString;
use std::time::Duration;

use serde_json::Value;

use super::{Lesson, Teacher, TeacherError, TeacherReply};
use crate::failure::FailureContext;
use crate::process::{self, CancelToken, ProcessSpec, SpawnError, Stop};

/// How to run Claude Code as teacher.
#[derive(Clone, Debug)]
pub struct ClaudeCliConfig {
    /// `claude.command`: `claude` or a path.
    pub command: String,
    /// `--model`, where set.
    pub model: Option<String>,
    /// `teacher.timeout`: the whole call.
    pub timeout: Duration,
}

/// The Claude Code teacher.
pub struct ClaudeCliTeacher {
    config: ClaudeCliConfig,
}

impl ClaudeCliTeacher {
    /// A teacher running `config.command`.
    pub fn new(config: ClaudeCliConfig) -> Self {
        Self { config }
    }

    /// The arguments of one question (the lesson itself goes to standard input).
    pub fn args(&self, system: &str) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "-p".into(),
            // `--tools` takes several values; the empty one means none, and the next option
            // ends the list.
            "--tools".into(),
            "".into(),
            "--system-prompt".into(),
            system.into(),
            "--output-format".into(),
            "json".into(),
            "--no-session-persistence".into(),
            "--strict-mcp-config".into(),
        ];
        if let Some(model) = &self.config.model {
            args.push("--model".into());
            args.push(model.into());
        }
        args
    }
}

impl Teacher for ClaudeCliTeacher {
    fn name(&self) -> String {
        format!("claude-cli ({})", self.config.command)
    }

    fn ask(
        &self,
        lesson: &Lesson,
        _failure: &FailureContext,
        follow_up: Option<(&str, &str)>,
        cancel: &CancelToken,
    ) -> Result<TeacherReply, TeacherError> {
        let mut question = lesson.user.clone();
        if let Some((previous, correction)) = follow_up {
            question.push_str(&format!(
                "\n\n# Your previous answer\n\n{previous}\n\n# Correction\n\n{correction}\n"
            ));
        }
        let workdir = tempfile::Builder::new()
            .prefix("promptloop-teacher-")
            .tempdir()
            .map_err(|e| TeacherError::NotConfigured(format!("create a temporary folder: {e}")))?;
        let mut spec = ProcessSpec::new(&self.config.command, workdir.path(), self.config.timeout);
        spec.args = self.args(&lesson.system);
        spec.stdin = Some(question.into_bytes());
        let output = process::run(&spec, cancel).map_err(|e| match e {
            SpawnError::NotFound { program } => TeacherError::NotConfigured(format!(
                "run Claude Code: `{program}` not found (install it, or set claude.command to its path)"
            )),
            other => TeacherError::NotConfigured(super::http::error_chain(&other)),
        })?;
        let place = format!("`{} -p`", self.config.command);
        match output.stop {
            Stop::Cancelled => return Err(TeacherError::Cancelled),
            Stop::TimedOut => {
                return Err(TeacherError::GaveUp {
                    url: place,
                    attempts: 1,
                    last: format!(
                        "no answer within teacher.timeout ({}s)",
                        self.config.timeout.as_secs()
                    ),
                });
            }
            Stop::Exited => {}
        }
        let Some(result) = result_object(&output.stdout) else {
            let stderr = output.stderr.trim();
            return Err(TeacherError::GaveUp {
                url: place,
                attempts: 1,
                last: format!(
                    "it ended with {} and printed no result{}",
                    output.exit,
                    if stderr.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", crate::failure::clip_tail(stderr, 400))
                    }
                ),
            });
        };
        let text = result
            .get("result")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if result.get("is_error").and_then(Value::as_bool) == Some(true) {
            let status = result
                .get("api_error_status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok());
            let message = if text.is_empty() {
                result
                    .get("errors")
                    .map(Value::to_string)
                    .unwrap_or_else(|| "Claude Code reported an error".into())
            } else {
                text
            };
            return Err(match status {
                Some(status @ (400..=404)) => TeacherError::Rejected {
                    url: place,
                    status,
                    message: format!(
                        "{message} (Claude Code could not use its credentials or model: run \
                         `{} -p hello` to check it works, or set teacher.model)",
                        self.config.command
                    ),
                },
                _ => TeacherError::GaveUp {
                    url: place,
                    attempts: 1,
                    last: message,
                },
            });
        }
        Ok(TeacherReply {
            text,
            model: result
                .get("modelUsage")
                .and_then(Value::as_object)
                .and_then(|m| m.keys().next().cloned())
                .or_else(|| self.config.model.clone()),
            input_tokens: result
                .pointer("/usage/input_tokens")
                .and_then(Value::as_u64),
            output_tokens: result
                .pointer("/usage/output_tokens")
                .and_then(Value::as_u64),
        })
    }
}

/// The `{"type":"result",…}` object Claude Code prints last.
fn result_object(stdout: &str) -> Option<Value> {
    stdout
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
        .find(|v| v.get("type").and_then(Value::as_str) == Some("result"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_tools_own_system_prompt_and_json() {
        let t = ClaudeCliTeacher::new(ClaudeCliConfig {
            command: "claude".into(),
            model: Some("sonnet".into()),
            timeout: Duration::from_secs(5),
        });
        let args: Vec<String> = t
            .args("SYSTEM")
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let at = |flag: &str| args.iter().position(|a| a == flag).unwrap();
        assert_eq!(args[at("--tools") + 1], "");
        assert_eq!(args[at("--system-prompt") + 1], "SYSTEM");
        assert_eq!(args[at("--output-format") + 1], "json");
        assert_eq!(args[at("--model") + 1], "sonnet");
        assert_eq!(args[0], "-p");
    }

    #[test]
    fn the_result_line_is_found_among_others() {
        let out =
            "warning: something\n{\"type\":\"result\",\"is_error\":false,\"result\":\"ok\"}\n";
        assert_eq!(result_object(out).unwrap()["result"], "ok");
        assert!(result_object("nothing").is_none());
    }
}
