//! Any OpenAI-compatible chat API as teacher (`teacher.mode: openai`): OpenAI itself, and
//! the servers that speak its `/v1/chat/completions` protocol — Ollama, vLLM, LM Studio,
//! llama.cpp's server, LiteLLM, OpenRouter.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Lesson, Teacher, TeacherError, TeacherReply, http};
use crate::failure::FailureContext;
use crate::process::CancelToken;

/// OpenAI's endpoint, used when `teacher.base_url` is not set.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// How to reach the chat API.
#[derive(Clone, Debug)]
pub struct OpenAiConfig {
    /// `https://api.openai.com/v1`, `http://localhost:11434/v1` (Ollama), … ; with or
    /// without the `/v1`, or the whole `…/chat/completions` URL.
    pub base_url: String,
    /// The key; local servers usually need none.
    pub api_key: Option<String>,
    /// The variable the key comes from, for the hint on 401.
    pub api_key_env: String,
    /// Model id as the server names it (`gpt-4.1`, `qwen2.5-coder:14b`).
    pub model: String,
    /// Tokens of the answer at most.
    pub max_tokens: u32,
    /// Total time for one question, retries included.
    pub deadline: Duration,
}

/// The OpenAI-compatible teacher.
pub struct OpenAiTeacher {
    config: OpenAiConfig,
    client: reqwest::blocking::Client,
}

impl OpenAiTeacher {
    /// A teacher; fails only if the HTTP client cannot be built.
    pub fn new(config: OpenAiConfig) -> Result<Self, TeacherError> {
        Ok(Self {
            config,
            client: http::client()?,
        })
    }

    /// The endpoint: base URLs are given in many forms; all of them mean the same path.
    pub fn url(&self) -> String {
        let base = self.config.base_url.trim_end_matches('/');
        if base.ends_with("/chat/completions") {
            base.to_string()
        } else if base.ends_with("/v1") {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/v1/chat/completions")
        }
    }

    fn post(&self, body: &Value, cancel: &CancelToken) -> Result<String, TeacherError> {
        let url = self.url();
        let key_env = self.config.api_key_env.clone();
        let has_key = self.config.api_key.is_some();
        let hint = move |status: u16| hint(status, &key_env, has_key);
        let headers: Vec<(&'static str, String)> = self
            .config
            .api_key
            .iter()
            .map(|key| ("authorization", format!("Bearer {key}")))
            .collect();
        http::JsonPost {
            client: &self.client,
            url: &url,
            headers: &headers,
            body,
            deadline: self.config.deadline,
            deadline_key: "teacher.timeout",
            hint: &hint,
        }
        .send(cancel)
    }
}

impl Teacher for OpenAiTeacher {
    fn name(&self) -> String {
        format!("openai ({})", self.config.model)
    }

    fn ask(
        &self,
        lesson: &Lesson,
        _failure: &FailureContext,
        follow_up: Option<(&str, &str)>,
        cancel: &CancelToken,
    ) -> Result<TeacherReply, TeacherError> {
        let mut messages = vec![
            json!({"role": "system", "content": lesson.system}),
            json!({"role": "user", "content": lesson.user}),
        ];
        if let Some((previous, correction)) = follow_up {
            messages.push(json!({"role": "assistant", "content": previous}));
            messages.push(json!({"role": "user", "content": correction}));
        }
        let mut body = json!({
            "model": self.config.model,
            "messages": messages,
            "max_tokens": self.config.max_tokens,
        });
        let text = match self.post(&body, cancel) {
            // OpenAI's reasoning models refuse `max_tokens` and name its successor; the
            // servers most people run locally know only `max_tokens`. Ask once more.
            Err(TeacherError::Rejected {
                status: 400,
                message,
                ..
            }) if message.contains("max_completion_tokens") => {
                if let Some(map) = body.as_object_mut() {
                    map.remove("max_tokens");
                    map.insert(
                        "max_completion_tokens".into(),
                        json!(self.config.max_tokens),
                    );
                }
                self.post(&body, cancel)?
            }
            other => other?,
        };
        parse_reply(&text)
    }
}

fn hint(status: u16, key_env: &str, has_key: bool) -> String {
    match status {
        401 if has_key => format!(" (check the API key in ${key_env})"),
        401 => format!(
            " (the server wants an API key: put it in ${key_env}, or name another variable \
             in teacher.api_key_env)"
        ),
        403 => " (the key is not allowed to use this model or endpoint)".into(),
        404 => " (check teacher.model and teacher.base_url: the endpoint is \
                 <base_url>/chat/completions, e.g. http://localhost:11434/v1 for Ollama)"
            .into(),
        _ => String::new(),
    }
}

fn parse_reply(body: &str) -> Result<TeacherReply, TeacherError> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| TeacherError::BadResponse(format!("not JSON ({e})")))?;
    let message = v.pointer("/choices/0/message").ok_or_else(|| {
        TeacherError::BadResponse("no `choices[0].message` in the chat completion".into())
    })?;
    // `content` is a string, or (some servers) a list of parts with `text`.
    let text = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => {
            let refusal = message.get("refusal").and_then(Value::as_str);
            return Err(TeacherError::BadResponse(match refusal {
                Some(r) => format!("the model refused: {r}"),
                None => "the chat completion has no text content".into(),
            }));
        }
    };
    Ok(TeacherReply {
        text: strip_thinking(&text),
        model: v.get("model").and_then(Value::as_str).map(str::to_string),
        input_tokens: v.pointer("/usage/prompt_tokens").and_then(Value::as_u64),
        output_tokens: v
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64),
    })
}

/// Reasoning models served locally (DeepSeek-R1, Qwen3) put their thoughts in
/// `<think>…</think>` before the answer; a draft rule in there must not be taken for the rule.
fn strip_thinking(text: &str) -> String {
    match (text.find("<think>"), text.find("</think>")) {
        (Some(start), Some(end)) if start < end => {
            let mut out = text[..start].to_string();
            out.push_str(&text[end + "</think>".len()..]);
            out.trim().to_string()
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn teacher(base_url: &str) -> OpenAiTeacher {
        OpenAiTeacher::new(OpenAiConfig {
            base_url: base_url.into(),
            api_key: None,
            api_key_env: "OPENAI_API_KEY".into(),
            model: "m".into(),
            max_tokens: 10,
            deadline: Duration::from_secs(1),
        })
        .unwrap()
    }

    #[test]
    fn every_base_url_form_reaches_chat_completions() {
        for base in [
            "https://api.openai.com/v1",
            "https://api.openai.com/v1/",
            "https://api.openai.com",
            "https://api.openai.com/v1/chat/completions",
        ] {
            assert_eq!(
                teacher(base).url(),
                "https://api.openai.com/v1/chat/completions",
                "{base}"
            );
        }
        assert_eq!(
            teacher("http://localhost:11434/v1").url(),
            "http://localhost:11434/v1/chat/completions"
        );
    }

    #[test]
    fn replies_with_string_or_parts_and_thinking_dropped() {
        let r = parse_reply(r#"{"model":"gpt","choices":[{"message":{"role":"assistant","content":"<think>- **Rule**: draft</think>\nAnalysis: x"}}],"usage":{"prompt_tokens":5,"completion_tokens":6}}"#).unwrap();
        assert_eq!(r.text, "Analysis: x");
        assert_eq!(r.input_tokens, Some(5));
        let r = parse_reply(r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]}"#).unwrap();
        assert_eq!(r.text, "a\nb");
        let e = parse_reply(r#"{"choices":[{"message":{"content":null,"refusal":"no"}}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("refused"), "{e}");
        assert!(parse_reply("{}").is_err());
    }
}
