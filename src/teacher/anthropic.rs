//! The Anthropic Messages API as teacher (`teacher.mode: anthropic`, alias `local`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Lesson, Teacher, TeacherError, TeacherReply};
use crate::failure::FailureContext;
use crate::process::CancelToken;

/// The public endpoint, used when neither `teacher.base_url` nor `ANTHROPIC_BASE_URL` is set.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// Tries per question, the first included.
const MAX_TRIES: u32 = 5;
/// Tries when the server cannot be reached at all (nothing listening is unlikely to change).
const MAX_CONNECT_TRIES: u32 = 2;

/// How to reach the Messages API.
#[derive(Clone, Debug)]
pub struct AnthropicConfig {
    /// `https://api.anthropic.com` or a compatible server.
    pub base_url: String,
    /// The key (from the environment variable the config names).
    pub api_key: String,
    /// Model id.
    pub model: String,
    /// `max_tokens` of the answer.
    pub max_tokens: u32,
    /// Total time for one question, retries included.
    pub deadline: Duration,
}

/// The Messages API teacher.
pub struct AnthropicTeacher {
    config: AnthropicConfig,
    client: reqwest::blocking::Client,
}

impl AnthropicTeacher {
    /// A teacher; fails only if the HTTP client cannot be built.
    pub fn new(config: AnthropicConfig) -> Result<Self, TeacherError> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TeacherError::NotConfigured(format!("build the HTTP client: {e}")))?;
        Ok(Self { config, client })
    }

    fn url(&self) -> String {
        format!("{}/v1/messages", self.config.base_url.trim_end_matches('/'))
    }
}

impl Teacher for AnthropicTeacher {
    fn name(&self) -> String {
        format!("anthropic ({})", self.config.model)
    }

    fn ask(
        &self,
        lesson: &Lesson,
        _failure: &FailureContext,
        follow_up: Option<(&str, &str)>,
        cancel: &CancelToken,
    ) -> Result<TeacherReply, TeacherError> {
        let mut messages = vec![json!({"role": "user", "content": lesson.user})];
        if let Some((previous, correction)) = follow_up {
            messages.push(json!({"role": "assistant", "content": previous}));
            messages.push(json!({"role": "user", "content": correction}));
        }
        let body = json!({
            "model": self.config.model,
            "max_tokens": self.config.max_tokens,
            "system": lesson.system,
            "messages": messages,
        });
        let url = self.url();
        let started = Instant::now();
        let mut tries = 0;
        let mut connect_failures = 0;
        loop {
            if cancel.is_cancelled() {
                return Err(TeacherError::Cancelled);
            }
            tries += 1;
            let left = self.config.deadline.saturating_sub(started.elapsed());
            let give_up = |last: String| TeacherError::GaveUp {
                url: url.clone(),
                attempts: tries,
                last,
            };
            if left.is_zero() {
                return Err(give_up("the deadline (teacher.timeout) passed".into()));
            }
            let response = self
                .client
                .post(&url)
                .timeout(left)
                .header("x-api-key", &self.config.api_key)
                .header("anthropic-version", "2023-06-01")
                .json(&body)
                .send();
            let (wait, last) = match response {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .map(Duration::from_secs_f64);
                    let text = resp.text().unwrap_or_default();
                    if (200..300).contains(&status) {
                        return parse_reply(&text);
                    }
                    let message = error_message(&text);
                    if !retryable(status) {
                        return Err(TeacherError::Rejected {
                            url,
                            status,
                            message: with_hint(status, message),
                        });
                    }
                    (
                        retry_after.unwrap_or_else(|| backoff(tries)),
                        format!("HTTP {status}: {message}"),
                    )
                }
                Err(e) if e.is_timeout() => {
                    return Err(give_up(format!(
                        "no answer within teacher.timeout ({}s)",
                        self.config.deadline.as_secs()
                    )));
                }
                Err(e) => {
                    connect_failures += u32::from(e.is_connect());
                    if connect_failures >= MAX_CONNECT_TRIES {
                        return Err(give_up(format!("cannot connect: {}", error_chain(&e))));
                    }
                    (backoff(tries), error_chain(&e))
                }
            };
            if tries >= MAX_TRIES {
                return Err(give_up(last));
            }
            let left = self.config.deadline.saturating_sub(started.elapsed());
            if wait >= left {
                return Err(give_up(format!(
                    "{last} (the server asked to wait {}s, past the deadline)",
                    wait.as_secs()
                )));
            }
            sleep_unless_cancelled(wait, cancel)?;
        }
    }
}

fn retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529)
}

fn with_hint(status: u16, message: String) -> String {
    let hint = match status {
        401 => {
            " (check the API key in the variable teacher.api_key_env names, ANTHROPIC_API_KEY by default)"
        }
        403 => " (the key is not allowed to use this model or endpoint)",
        404 => " (check teacher.model and teacher.base_url)",
        _ => "",
    };
    format!("{message}{hint}")
}

/// Exponential backoff with jitter: about 1, 2, 4, 8 s, never more than 30 s.
fn backoff(tries: u32) -> Duration {
    let base = 1000u64.saturating_mul(1 << tries.saturating_sub(1).min(5));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    // ±25 % spread, so many clients do not retry in step.
    let jitter = (nanos % 500) as i64 - 250;
    let ms = (base as i64 + base as i64 * jitter / 1000).clamp(100, 30_000);
    Duration::from_millis(ms as u64)
}

fn sleep_unless_cancelled(wait: Duration, cancel: &CancelToken) -> Result<(), TeacherError> {
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if cancel.is_cancelled() {
            return Err(TeacherError::Cancelled);
        }
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    Ok(())
}

fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| crate::failure::clip(body.trim(), 300))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn parse_reply(body: &str) -> Result<TeacherReply, TeacherError> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| TeacherError::BadResponse(format!("not JSON: {e}")))?;
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| TeacherError::BadResponse("no `content` in the Messages response".into()))?;
    let text: String = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(TeacherReply {
        text,
        model: v.get("model").and_then(Value::as_str).map(str::to_string),
        input_tokens: v.pointer("/usage/input_tokens").and_then(Value::as_u64),
        output_tokens: v.pointer("/usage/output_tokens").and_then(Value::as_u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(1250));
        assert!(backoff(3) >= Duration::from_millis(3000));
        assert!(backoff(20) <= Duration::from_secs(30));
    }

    #[test]
    fn reply_text_joins_text_blocks() {
        let r = parse_reply(
            r#"{"model":"m","content":[{"type":"thinking","thinking":"x"},{"type":"text","text":"a"},{"type":"text","text":"b"}],"usage":{"input_tokens":3,"output_tokens":4}}"#,
        )
        .unwrap();
        assert_eq!(r.text, "a\nb");
        assert_eq!(r.output_tokens, Some(4));
        assert!(parse_reply("{}").is_err());
    }
}
