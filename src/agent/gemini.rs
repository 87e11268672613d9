//! Google Gemini CLI, headless: `gemini -p TASK --output-format json --yolo --skip-trust`.
//!
//! On success stdout holds one object `{"session_id", "response", "stats"}`. On failure stdout
//! is empty and stderr ends with `{"session_id", "error": {"type", "message", "code"}}`; an
//! API error's HTTP status is folded into the exit code (status % 256: 429 → 173), other
//! fatal errors have codes of their own (41 auth, 42 input, 52 config, 53 turn limit).

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{
    Agent, AgentError, AgentOutcome, AgentStatus, Binary, Usage, api_error_hint, last_json_object,
};
use crate::process::{CancelToken, Exit, ProcessOutput, Stop, tail_lines};

/// How to install Gemini CLI.
const INSTALL: &str = "npm install -g @google/gemini-cli";

/// Gemini CLI's exit code when `model.maxSessionTurns` is reached.
const EXIT_TURN_LIMIT: i32 = 53;

/// How to run Gemini CLI.
#[derive(Clone, Debug)]
pub struct GeminiConfig {
    /// The binary: `gemini`, or a path.
    pub command: String,
    /// `-m`, where set.
    pub model: Option<String>,
    /// Passed last, as they are.
    pub extra_args: Vec<String>,
    /// Wall-clock limit for one run.
    pub timeout: Duration,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
}

/// The Gemini CLI adapter.
pub struct Gemini {
    config: GeminiConfig,
}

impl Gemini {
    /// An adapter with this configuration.
    pub fn new(config: GeminiConfig) -> Self {
        Self { config }
    }

    /// The arguments for one run on `task`.
    pub fn args(&self, task: &str) -> Vec<OsString> {
        let c = &self.config;
        // `--prompt=TASK` keeps a task that starts with '-' a value.
        let mut args: Vec<OsString> = vec![
            format!("--prompt={task}").into(),
            "--output-format".into(),
            "json".into(),
            // Headless: nobody can approve a tool call, and the project folder may not be
            // in the user's trusted folders yet.
            "--yolo".into(),
            "--skip-trust".into(),
        ];
        if let Some(model) = &c.model {
            args.push("-m".into());
            args.push(model.into());
        }
        args.extend(c.extra_args.iter().map(OsString::from));
        args
    }

    fn binary(&self) -> Binary<'_> {
        Binary {
            command: &self.config.command,
            install: INSTALL,
            setting: "gemini.command",
        }
    }
}

impl Agent for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn instruction_file(&self) -> &Path {
        Path::new("GEMINI.md")
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
        Ok(outcome_of(&output))
    }
}

fn outcome_of(output: &ProcessOutput) -> AgentOutcome {
    let result = last_json_object(&output.stdout, |v| {
        v.get("response").is_some() || v.get("error").is_some()
    });
    let error = result
        .as_ref()
        .and_then(|r| r.get("error").cloned())
        .or_else(|| {
            last_json_object(&output.stderr, |v| {
                v.get("error").is_some_and(Value::is_object)
            })
            .and_then(|v| v.get("error").cloned())
        });
    // The error report repeats on stderr; keep what is left readable.
    let mut outcome = AgentOutcome::new(AgentStatus::Finished, output.duration, &output.stderr);
    if let Some(result) = &result {
        fill_from_result(&mut outcome, result);
    }
    let code = match output.exit {
        Exit::Code(c) => Some(c),
        Exit::Signal(_) => None,
    };
    outcome.status = match output.stop {
        Stop::Cancelled => AgentStatus::Interrupted,
        Stop::TimedOut => AgentStatus::TimedOut,
        Stop::Exited => status_of(code, result.as_ref(), error.as_ref(), &output.stderr),
    };
    outcome
}

