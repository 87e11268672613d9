//! The Anthropic Messages API as teacher (`teacher.mode: anthropic`, alias `local`).

use std::time::Duration;

use serde_json::{Value, json};

use super::{Lesson, Teacher, TeacherError, TeacherReply, http};
use crate::failure::FailureContext;
use crate::process::CancelToken;

/// The public endpoint, used when neither `teacher.base_url` nor `ANTHROPIC_BASE_URL` is set.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// How to reach the Messages API.
#[derive(Clone, Debug)]
pub struct AnthropicConfig {
    /// `https://api.anthropic.com` or a compatible server.
    pub base_url: String,
    /// The key (from the environment variable the config names).
    pub api_key: String,
    /// The variable the key came from, for the hint on 401.
    pub api_key_env: String,
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
        Ok(Self {
            config,
            client: http::client()?,
        })
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
        let key_env = self.config.api_key_env.clone();
        let hint = move |status: u16| hint(status, &key_env);
        let text = http::JsonPost {
            client: &self.client,
            url: &url,
            headers: &[
                ("x-api-key", self.config.api_key.clone()),
                ("anthropic-version", "2023-06-01".to_string()),
            ],
            body: &body,
            deadline: self.config.deadline,
            deadline_key: "teacher.timeout",
            hint: &hint,
        }
        .send(cancel)?;
        parse_reply(&text)
    }
}

fn hint(status: u16, key_env: &str) -> String {
    match status {
        401 => {
            format!(" (check the API key in ${key_env}; teacher.api_key_env names the variable)")
        }
        403 => " (the key is not allowed to use this model or endpoint)".into(),
        404 => " (check teacher.model and teacher.base_url)".into(),
        _ => String::new(),
    }
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