fn fill_from_result(outcome: &mut AgentOutcome, result: &Value) {
    outcome.final_message = result
        .get("response")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    outcome.session_id = result
        .get("session_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let models = result.pointer("/stats/models").and_then(Value::as_object);
    if let Some(models) = models {
        let mut usage = Usage::default();
        let mut requests = 0;
        for model in models.values() {
            let n = |ptr: &str| model.pointer(ptr).and_then(Value::as_u64).unwrap_or(0);
            usage.input_tokens += n("/tokens/input").max(n("/tokens/prompt"));
            usage.output_tokens += n("/tokens/candidates");
            requests += n("/api/totalRequests");
        }
        outcome.usage = Some(usage);
        // One model request per turn of the conversation.
        outcome.turns = u32::try_from(requests).ok().filter(|n| *n > 0);
    }
    if let Some(tools) = result
        .pointer("/stats/tools/byName")
        .and_then(Value::as_object)
    {
        for (name, stats) in tools {
            let n = |k: &str| stats.get(k).and_then(Value::as_u64).unwrap_or(0);
            outcome
                .actions
                .push(format!("{name} ×{} ({} failed)", n("count"), n("fail")));
        }
    }
}

fn status_of(
    code: Option<i32>,
    result: Option<&Value>,
    error: Option<&Value>,
    stderr: &str,
) -> AgentStatus {
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::trim)
        .map(str::to_string)
        .unwrap_or_else(|| tail_lines(stderr.trim(), 3));
    let error_type = error
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let error_code = error
        .and_then(|e| e.get("code"))
        .and_then(Value::as_i64)
        .and_then(|c| i32::try_from(c).ok());
    if code == Some(0) && error.is_none() {
        let warnings: Vec<&str> = result
            .and_then(|r| r.get("warnings"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(w) = warnings.iter().find(|w| w.contains("Loop detected")) {
            return AgentStatus::Failed {
                reason: format!("Gemini CLI stopped the agent: {w}"),
            };
        }
        return AgentStatus::Finished;
    }
    if code == Some(EXIT_TURN_LIMIT) || error_type == "FatalTurnLimitedError" {
        return AgentStatus::MaxTurns;
    }
    // An HTTP status travels in error.code and, modulo 256, in the exit code.
    if let (Some(status), Some(code)) = (error_code, code)
        && (400..=599).contains(&status)
        && status % 256 == code
    {
        let status = status as u16;
        return AgentStatus::ApiError {
            http_status: Some(status),
            message: format!(
                "{}; Gemini CLI said: {message}",
                api_error_hint(Some(status))
            ),
        };
    }
    let said = |hint: &str| format!("{hint}; Gemini CLI said: {message}");
    match code {
        Some(41) => AgentStatus::StartFailed {
            message: said(
                "Gemini CLI has no usable login: set security.auth.selectedType in \
                 ~/.gemini/settings.json (\"gemini-api-key\" with GEMINI_API_KEY exported), \
                 or run `gemini` once to log in",
            ),
        },
        Some(42) => AgentStatus::StartFailed {
            message: said("Gemini CLI rejected its arguments; check gemini.extra_args"),
        },
        Some(44) => AgentStatus::StartFailed {
            message: said("Gemini CLI could not set up its sandbox"),
        },
        Some(52) => AgentStatus::StartFailed {
            message: said("Gemini CLI's configuration is invalid; check ~/.gemini/settings.json"),
        },
        Some(55) => AgentStatus::StartFailed {
            message: said("Gemini CLI does not trust the project folder"),
        },
        _ if message.contains("fetch failed") => AgentStatus::ApiError {
            http_status: None,
            message: said(
                "could not reach the model server; check the network and GOOGLE_GEMINI_BASE_URL",
            ),
        },
        Some(c) => AgentStatus::Failed {
            reason: format!("exit code {c}: {message}"),
        },
        None => AgentStatus::Failed {
            reason: format!("killed by a signal: {message}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(stdout: &str, stderr: &str, exit: i32) -> ProcessOutput {
        ProcessOutput {
            exit: Exit::Code(exit),
            stop: Stop::Exited,
            stdout: stdout.into(),
            stderr: stderr.into(),
            duration: Duration::from_millis(500),
        }
    }

    // Recorded from gemini-cli 0.61.0 against a streamGenerateContent server on loopback.
    const SUCCESS: &str = r#"{
  "session_id": "7638d8b7-9738-4473-8620-57679a9c9d93",
  "response": "Done editing.",
  "stats": {
    "models": {
      "gemini-2.5-pro": {
        "api": { "totalRequests": 2, "totalErrors": 0, "totalLatencyMs": 134, "errorsByType": {} },
        "tokens": { "input": 200, "prompt": 200, "candidates": 40, "total": 240, "cached": 0, "thoughts": 0, "tool": 0 }
      }
    },
    "tools": {
      "totalCalls": 1, "totalSuccess": 1, "totalFail": 0,
      "byName": { "replace": { "count": 1, "success": 1, "fail": 0, "durationMs": 25 } }
    },
    "files": { "totalLinesAdded": 1, "totalLinesRemoved": 1 }
  }
}"#;

    const NOISE: &str = "Warning: 256-color support not detected.\nYOLO mode is enabled. All tool calls will be automatically approved.\n";

    fn error_json(kind: &str, message: &str, code: i64) -> String {
        format!(
            "{NOISE}Error when talking to Gemini API Full report available at: /tmp/x.json\n    at throwErrorIfNotOK (file:///x.js:1:1) {{\n  status: {code}\n}}\n{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "session_id": "s",
                "error": {"type": kind, "message": message, "code": code}
            }))
            .unwrap()
        )
    }

    #[test]
    fn success_has_message_usage_turns_and_tools() {
        let o = outcome_of(&output(SUCCESS, NOISE, 0));
        assert_eq!(o.status, AgentStatus::Finished);
        assert_eq!(o.final_message.as_deref(), Some("Done editing."));
        assert_eq!(o.turns, Some(2));
        assert_eq!(
            o.usage,
            Some(Usage {
                input_tokens: 200,
                output_tokens: 40
            })
        );
        assert_eq!(o.actions, ["replace ×1 (0 failed)"]);
        assert_eq!(o.cost_usd, None);
    }

    #[test]
    fn rate_limit_comes_folded_into_the_exit_code() {
        let stderr = error_json(
            "Error",
            "Quota exceeded for metric: generate_content_requests, limit: 0",
            429,
        );
        let o = outcome_of(&output("", &stderr, 173));
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
        assert!(message.contains("Quota exceeded"), "{message}");
    }

    #[test]
    fn auth_errors_are_api_errors_or_a_failed_start() {
        let stderr = error_json(
            "Error",
            r#"[{"error":{"code":401,"message":"API key not valid","status":"UNAUTHENTICATED"}}]"#,
            401,
        );
        let o = outcome_of(&output("", &stderr, 145));
        assert!(
            matches!(&o.status, AgentStatus::ApiError { http_status: Some(401), message } if message.contains("API key not valid")),
            "{:?}",
            o.status
        );
        let stderr = error_json("Error", "Invalid auth method selected.", 41);
        let o = outcome_of(&output("", &stderr, 41));
        assert!(
            matches!(&o.status, AgentStatus::StartFailed { message } if message.contains("selectedType")),
            "{:?}",
            o.status
        );
        assert!(!o.status.worked_on_task());
    }

    #[test]
    fn turn_limit_is_max_turns() {
        let stderr = error_json(
            "FatalTurnLimitedError",
            "Reached max session turns for this session. Increase the number of turns by specifying maxSessionTurns in settings.json.",
            53,
        );
        let o = outcome_of(&output("", &stderr, 53));
        assert_eq!(o.status, AgentStatus::MaxTurns);
    }

    #[test]
    fn unreachable_server_and_loops() {
        let stderr = error_json(
            "Error",
            "exception TypeError: fetch failed sending request",
            1,
        );
        let o = outcome_of(&output("", &stderr, 1));
        assert!(
            matches!(&o.status, AgentStatus::ApiError { http_status: None, message } if message.contains("could not reach")),
            "{:?}",
            o.status
        );
        let looped = r#"{"session_id":"s","response":"","stats":{},"warnings":["Loop detected, stopping execution"]}"#;
        let o = outcome_of(&output(looped, "", 0));
        assert!(
            matches!(&o.status, AgentStatus::Failed { reason } if reason.contains("Loop detected")),
            "{:?}",
            o.status
        );
        assert_eq!(o.final_message, None);
    }

    #[test]
    fn a_crash_without_json_is_a_failure() {
        let o = outcome_of(&output("", "Segmentation fault\n", 139));
        assert!(
            matches!(&o.status, AgentStatus::Failed { reason } if reason.contains("139") && reason.contains("Segmentation")),
            "{:?}",
            o.status
        );
    }
}
